"""Alerts: each room's verdict changes become events, events become messages grouped by the
action planner's root cause, messages go out through an outbox table (``collector.notify``
sends them; ``alertmessages`` words them).

Sits above ``store`` (it reads the stored runs and keeps its own tables, ``tables.alert_*``)
and beside ``http``, whose upload handler calls :meth:`Alerts.noted` after a run is stored
(one call: the work is done in this module's own thread, not in the upload's).

- **State.** ``alert_rooms`` holds each room as the alerts last judged it (its run, ready or
  not, the causes of its blocking items); the evaluator compares it with ``latest`` (each
  room's newest run, whichever process stored it), so a restart, or another replica, misses
  no run and raises no event twice. ``alert_open`` holds the open events by key.
- **Events.** A room became not ready (its causes: ``fleet.actions.action_kind`` of each
  blocking item), became ready again (the resolution), stopped reporting (a sweep: no run for
  ``not_reporting_after``) and reports again; a site-wide root cause (every judged room of a
  site, two or more, fails the same network item: ``fleet.actions.NETWORK_KINDS``) appeared, or
  cleared (no room of the site fails it any more: a room added without the fault does not
  clear it); a suspected regression appeared or cleared (:meth:`Alerts.regressions`).
- **Grouping.** Events go to ``alert_events`` under a group key: site, cause (kind and
  subject), opened or resolved. A group becomes one message once its first event is
  ``group_within`` old (default 2 minutes): four rooms of a site failing the same cause within
  that time are one message naming the four. A room with several causes is grouped by its
  first (a network cause before the others: it is the one that explains most).
- **Silence.** An event of a site or room inside a silence window is not sent, then or later;
  the state moves all the same, so the end of the window raises nothing already known.
- **Delivery.** One ``alert_outbox`` row per message and channel. A sender claims due rows
  with a lease (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so replicas never take the same row;
  SQLite has one writer), sends outside the transaction, and marks the row sent only if its
  claim still holds. A failure is retried with exponential backoff (5 s, 10 s, … at most an
  hour). A process killed mid-send leaves the lease to expire and the row is sent again:
  at least once; a row marked sent is never sent again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update

from readiness.collector.alertconfig import AlertConfig
from readiness.collector.alertmessages import OPEN, RESOLVED, SEP, Message, message_facts, render
from readiness.collector.engine import Unavailable, aware, utcnow
from readiness.collector.jsontext import loads
from readiness.collector.store import Store
from readiness.collector.tables import (BROWSER_KEYS, alert_events, alert_open, alert_outbox, alert_rooms, latest,
                                        requirements, results, summaries)
from readiness.fleet.actions import FAIL, NETWORK_KINDS, UNKNOWN, action_kind
from readiness.judge.verdicts import READY

BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 3600.0
TICK_S = 1.0  # how often the evaluator looks for groups to close and rows to send
SWEEP_S = 60.0  # how often rooms are looked at for not reporting
RECONCILE_S = 30.0  # runs stored by another replica are found at least this often
EVALUATE_EVERY_S = 1.0  # at most one evaluation pass per second


@dataclass
class _Before:
    state: str
    silent: int


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _state(verdict: str | None) -> str:
    return "ready" if verdict in READY else "not_ready" if verdict in (FAIL, UNKNOWN) else "other"


def _cause_json(causes: list[dict[str, Any]]) -> str:
    return _dumps([[c["kind"], c["subject"], c["metric"], c["status"]] for c in causes])


class Alerts:
    """The alert engine of one collector process: evaluate, group, deliver (two threads)."""

    def __init__(self, store: Store, cfg: AlertConfig, not_reporting_after_s: float,
                 send: Callable[[AlertConfig, str, Message], None], log: Callable[[str], None] | None = None) -> None:
        """``send(cfg, channel, message)``: delivers or raises with a one-line reason (``notify.send``)."""
        self.store, self.cfg, self.send = store, cfg, send
        self.not_reporting_after = timedelta(seconds=not_reporting_after_s)
        self.log = log or (lambda _m: None)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.mark = uuid.uuid4().hex  # this process's claim mark on outbox rows
        self.lease = timedelta(seconds=2 * cfg.delivery_timeout_s + 5)
        self._reqs: dict[str, dict[str, Any]] = {}
        # the suspected regressions as they stand, asked at each sweep (once a minute) and handed
        # to :meth:`regressions`: (stable key, one-line text) each; None: none are looked for
        self.regression_source: Callable[[], Iterable[tuple[str, str]] | None] | None = None
        self._pg = store.dialect == "postgresql"

    # --- the hooks -------------------------------------------------------------------------

    def noted(self) -> None:
        """A run was stored: look at it soon (called by the upload handler; costs a flag)."""
        self.wake.set()

    def regressions(self, items: Iterable[tuple[str, str]], now: datetime | None = None) -> None:
        """The suspected regressions as they stand now: (stable key, one-line text) each. A key
        not open yet is an event; an open key no longer listed is cleared (its resolution)."""
        now = now or utcnow()
        # the key column holds 1 000 characters and a message a readable line: longer ones are cut
        current = {(k if len(k) <= 900 else hashlib.sha256(k.encode()).hexdigest()): t[:500] for k, t in items}
        with self.store._guard(), self.store.engine.begin() as conn:
            rows = conn.execute(select(alert_open.c.key, alert_open.c.detail)
                                .where(alert_open.c.key.startswith(f"regression{SEP}"))).all()
            have = {k.split(SEP, 1)[1]: loads(d) for k, d in rows}
            for key, text in current.items():
                if key not in have:
                    conn.execute(insert(alert_open).values(key=f"regression{SEP}{key}", opened=now,
                                                           detail=_dumps({"text": text})))
                    self._event(conn, now, "regression", "", "regression", "", OPEN, {"key": key, "text": text})
            for key, detail in have.items():
                if key not in current:
                    conn.execute(delete(alert_open).where(alert_open.c.key == f"regression{SEP}{key}"))
                    self._event(conn, now, "regression", "", "regression", "", RESOLVED,
                                {"key": key, "text": detail.get("text", key)})
        self.wake.set()

    # --- threads ---------------------------------------------------------------------------

    def start(self) -> None:
        for name, loop in (("alerts", self._evaluate_loop), ("alert-delivery", self._deliver_loop)):
            t = threading.Thread(target=loop, daemon=True, name=name)
            t.start()
            self.threads.append(t)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask both threads to stop and wait for them (a send in flight ends at its timeout)."""
        self.stopping.set()
        self.wake.set()
        for t in self.threads:
            t.join(timeout)

    def _evaluate_loop(self) -> None:
        last_reconcile = last_sweep = 0.0
        while not self.stopping.is_set():
            woken = self.wake.wait(TICK_S)
            # runs stored meanwhile are judged together: one pass (one commit) per second at
            # most, however fast uploads come
            if woken and self.stopping.wait(max(0.0, last_reconcile + EVALUATE_EVERY_S - time.monotonic())):
                return
            self.wake.clear()
            now = time.monotonic()
            try:
                if woken or now - last_reconcile >= RECONCILE_S:
                    last_reconcile = now
                    self.evaluate()
                if now - last_sweep >= SWEEP_S:
                    last_sweep = now
                    self.sweep()
                    found = self.regression_source() if self.regression_source is not None else None
                    if found is not None:  # None: not looked for yet (a pass still running after a start)
                        self.regressions(list(found))
                self.flush()
            except Unavailable as exc:
                self.log(f"alerts: {exc}")
            except Exception as exc:  # noqa: BLE001 - the thread must outlive one bad pass; said in the log
                self.log(f"alerts: evaluation failed: {type(exc).__name__}: {str(exc)[:200]}")

    def _deliver_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sent = self.deliver()
            except Unavailable as exc:
                self.log(f"alerts: {exc}")
                sent = 0
            except Exception as exc:  # noqa: BLE001 - as above
                self.log(f"alerts: delivery failed: {type(exc).__name__}: {str(exc)[:200]}")
                sent = 0
            if not sent:
                self.stopping.wait(TICK_S)

    # --- evaluation ------------------------------------------------------------------------

    def evaluate(self, now: datetime | None = None) -> int:
        """Judge every room whose newest run the alerts have not seen; the number judged."""
        now = now or utcnow()
        query = (select(latest.c.room_key, latest.c.run_id, alert_rooms.c.run_id)
                 .select_from(latest.outerjoin(alert_rooms, alert_rooms.c.room_key == latest.c.room_key))
                 .where(latest.c.check_name == "", or_(alert_rooms.c.run_id.is_(None), alert_rooms.c.run_id != latest.c.run_id),
                        *(~latest.c.room_key.startswith(p) for p in BROWSER_KEYS)))
        with self.store._guard(), self.store.engine.connect() as conn:
            todo = conn.execute(query).all()
        for i in range(0, len(todo), self.BATCH):
            chunk = todo[i:i + self.BATCH]
            try:
                self._judge_rooms(chunk, now)
            except Unavailable:
                raise
            except Exception:  # noqa: BLE001 - one bad run must not hold the others back: one at a time
                for one in chunk:
                    try:
                        self._judge_rooms([one], now)
                    except Unavailable:
                        raise
                    except Exception as exc:  # noqa: BLE001 - said in the log, the room tried again next pass
                        self.log(f"alerts: run {one[1]} not judged: {type(exc).__name__}: {str(exc)[:200]}")
        return len(todo)

    BATCH = 200  # rooms judged in one transaction (one commit, not one per room)

    def _judge_rooms(self, rows: list[Any], now: datetime) -> None:
        # read first, outside the write transaction: on SQLite that holds the one write lock ingest needs too
        with self.store._guard(), self.store.engine.connect() as conn:
            ids = [run_id for _k, run_id, _s in rows]
            runs = {r[0]: r[1:] for r in conn.execute(select(results.c.run_id, results.c.site, results.c.room,
                                                             results.c.hostname, results.c.started, results.c.verdict)
                                                      .where(results.c.run_id.in_(ids)))}
            # a ready run blocks on nothing: only the others' summaries are read
            blocked = [i for i in ids if i in runs and runs[i][4] not in READY]
            docs = dict(conn.execute(select(results.c.run_id, func.coalesce(summaries.c.summary, results.c.document))
                                     .select_from(results.outerjoin(summaries, summaries.c.run_id == results.c.run_id))
                                     .where(results.c.run_id.in_(blocked))).all()) if blocked else {}
            causes = {i: self._causes(conn, d if isinstance(d, dict) else {}) for i, d in docs.items()}
            before = {r[0]: r[1:] for r in conn.execute(
                select(alert_rooms.c.room_key, alert_rooms.c.run_id, alert_rooms.c.state, alert_rooms.c.silent,
                       alert_rooms.c.causes).where(alert_rooms.c.room_key.in_([k for k, _r, _s in rows])))}
            opened = dict(conn.execute(select(alert_open.c.key, alert_open.c.detail).where(
                alert_open.c.key.in_([f"not_ready{SEP}{k}" for k, _r, _s in rows]))).all())
        # most runs change nothing but the run a room is judged by: those in one statement
        same, changed = [], []
        for room_key, run_id, seen in rows:
            if run_id not in runs:
                continue
            was = before.get(room_key)
            state = _state(runs[run_id][4])
            cause_json = _cause_json(causes.get(run_id, []))
            if seen is not None and was is not None and was[0] == seen and not was[2] and was[1] == state \
                    and was[3] == cause_json:
                same.append({"k": room_key, "seen": seen, "new": run_id, "at": runs[run_id][3]})
            else:
                changed.append((room_key, run_id, seen))
        with self.store._guard(), self.store.engine.begin() as conn:
            if same:
                conn.execute(update(alert_rooms).where(alert_rooms.c.room_key == bindparam("k"),
                                                       alert_rooms.c.run_id == bindparam("seen"))
                             .values(run_id=bindparam("new"), started=bindparam("at")), same)
            sites = {site for room_key, run_id, seen in changed
                     if (site := self._judge_room(conn, room_key, run_id, seen, runs[run_id], causes.get(run_id, []),
                                                  before.get(room_key), opened.get(f"not_ready{SEP}{room_key}"), now))}
            for site in sorted(sites):
                self._site_causes(conn, site, now)

    def _requirement(self, conn: Any, ref: Any) -> dict[str, Any]:
        if isinstance(ref, dict):
            return ref
        if ref not in self._reqs:
            text = conn.execute(select(requirements.c.requirement).where(requirements.c.digest == ref)).scalar()
            self._reqs[ref] = text if isinstance(text, dict) else {}
        return self._reqs[ref]

    def _causes(self, conn: Any, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """The run's blocking items as causes, network causes first, then the list's order."""
        lang = self.cfg.language
        judgement = doc.get("judgement") if isinstance(doc.get("judgement"), dict) else {}
        out = []
        for item in judgement.get("items") or []:
            if not isinstance(item, dict):
                continue
            req = self._requirement(conn, item.get("requirement"))
            status = item.get("status")
            if req.get("severity") != "required" or status not in (FAIL, UNKNOWN) or not req.get("metric"):
                continue
            kind, subject = action_kind(req["metric"], status)
            words = (req.get("translations") or {}).get(lang) or {}
            out.append({"kind": kind, "subject": subject, "metric": req["metric"], "status": status,
                        "label": words.get("label") or req.get("label", ""), "fix": words.get("fix") or req.get("fix", ""),
                        "source": req.get("source", "")})
        out.sort(key=lambda c: c["kind"] not in NETWORK_KINDS)  # stable: the list's order otherwise
        return out

    def _judge_room(self, conn: Any, room_key: str, run_id: str, seen: str | None, row: Any,
                    causes: list[dict[str, Any]], was: Any, was_open: str | None, now: datetime) -> str | None:
        """One room's newest run (``row``: site, room, host, start, verdict) against its state
        (``was``: run, state, silent, causes as read before; ``was_open``: its open event's
        detail); the room's site when it was judged here. The state moves only if it is still
        what was read (else another replica moved it, and the next pass looks again)."""
        site, room, host, started, verdict = row
        room = room or host
        state = _state(verdict)
        cause_json = _cause_json(causes)
        before = None
        if seen is None:
            got = conn.execute(self.store._insert(alert_rooms).values(
                room_key=room_key, site=site, room=room, run_id=run_id, started=started, state=state, causes=cause_json,
                silent=0).on_conflict_do_nothing(index_elements=[alert_rooms.c.room_key])
                .returning(alert_rooms.c.room_key)).first()
            if got is None:
                return None  # another replica judged it first
        else:
            if was is None or was[0] != seen:
                return None
            before = _Before(was[1], was[2])
            moved = conn.execute(update(alert_rooms).where(alert_rooms.c.room_key == room_key,
                                                           alert_rooms.c.run_id == seen, alert_rooms.c.silent == was[2])
                                 .values(site=site, room=room, run_id=run_id, started=started, state=state,
                                         causes=cause_json, silent=0))
            if moved.rowcount != 1:
                return None
        quiet = self.cfg.silenced(site, room, now)
        detail = {"room": room, "run_id": run_id, "started": aware(started).isoformat(timespec="seconds")}
        if before is not None and before.silent:  # it reports again
            conn.execute(delete(alert_open).where(alert_open.c.key == f"not_reporting{SEP}{room_key}"))
            if not quiet:
                self._event(conn, now, "not_reporting", site, "not_reporting", "", RESOLVED, detail)
        if state == "ready" and (before is None or before.state == "ready"):
            return site or None  # ready and was: nothing can be open for it
        key = f"not_ready{SEP}{room_key}"
        if state == "not_ready" and was_open is None and causes:
            first = causes[0]
            conn.execute(self.store._insert(alert_open).values(key=key, opened=now, detail=_dumps(
                {"kind": first["kind"], "subject": first["subject"]})).on_conflict_do_nothing(index_elements=[alert_open.c.key]))
            if not quiet:
                self._event(conn, now, "not_ready", site, first["kind"], first["subject"], OPEN,
                            {**detail, "causes": causes})
        elif state == "ready" and was_open is not None:
            conn.execute(delete(alert_open).where(alert_open.c.key == key))
            had = loads(was_open)
            if not quiet:
                self._event(conn, now, "not_ready", site, had["kind"], had["subject"], RESOLVED, detail)
        return site or None

    def _site_causes(self, conn: Any, site: str, now: datetime) -> None:
        """Open the site's root causes: a network item every judged room fails (two or more
        rooms); clear one when no room fails it any more."""
        rooms = conn.execute(select(alert_rooms.c.room, alert_rooms.c.causes, alert_rooms.c.run_id)
                             .where(alert_rooms.c.site == site, alert_rooms.c.state.in_(("ready", "not_ready")))).all()
        common: dict[str, tuple[str, str]] | None = None
        anywhere: set[str] = set()  # the network kinds any room of the site still fails
        for _room, causes, _run in rooms:
            mine = {m: (k, s) for k, s, m, st in loads(causes) if st == FAIL and k in NETWORK_KINDS}
            anywhere.update(k for k, _s in mine.values())
            common = mine if common is None else {m: v for m, v in common.items() if m in mine}
        if len(rooms) < 2:
            common = None
        kinds: dict[str, str] = {}
        for _metric, (k, s) in sorted((common or {}).items()):
            kinds.setdefault(k, s)
        prefix = f"site_cause{SEP}{site}{SEP}"
        have = {k[len(prefix):]: loads(d) for k, d in conn.execute(
            select(alert_open.c.key, alert_open.c.detail).where(alert_open.c.key.startswith(prefix))).all()}
        quiet = self.cfg.silenced(site, "", now)
        for kind, subject in kinds.items():
            if kind not in have:
                conn.execute(insert(alert_open).values(key=prefix + kind, opened=now,
                                                       detail=_dumps({"subject": subject})))
                if not quiet:
                    members = [{"room": r, "run_id": run} for r, _c, run in sorted(rooms)]
                    self._event(conn, now, "site_cause", site, kind, subject, OPEN, {"members": members})
        for kind, detail in have.items():
            # cleared once no room fails it: a room that joins the site without the fault does not
            # make the cause go away (and come back with the next run)
            if kind not in kinds and kind not in anywhere:
                conn.execute(delete(alert_open).where(alert_open.c.key == prefix + kind))
                if not quiet:
                    self._event(conn, now, "site_cause", site, kind, detail.get("subject", ""), RESOLVED, {})

    def _event(self, conn: Any, now: datetime, event: str, site: str, kind: str, subject: str, state: str,
               detail: dict[str, Any]) -> None:
        group = SEP.join((site, kind, subject, state))
        conn.execute(insert(alert_events).values(at=now, group_key=group, event=event, site=site,
                                                 detail=_dumps({**detail, "kind": kind, "subject": subject})))

    def sweep(self, now: datetime | None = None) -> int:
        """Mark rooms whose newest run started more than ``not_reporting_after`` ago; the number marked."""
        now = now or utcnow()
        cutoff = now - self.not_reporting_after
        with self.store._guard(), self.store.engine.connect() as conn:
            stale = conn.execute(select(alert_rooms.c.room_key, alert_rooms.c.run_id, alert_rooms.c.site,
                                        alert_rooms.c.room, alert_rooms.c.started)
                                 .where(alert_rooms.c.silent == 0, alert_rooms.c.started < cutoff)).all()
        marked = 0
        for room_key, run_id, site, room, started in stale:
            with self.store._guard(), self.store.engine.begin() as conn:
                moved = conn.execute(update(alert_rooms).where(alert_rooms.c.room_key == room_key,
                                                               alert_rooms.c.run_id == run_id, alert_rooms.c.silent == 0)
                                     .values(silent=1))
                if moved.rowcount != 1:
                    continue
                marked += 1
                conn.execute(self.store._insert(alert_open).values(
                    key=f"not_reporting{SEP}{room_key}", opened=now, detail="{}").on_conflict_do_nothing(
                    index_elements=[alert_open.c.key]))
                if not self.cfg.silenced(site, room, now):
                    self._event(conn, now, "not_reporting", site, "not_reporting", "", OPEN,
                                {"room": room, "run_id": run_id, "started": aware(started).isoformat(timespec="seconds")})
        return marked

    # --- grouping --------------------------------------------------------------------------

    def flush(self, now: datetime | None = None, force: bool = False) -> int:
        """Close every group whose first event is ``group_within`` old (``force``: every group):
        one message each, one outbox row per channel. The number of messages made."""
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.cfg.group_within_s)
        query = select(alert_events.c.group_key, func.min(alert_events.c.at)).group_by(alert_events.c.group_key)
        with self.store._guard(), self.store.engine.connect() as conn:
            due = [g for g, first in conn.execute(query).all() if force or aware(first) <= cutoff]
        made = 0
        if not due:
            return 0
        with self.store._guard(), self.store.engine.begin() as conn:  # every group due in one commit
            for group in due:
                # taken by deleting: a replica closing the same group at once finds nothing left
                rows = conn.execute(delete(alert_events).where(alert_events.c.group_key == group)
                                    .returning(alert_events.c.id, alert_events.c.event, alert_events.c.site,
                                               alert_events.c.detail)).all()
                if not rows:
                    continue
                rows = sorted(rows)
                channels: list[str] = []
                for _id, event, site, _d in rows:
                    channels.extend(c for c in self.cfg.channels_for(event, site) if c not in channels)
                if not channels:
                    continue
                facts = message_facts(self.cfg, group, [(e, loads(d)) for _i, e, _s, d in rows], now,
                                      self.not_reporting_after)
                message = render(self.cfg, facts)
                body = _dumps({"title": message.title, "text": message.text, "html": message.html, "facts": facts})
                conn.execute(insert(alert_outbox), [
                    {"message_id": message.id, "channel": c, "created": now, "message": body, "attempts": 0,
                     "next_try": now, "lease_until": None, "claim": None, "sent": None, "last_error": ""}
                    for c in channels])
                made += 1
        return made

    # --- delivery --------------------------------------------------------------------------

    def depth(self) -> int:
        """Messages (per channel) not yet sent."""
        with self.store._guard(), self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(alert_outbox).where(alert_outbox.c.sent.is_(None))).scalar_one()

    def deliver(self, now: datetime | None = None, batch: int = 10) -> int:
        """Claim due rows, send them, mark each sent or to be tried again; the number sent."""
        now = now or utcnow()
        due = and_(alert_outbox.c.sent.is_(None), alert_outbox.c.next_try <= now,
                   or_(alert_outbox.c.lease_until.is_(None), alert_outbox.c.lease_until < now))
        query = select(alert_outbox.c.id, alert_outbox.c.channel, alert_outbox.c.message, alert_outbox.c.attempts
                       ).where(due).order_by(alert_outbox.c.id).limit(batch)
        if self._pg:
            query = query.with_for_update(skip_locked=True)
        with self.store._guard(), self.store.engine.begin() as conn:
            rows = conn.execute(query).all()
            if rows:
                # only the rows this claim took (RETURNING): without SKIP LOCKED another sender may have been first
                took = set(conn.execute(update(alert_outbox).where(alert_outbox.c.id.in_([r[0] for r in rows]), due)
                                        .values(lease_until=now + self.lease, claim=self.mark)
                                        .returning(alert_outbox.c.id)).scalars())
                rows = [r for r in rows if r[0] in took]
        sent = 0
        for row_id, channel, body, attempts in rows:
            if self.stopping.is_set():
                break
            data = loads(body)
            message = Message(data["facts"]["id"], data["title"], data["text"], data["html"], data["facts"])
            try:
                if channel not in self.cfg.channels:
                    raise RuntimeError(f"no channel {channel!r} in {self.cfg.path} now")
                self.send(self.cfg, channel, message)
            except Exception as exc:  # noqa: BLE001 - any failure is a retry, its reason kept in the row
                reason = str(exc).strip().splitlines()[0][:900] if str(exc).strip() else type(exc).__name__
                wait = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** attempts)
                with self.store._guard(), self.store.engine.begin() as conn:
                    conn.execute(update(alert_outbox).where(alert_outbox.c.id == row_id, alert_outbox.c.claim == self.mark)
                                 .values(attempts=attempts + 1, next_try=max(now, utcnow()) + timedelta(seconds=wait),
                                         lease_until=None, claim=None, last_error=reason))
                self.log(f"alerts: {channel}: not sent ({reason}); trying again in {wait:g} s")
                continue
            with self.store._guard(), self.store.engine.begin() as conn:
                conn.execute(update(alert_outbox).where(alert_outbox.c.id == row_id, alert_outbox.c.claim == self.mark)
                             .values(sent=utcnow(), attempts=attempts + 1, lease_until=None, last_error=""))
            sent += 1
            self.log(f"alerts: {channel}: sent {message.title!r}")
        return sent
