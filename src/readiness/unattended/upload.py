"""Upload with store and forward: every result reaches the collector once, whatever the link does.

Sits after the atomic write at the end of the agent's pipeline (``readiness run --upload-url``)
and behind ``readiness upload``. A result to send is first copied into the spool folder (a
per-user state folder from platformdirs, or ``--spool-dir``); only the collector's explicit
"stored" (201 or 200 with ``{"run_id": <this run>, "stored": "new" | "already"}``) removes it.
Each file sent has one of four outcomes (:class:`Sent`):

- ``stored``: the collector holds it (sent twice, after an answer lost on the way back, it is
  stored once and both answers say so);
- ``waiting``: the collector is unreachable, answered 5xx, 408 or 429, or the connection was
  cut. The file stays for the next run or ``readiness upload``. Retries back off exponentially
  with full jitter (many room PCs starting together after an outage must not knock the
  collector down again), honouring ``Retry-After`` within the same bounds. One file that keeps
  failing does not hold back the others; a collector that cannot be reached at all (or answers
  503, or fails several files in a row) ends the call: the rest wait too;
- ``quarantined``: the collector refused *this file* (413 too large, 400/422 not a valid result,
  403 another site's result, 409 run id taken: a 4xx with its reason code), or the agent could
  not send it at all (not a regular file, a link, unreadable, not a result, larger than any
  collector takes). It moves to ``quarantine/`` inside the spool with ``<name>.reason.txt``
  beside it, so it never blocks or fails a later run; ``readiness upload --quarantined`` lists,
  ``--drop-quarantined`` deletes them;
- ``held``: nothing is wrong with the file, but nothing can go until a person acts: the token
  is refused (401, or 407 from a proxy), the address redirects (3xx: never followed, so the
  token never reaches another host), or what answers is not the collector (404, 405, a 2xx
  without "stored"). The file stays; the call stops.

The spool never follows a link: a symbolic link, a FIFO or a file with several hard links is
set aside unread (a link to a secret file must not be sent with the token). Newest first: the
run's own result goes before older ones.

No new dependency (the agent stays light): requests go through ``measure.request.send``, so uploads
take the same proxy (setting, environment, PAC, OS) and trust store (the OS's) as the network
checks, and no redirect is ever followed. Every URL shown is redacted (no credentials, no query).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from readiness.atomic import read_regular
from readiness.check import CheckError
from readiness.i18n.format import word
from readiness.measure.netcommon import HttpUrl
from readiness.measure.request import ConnectFailed, send
from readiness.redact import redact_text, redact_url
from readiness.unattended.spool import (UploadError, _entries, _read_spooled, _run_id_of, _SetAside, drop_quarantined,
                                        quarantine_dir, quarantined, set_aside)

TOKEN_ENV = "READINESS_UPLOAD_TOKEN"
MAX_TOKEN_FILE_BYTES = 64 * 1024  # a token is 47 characters
API_PATH = "/api/v1/results"
REQUEST_TIMEOUT_S = 30.0
CONTINUE_WAIT_S = 3.0  # for the collector's "100 Continue" before a body goes
IN_A_ROW = 3  # files failing one after another with no success between: the collector, not the files

STORED, WAITING, QUARANTINED, HELD = "stored", "waiting", "quarantined", "held"


def read_token(token_file: str | os.PathLike[str] | None) -> str:
    """The upload token: from the file, else from $READINESS_UPLOAD_TOKEN."""
    if token_file:
        try:  # a regular file only, and small: a pipe would wait for ever, /dev/zero fill memory
            token = read_regular(token_file, MAX_TOKEN_FILE_BYTES).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UploadError("upload.err_token_unreadable", file=str(token_file),
                              detail=getattr(exc, "strerror", None) or str(exc)) from None
        if not token:
            raise UploadError("upload.err_token_empty", file=str(token_file))
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise UploadError("upload.err_token_needed", env=TOKEN_ENV)
    if any(c.isspace() or not c.isprintable() for c in token):
        raise UploadError("upload.err_token_chars")
    return token


def results_url(url: str) -> str:
    """The collector's upload endpoint from the URL IT gives (the server's base URL); no
    credentials or query from ``url`` go into it, and an error shows ``url`` redacted."""
    try:
        parsed = HttpUrl(url, "")
    except (CheckError, ValueError):
        raise UploadError("upload.err_url", url=repr(redact_url(url))) from None
    base = parsed.base[: -len(API_PATH)] if parsed.base.endswith(API_PATH) else parsed.base
    return f"{parsed.scheme}://{parsed.hostheader}{base}{API_PATH}"


def collector_urls(urls: str | list[str] | tuple[str, ...]) -> list[str]:
    """The upload endpoints of one collector or several replicas, in the order they are tried:
    base URLs separated by commas, or a list."""
    items = [u.strip() for part in ([urls] if isinstance(urls, str) else urls) for u in part.split(",")]
    endpoints = [results_url(u) for u in items if u]
    if not endpoints:
        raise UploadError("upload.err_no_url")
    return endpoints


@dataclass
class Sent:
    """What happened to one spooled file in one call."""

    name: str  # the file's name in the spool
    outcome: str  # STORED, WAITING, QUARANTINED or HELD
    why: str = ""  # in the call's language; for STORED, "new" or "already"
    run_id: str = ""


@dataclass
class Report:
    """What one ``send_all`` did."""

    files: list[Sent] = field(default_factory=list)
    waiting: int = 0  # files still in the spool, not sent (this call's unsent ones included)
    problem: str = ""  # why they wait (the last reason)
    held: str = ""  # why the call stopped and needs a person (token, redirect, not a collector)
    quarantine: Path | None = None

    def of(self, outcome: str) -> list[Sent]:
        return [s for s in self.files if s.outcome == outcome]

    @property
    def sent(self) -> list[str]:
        return [s.run_id for s in self.of(STORED)]

    def for_run(self, run_id: str) -> Sent | None:
        return next((s for s in self.files if s.run_id == run_id or s.name == f"{run_id}.json"), None)

    @property
    def exit_code(self) -> int:
        """For ``readiness upload``: 2 when this call was refused (a file set aside, or the token or
        address refused), 1 when some still wait, 0 when all went."""
        return 2 if self.of(QUARANTINED) or self.held else 1 if self.waiting else 0


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None, whole: bool = False) -> None:
        super().__init__(why)
        self.after = after
        self.whole = whole  # about the collector (unreachable, 503), not this file


class _Held(Exception):
    """Not stored, not this file's fault, and trying again will not help until a person acts;
    ``token``: the token was refused (every replica would refuse it)."""

    def __init__(self, why: str, token: bool = False) -> None:
        super().__init__(why)
        self.token = token


class _Refused(Exception):
    """The collector refused this file."""

    endpoint = ""


def _reason(body: bytes, fallback: str) -> tuple[str, str]:
    """(the collector's reason code, its reason text) from a refusal's JSON body."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return "", fallback
    if not isinstance(data, dict):
        return "", fallback
    code = data.get("error") if isinstance(data.get("error"), str) else ""
    text = data.get("reason") or data.get("error") or fallback
    return code[:60], redact_text(str(text))[:300]


class _Asking:
    """How long to wait for "100 Continue" in this call: ``CONTINUE_WAIT_S`` until a server (or a
    proxy between) has once not answered it; then the bodies go at once (a proxy that drops the
    interim answer would otherwise cost that wait per file)."""

    def __init__(self) -> None:
        self.wait_s = CONTINUE_WAIT_S

    def saw(self, invited: bool | None) -> None:
        if invited is False:
            self.wait_s = 0.0


def _post(url: str, token: str, body: bytes, run_id: str, timeout: float, resolver: Any, lang: str,
          asking: _Asking) -> str:
    """One attempt; returns "new" or "already" on the collector's explicit "stored"; raises
    _Refused (this file), _Held (the token or the address), or _Retry (later)."""

    shown = redact_url(url)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "User-Agent": "readiness-agent"}
    try:
        answer = send(url, body, headers, timeout_s=timeout, resolver=resolver, continue_wait_s=asking.wait_s)
        asking.saw(answer.invited)
    except ConnectFailed as exc:
        raise _Retry(word(lang, "upload.why_unreachable", detail=redact_text(str(exc))), whole=True) from None
    except (OSError, ValueError) as exc:  # reset or cut mid-exchange, a timeout, a garbled answer
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise _Retry(word(lang, "upload.why_cut", detail=redact_text(str(detail)))) from None
    status = answer.status
    if 300 <= status < 400:
        where = answer.headers.get("location", "")
        raise _Held(word(lang, "upload.why_redirect", url=shown, status=str(status),
                         location=redact_url(where) if where else "?"))
    code, text = _reason(answer.body, f"HTTP {status}")
    if status in (200, 201):
        try:
            data = json.loads(answer.body)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and data.get("run_id") == run_id and data.get("stored") in ("new", "already"):
            return str(data["stored"])
        raise _Held(word(lang, "upload.why_not_collector", url=shown, status=str(status)))
    if status in (401, 407):
        raise _Held(word(lang, "upload.why_token", status=str(status), reason=text), token=True)
    if status == 413 or (400 <= status < 500 and code and status not in (404, 405, 408, 425, 429)):
        raise _Refused(word(lang, "upload.why_refused", status=str(status), reason=text))
    if status in (408, 425, 429) or status >= 500:
        after = answer.headers.get("retry-after", "")
        raise _Retry(word(lang, "upload.why_server", status=str(status), reason=text),
                     float(after) if after.isdigit() else None, whole=status in (429, 503))
    raise _Held(word(lang, "upload.why_not_collector", url=shown, status=str(status)))


def _post_any(endpoints: list[str], first: int, token: str, body: bytes, run_id: str, timeout: float, resolver: Any,
              lang: str, asking: _Asking) -> tuple[int, str]:
    """One attempt over the replicas: from ``first`` (the one that took the last file), then the
    others in order; (the index of the one that stored it, "new" or "already"). A refusal of the
    file or the token (_Refused, a 401) is not tried elsewhere: the replicas share one database,
    so it would be refused there too. An address that redirects or is no collector is passed
    over for the next (the token still goes to none but the addresses given). None took it: the
    first such _Held, else the last _Retry (``whole`` only when every replica was away)."""
    held: _Held | None = None
    retry: _Retry | None = None
    whole = True
    for i in [first, *(j for j in range(len(endpoints)) if j != first)]:
        try:
            return i, _post(endpoints[i], token, body, run_id, timeout, resolver, lang, asking)
        except _Refused as exc:
            exc.endpoint = endpoints[i]  # for the reason file: which collector refused it
            raise
        except _Held as exc:
            if exc.token or len(endpoints) == 1:
                raise
            held = held or exc
        except _Retry as exc:
            whole = whole and exc.whole
            retry = exc if len(endpoints) == 1 else _Retry(f"{redact_url(endpoints[i])}: {exc}", exc.after, whole)
    if held is not None:
        raise held
    assert retry is not None
    raise retry


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: a random wait up to base * 2^attempt, at most ``cap``."""
    return rng.uniform(0, min(cap, base * (2 ** attempt)))


def send_all(url: str | list[str], token: str, folder: Path, attempts: int = 4, base_s: float = 1.0, cap_s: float = 30.0,
             timeout_s: float = REQUEST_TIMEOUT_S, sleep: Callable[[float], None] = time.sleep,
             rng: random.Random | None = None, log: Callable[[str], None] | None = None,
             resolver: Any = None, lang: str = "en") -> Report:
    """Send every spooled result, newest first; each one stored is removed from the spool, each
    one refused is set aside in quarantine. ``resolver``: a ``proxies.ProxyResolver`` carrying
    the run's proxy settings (None: the OS's). Messages are in ``lang``. ``url``: several
    collectors (replicas on one database, comma-separated or a list) are each tried in order
    within one attempt (``_post_any``), from the one that took the last file."""
    endpoints = collector_urls(url)
    good = 0
    rng = rng or random.Random()
    report = Report(quarantine=quarantine_dir(folder))
    files, odd = _entries(folder)

    def aside(path: Path, why: str, collector: str | None, run_id: str = "") -> Sent:
        try:
            set_aside(path, why, collector)
        except OSError as err:  # not moved: it stays, unsent, and the call says so (exit 2)
            detail = (word(lang, "upload.err_not_folder", folder=str(quarantine_dir(folder)))
                      if isinstance(err, NotADirectoryError) else err.strerror or str(err))
            report.held = f"{why} ({detail})"
            return Sent(path.name, HELD, report.held, run_id)
        return Sent(path.name, QUARANTINED, why, run_id)

    for path in odd:
        report.files.append(aside(path, word(lang, "upload.why_link"), None))
    failed_in_a_row = 0
    asking = _Asking()
    for n, path in enumerate(files):
        try:
            body = _read_spooled(path)
            run_id = _run_id_of(body)
        except FileNotFoundError:
            continue  # sent meanwhile by another readiness on this machine
        except _SetAside as exc:
            report.files.append(aside(path, exc.text(lang), None))
            continue
        sent: Sent | None = None
        stop = False
        for attempt in range(attempts):
            try:
                good, stored = _post_any(endpoints, good, token, body, run_id, timeout_s, resolver, lang, asking)
            except _Refused as exc:
                sent = aside(path, str(exc), exc.endpoint or endpoints[good], run_id)
                stop = sent.outcome == HELD  # a quarantine that takes nothing: stop before the next refusal
                break
            except _Held as exc:
                sent = Sent(path.name, HELD, str(exc), run_id)
                report.held = str(exc)
                stop = True
                break
            except _Retry as exc:
                report.problem = str(exc)
                if attempt + 1 < attempts:
                    wait = backoff(attempt, base_s, cap_s, rng)
                    if exc.after is not None:
                        wait = max(wait, min(exc.after, cap_s))
                    if log:
                        log(word(lang, "upload.retrying", why=str(exc), seconds=round(wait, 1)))
                    sleep(wait)
                    continue
                sent = Sent(path.name, WAITING, str(exc), run_id)
                failed_in_a_row += 1
                stop = exc.whole or failed_in_a_row >= IN_A_ROW
                break
            else:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                sent = Sent(path.name, STORED, stored, run_id)
                failed_in_a_row = 0
                break
        if sent is not None:
            report.files.append(sent)
        if stop:
            rest = files[n + 1:]
            report.files.extend(Sent(p.name, HELD if report.held else WAITING, report.held or report.problem)
                                for p in rest)
            break
    report.waiting = len([s for s in report.files if s.outcome in (WAITING, HELD)])
    return report


# --- what a person is told --------------------------------------------------------------------


def shown_urls(url: str) -> str:
    """One collector URL or several (comma-separated), each without credentials or query."""
    return ",".join(redact_url(u.strip()) for u in url.split(","))


def _plural(lang: str, key: str, n: int, **args: Any) -> str:
    return word(lang, f"{key}_one", **args) if n == 1 else word(lang, key, n=n, **args)


def own_line(report: Report, run_id: str, url: str, folder: Path, lang: str) -> tuple[str, str]:
    """The run's own upload in one line for its summary, and its outcome: stored, waiting (it
    goes later), quarantined or held (both a failure of this run: its exit code says error)."""
    mine = report.for_run(run_id)
    shown = shown_urls(url)
    if mine is None:  # gone before this call read it: another readiness on this machine took it,
        if os.path.lexists(quarantine_dir(folder) / f"{run_id}.json"):  # and set it aside,
            return word(lang, "upload.run_quarantined", why="?", folder=str(quarantine_dir(folder))), QUARANTINED
        if not os.path.lexists(folder / f"{run_id}.json"):  # or removed it: only "stored" removes
            return word(lang, "upload.run_stored", url=shown), STORED
        return word(lang, "upload.run_waiting", why=report.problem or "?", folder=str(folder)), WAITING
    if mine.outcome == STORED:
        return word(lang, "upload.run_already" if mine.why == "already" else "upload.run_stored", url=shown), STORED
    if mine.outcome == WAITING:
        return word(lang, "upload.run_waiting", why=mine.why, folder=str(folder)), WAITING
    if mine.outcome == QUARANTINED:
        return word(lang, "upload.run_quarantined", why=mine.why, folder=str(quarantine_dir(folder))), QUARANTINED
    return word(lang, "upload.run_held", why=mine.why, folder=str(folder)), HELD


def other_lines(report: Report, url: str, folder: Path, lang: str, skip_run: str | None = None) -> list[tuple[str, bool]]:
    """Lines about every file of this call (but ``skip_run``'s, said in the run's summary), each
    with whether it tells of a problem: refusals one by one, then how many went, how many wait,
    or why the call stopped."""
    mine = [s for s in report.files if not skip_run or s.run_id != skip_run]
    lines = [(word(lang, "upload.set_aside", name=s.name, why=s.why, folder=str(quarantine_dir(folder))), True)
             for s in mine if s.outcome == QUARANTINED]
    sent = [s for s in mine if s.outcome == STORED]
    if sent:
        lines.append((_plural(lang, "upload.uploaded", len(sent), url=shown_urls(url)), False))
    own = report.for_run(skip_run) if skip_run else None
    if report.held and not (own and own.outcome == HELD):  # the run's own line says it already
        lines.append((word(lang, "upload.held", why=report.held, folder=str(folder)), True))
    waits = [s for s in mine if s.outcome == WAITING]
    if waits and not report.held:
        lines.append((_plural(lang, "upload.waiting", len(waits), folder=str(folder), why=report.problem), True))
    return lines


def quarantine_note(folder: Path, lang: str) -> str:
    """One line when quarantine holds anything (so a refused file is never forgotten), else ""."""
    try:
        n = len(quarantined(folder))
    except UploadError:
        return ""
    return _plural(lang, "upload.in_quarantine", n) if n else ""


def quarantine_lines(folder: Path, lang: str, drop: bool = False) -> list[str]:
    """The ``readiness upload --quarantined`` listing; with ``drop``, then deleted."""
    items = quarantined(folder)
    qdir = quarantine_dir(folder)
    if not items:
        return [word(lang, "upload.quarantine_none", folder=str(qdir))]
    lines = [word(lang, "upload.quarantine_head", folder=str(qdir)),
             *(f"  {q.name}  {q.when}  {q.reason}" for q in items)]
    if drop:
        lines.append(word(lang, "upload.dropped", n=drop_quarantined(folder), folder=str(qdir)))
    return lines
