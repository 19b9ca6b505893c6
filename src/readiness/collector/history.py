"""A room's history on the collector, and the fleet's suspected regressions.

    GET /rooms/<site>/<room>   a labelled room's history (HTML; ``?lang=sv``)
    GET /hosts/<hostname>      the same for a computer without a room label

Each part of the path is percent-escaped whole (``fleet.history.room_path``), so a "/" in a
site's name stays in its part. Read as /runs/<id> is (``Collector._reading``): a caller scoped
to other sites gets "no such room", the same answer as for a room that does not exist. The page
is ``fleet.history.room_page`` over the room's history records (``Store.room_runs``); the
requirements' words are the organisation's (``judge.wording.OwnWords``).

:class:`FleetChanges` finds the suspected regressions /fleet lists (``fleet.changes``): each
room's changes over the last ``days`` days, found once per change of the database and cut to
the caller's sites.

Sits in ``collector``; ``collector.http`` only registers the routes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any, Callable
from urllib.parse import unquote

from readiness.collector.access import Caller
from readiness.collector.engine import Unavailable, utcnow
from readiness.collector.ingest import room_key
from readiness.collector.pages import with_bar
from readiness.collector.store import Store
from readiness.fleet.changes import Change, Regression, directions, from_record, room_run, suspected_regressions
from readiness.fleet.history import regression_items, room_changes, room_page
from readiness.render.plots import PlotsUnavailable
from readiness.server.routes import Request, Response


def _parts(path: str, prefix: str, count: int) -> list[str] | None:
    """The ``count`` escaped parts after ``prefix``, unescaped; None when the path has other
    than that many, or an empty one."""
    parts = path[len(prefix):].split("/")
    if len(parts) != count:
        return None
    try:
        out = [unquote(p, errors="strict") if p else "" for p in parts]
    except UnicodeDecodeError:
        return None
    return out if all(o.strip() for o in out) and all(len(o) <= 255 for o in out) else None


class RoomPages:
    """The history handlers over a ``Store``. ``reading``: the collector's gate
    (``Collector._reading``); ``page``: its HTML response maker (CSP and all); ``refuse``: its
    JSON refusal; ``lang``: a request's language; ``words``: the organisation's words."""

    CACHE_MAX = 64  # pages kept, by room, newest run and language: a page read again costs nothing

    def __init__(self, store: Store, reading: Callable[..., Response], page: Callable[..., Response],
                 refuse: Callable[..., Response], lang: Callable[[Request], str], words: Any) -> None:
        self.store, self.reading, self.page, self.refuse, self.lang, self.words = store, reading, page, refuse, lang, words
        self._cache: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def get_room(self, req: Request) -> Response:
        parts = _parts(req.path, "/rooms/", 2)
        if parts is None:
            return self.refuse(404, "not_found", "no such room")
        site, room = parts
        return self._history(req, room_key(site, room, "", ""), site, room, "", "../../")

    def get_host(self, req: Request) -> Response:
        parts = _parts(req.path, "/hosts/", 1)
        if parts is None:
            return self.refuse(404, "not_found", "no such computer")
        return self._history(req, room_key("", "", parts[0], ""), "", "", parts[0], "../")

    def _history(self, req: Request, key: str, site: str, room: str, hostname: str, up: str) -> Response:
        def make(who: Caller) -> Response:
            if room and not who.sees(site):  # another site's room is not there for this caller
                return self.refuse(404, "not_found", "no such room")
            rows = self.store.room_runs(key)
            # a computer is seen only when every one of its runs is of a site the caller sees
            if not rows or not all(who.sees(s) for _, _, s, _ in rows):
                return self.refuse(404, "not_found", "no such room" if room else "no such computer")
            lang = self.lang(req)
            stamp = (key, rows[-1][0], len(rows), lang)
            with self._lock:
                text = self._cache.get(stamp)
            if text is None:
                runs = [from_record(run_id, started, s, record) for run_id, started, s, record in rows]
                runs[-1].bounds = self._bounds(runs[-1].run_id)
                shown_site = site or rows[-1][2]
                try:
                    text = room_page(runs, shown_site, room, hostname, lang, lambda r: f"{up}runs/{r}",
                                     words=self.words, back=f"{up}fleet")
                except PlotsUnavailable as exc:
                    return self.refuse(503, "plots_unavailable", str(exc))
                with self._lock:
                    self._cache[stamp] = text
                    while len(self._cache) > self.CACHE_MAX:
                        self._cache.popitem(last=False)
            return self.page(with_bar(text, who, lang), who)  # the signed-in bar, as on /runs and /fleet

        return self.reading(req, make, page=True)

    def _bounds(self, run_id: str) -> list[dict[str, Any]]:
        """The requirements the run was judged by (its summary's items, digests resolved)."""
        summary = self.store.summary(run_id)
        if not isinstance(summary, dict):
            return []
        return room_run(run_id, summary, (), self.store.requirement_texts()).bounds


class FleetChanges:
    """Each room's changes over the last ``days`` days (runs read in one pass), found again when
    the database changed, in a thread of its own: /fleet shows what the last pass found and
    never waits for one (a large fleet's 30 days take about a second; the live view has its own
    budget). The suspected regressions of the rooms of a set of sites."""

    def __init__(self, store: Store, days: int = 30, min_rooms: int = 3, min_age_s: float = 60.0,
                 log: Callable[[str], None] | None = None) -> None:
        """``min_age_s``: found again at most this often (uploads arrive all the time; a
        regression is a matter of days)."""
        self.store, self.days, self.min_rooms, self.min_age_s = store, days, min_rooms, min_age_s
        self.log = log or (lambda _m: None)
        self._lock = threading.Lock()
        self._stamp: Any = None
        self._asked = -1e18  # when a pass was last started
        self._running = False
        self._rooms: dict[str, tuple[str, list[Change]]] = {}
        self._reqs: dict[str, Any] = {}
        self._open = threading.Event()  # passes may start (see ``hold``)
        self._open.set()

    def hold(self, until: threading.Event, at_most_s: float) -> None:
        """Start no pass until ``until`` is set or ``at_most_s`` passed, then start one: at a
        collector's start, the first /fleet page is made before this second of CPU competes
        with it for the interpreter."""
        self._open.clear()

        def release() -> None:
            until.wait(at_most_s)
            self._open.set()
            self.refresh()

        threading.Thread(target=release, name="fleet-changes-hold", daemon=True).start()

    def refresh(self, wait: bool = False) -> None:
        """Start a pass when the last one is older than ``min_age_s`` and none runs (and none
        is held back: ``hold``); ``wait``: in this thread, to its end (the tests, and a caller
        that needs the answer now)."""
        if not self._open.is_set():
            return
        with self._lock:
            now = time.monotonic()
            if self._running or now - self._asked < self.min_age_s:
                return
            self._running, self._asked = True, now
        if wait:
            self._pass()
        else:
            threading.Thread(target=self._pass, name="fleet-changes", daemon=True).start()

    def _pass(self) -> None:
        try:
            stamp = self.store.change_stamp()
            if stamp != self._stamp:
                rooms, reqs = self._read()
                with self._lock:
                    self._rooms, self._reqs, self._stamp = rooms, reqs, stamp
        except Unavailable as exc:  # tried again at the next /fleet after min_age_s
            self.log(f"suspected regressions not found again: {exc}")
        finally:
            with self._lock:
                self._running = False

    def _read(self) -> tuple[dict[str, tuple[str, list[Change]]], dict[str, Any]]:
        reqs = self.store.requirement_texts()
        better = directions(reqs.values())  # which way each figure is better, as the stored lists say
        rooms: dict[str, tuple[str, list[Change]]] = {}
        key, runs, site = None, [], ""

        def close() -> None:
            if key is not None and len(runs) > 1:
                found = [c for c in room_changes(runs, better) if c.kind in ("version", "device", "figure")]
                if found:
                    name = " / ".join(x for x in (site, runs[-1].room) if x) if runs[-1].room else runs[-1].hostname
                    rooms[name or key] = (site, found)

        for k, run_id, started, s, record in self.store.runs_since(utcnow() - timedelta(days=self.days)):
            if k != key:
                close()
                key, runs, site = k, [], s
            runs.append(from_record(run_id, started, s, record))
        close()
        return rooms, reqs

    def regressions(self, sites: frozenset[str] | None) -> list[Regression]:
        """The suspected regressions among the rooms of ``sites`` (None: every site), as the
        last pass found them (a new pass is started when that one is old)."""
        self.refresh()
        with self._lock:
            rooms = {name: found for name, (site, found) in self._rooms.items() if sites is None or site in sites}
        return suspected_regressions(rooms, self.min_rooms)

    def texts(self, lang: str, sites: frozenset[str] | None) -> list[str]:
        """The suspected regressions in words (for /fleet's section)."""
        return [text for _key, text in self.keyed(lang, sites) or []]

    def keyed(self, lang: str, sites: frozenset[str] | None = None) -> list[tuple[str, str]] | None:
        """(stable key, words) of each suspected regression: what the alerts open and clear;
        None until a first pass has finished (not "none any more": that would clear them at
        every restart)."""
        looked = self._stamp is not None  # before asking: asking may start the first pass
        found = self.regressions(sites)
        if not looked:
            return None
        return list(zip((r.key for r in found), regression_items(found, lang, self._reqs.values()))) if found else []
