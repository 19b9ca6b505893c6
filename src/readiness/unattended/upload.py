"""Upload with store and forward: every result reaches the collector once, whatever the link does.

Sits after the atomic write at the end of the agent's pipeline (``readiness run --upload URL``)
and behind ``readiness upload``. A result to send is first copied into the spool folder (a
per-user state folder from platformdirs, or ``--spool-dir``); only an answer of success from
the collector removes it. So:

- collector unreachable, 5xx, the connection cut: the file stays and is sent by the next run or
  ``readiness upload``. Within one call, retries back off exponentially with full jitter (many
  room PCs starting together after a collector outage must not knock it down again); a
  ``Retry-After`` the collector sends is honoured, within the same bounds.
- 4xx (bad or revoked token, a document refused): a plain error naming the file and the
  collector's reason; the file stays (nothing is lost; a fixed token sends it later).
- sent twice (an answer lost on the way back): the collector stores a run once (by run id)
  and answers success both times, so nothing is doubled.

No new dependency (the agent stays light): requests go through ``proxies.urlopen``, the one way
the agent reaches the outside, so uploads take the same proxy (setting, environment, PAC, OS)
and the same trust store (the OS's) as the network checks.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from readiness.atomic import read_regular
from readiness.check import CheckError
from readiness.measure.netcommon import HttpUrl
from readiness.measure.proxies import urlopen
from readiness.result import ResultError, read_result, write_atomic

TOKEN_ENV = "READINESS_UPLOAD_TOKEN"
MAX_TOKEN_FILE_BYTES = 64 * 1024  # a token is 47 characters
SPOOL_ENV = "READINESS_SPOOL_DIR"
API_PATH = "/api/v1/results"
REQUEST_TIMEOUT_S = 30.0


class UploadError(Exception):
    """A user mistake or a refusal, in plain words (the CLI prints it and exits 2)."""


def spool_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """Where results wait: ``given``, else $READINESS_SPOOL_DIR, else the user's state folder."""
    if given:
        return Path(given).expanduser()
    if os.environ.get(SPOOL_ENV):
        return Path(os.environ[SPOOL_ENV]).expanduser()
    from platformdirs import user_state_path

    return user_state_path("readiness", appauthor=False) / "spool"


def read_token(token_file: str | os.PathLike[str] | None) -> str:
    """The upload token: from the file, else from $READINESS_UPLOAD_TOKEN."""
    if token_file:
        try:  # a regular file only, and small: a pipe would wait for ever, /dev/zero fill memory
            token = read_regular(token_file, MAX_TOKEN_FILE_BYTES).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UploadError(f"cannot read the token file {token_file}: {getattr(exc, 'strerror', None) or exc}") from None
        if not token:
            raise UploadError(f"the token file {token_file} is empty")
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise UploadError(f"an upload token is needed: give --token-file FILE or set {TOKEN_ENV}")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise UploadError("the upload token holds spaces or control characters; copy it again")
    return token


def results_url(url: str) -> str:
    """The collector's upload endpoint from the URL IT gives (the server's base URL)."""

    try:
        parsed = HttpUrl(url, "--upload must be a URL like https://collector.example:8080")
    except CheckError as exc:
        raise UploadError(str(exc)) from None
    base = parsed.base[: -len(API_PATH)] if parsed.base.endswith(API_PATH) else parsed.base
    return f"{parsed.scheme}://{parsed.hostheader}{base}{API_PATH}"


def collector_urls(urls: str | list[str] | tuple[str, ...]) -> list[str]:
    """The upload endpoints of one collector or several replicas, in the order they are tried:
    base URLs separated by commas, or a list."""
    items = [u.strip() for part in ([urls] if isinstance(urls, str) else urls) for u in part.split(",")]
    endpoints = [results_url(u) for u in items if u]
    if not endpoints:
        raise UploadError("give the collector's URL, like https://collector.example:8080")
    return endpoints


def enqueue(result_file: str | os.PathLike[str], folder: Path) -> Path:
    """Put a copy of a result file into the spool, named by its run id (one file per run)."""
    try:
        result = read_result(result_file)
    except ResultError as exc:
        raise UploadError(str(exc)) from None
    if not isinstance(result.run_id, str) or not result.run_id.isalnum():
        raise UploadError(f"{result_file}: the result has no usable run id")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{result.run_id}.json"
        if not target.exists():
            write_atomic(target, Path(result_file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UploadError(f"cannot keep the result in the spool folder {folder}: {exc.strerror or exc}") from None
    return target


def waiting(folder: Path) -> list[Path]:
    """Spooled results, oldest first."""
    try:
        files = [p for p in folder.iterdir() if p.suffix == ".json" and p.is_file() and not p.name.startswith(".")]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UploadError(f"cannot read the spool folder {folder}: {exc.strerror or exc}") from None
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


@dataclass
class Report:
    """What one ``send_all`` did."""

    sent: list[str] = field(default_factory=list)  # run ids the collector now holds
    refused: list[tuple[str, str]] = field(default_factory=list)  # (file, the collector's reason)
    waiting: int = 0  # files still in the spool for want of a collector
    problem: str = ""  # why they wait

    @property
    def exit_code(self) -> int:
        return 2 if self.refused else 1 if self.waiting else 0


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.after = after


def _post(url: str, token: str, body: bytes, timeout: float, resolver: Any) -> None:
    """One attempt; returns on success, raises UploadError (4xx) or _Retry (anything else)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "User-Agent": "readiness-agent"}
    try:
        with urlopen(url, data=body, headers=headers, timeout_s=timeout, resolver=resolver, method="POST") as resp:
            resp.read(65536)
            return
    except urllib.error.HTTPError as exc:
        reason = _reason(exc)
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise UploadError(f"the collector refused it ({exc.code}): {reason}") from None
        after = exc.headers.get("Retry-After") if exc.headers else None
        raise _Retry(f"the collector answered {exc.code}: {reason}",
                     float(after) if after and after.isdigit() else None) from None
    except urllib.error.URLError as exc:
        why = exc.reason
        raise _Retry(f"cannot reach the collector: {getattr(why, 'strerror', None) or why}") from None
    except (OSError, ValueError) as exc:  # connection reset or cut mid-answer, timeout, bad status line
        raise _Retry(f"the upload was cut: {getattr(exc, 'strerror', None) or exc}") from None


def _post_any(endpoints: list[str], first: int, token: str, body: bytes, timeout: float, resolver: Any) -> int:
    """One attempt over the replicas: from ``first`` (the one that answered last), then the others in
    order; returns the index of the one that took it. A refusal (UploadError) is not tried
    elsewhere: the replicas share one database, so it would be refused there too. None reachable:
    the last one's _Retry."""
    failed: _Retry | None = None
    for i in [first, *(j for j in range(len(endpoints)) if j != first)]:
        try:
            _post(endpoints[i], token, body, timeout, resolver)
            return i
        except _Retry as exc:
            failed = exc if len(endpoints) == 1 else _Retry(f"{endpoints[i]}: {exc}", exc.after)
    assert failed is not None
    raise failed


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(exc.read(65536) or b"{}")
        return str(data.get("reason") or data.get("error") or exc.reason)[:300]
    except (OSError, ValueError, AttributeError):
        return str(exc.reason)


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: a random wait up to base * 2^attempt, at most ``cap``."""
    return rng.uniform(0, min(cap, base * (2 ** attempt)))


def send_all(url: str | list[str], token: str, folder: Path, attempts: int = 4, base_s: float = 1.0, cap_s: float = 30.0,
             timeout_s: float = REQUEST_TIMEOUT_S, sleep: Callable[[float], None] = time.sleep,
             rng: random.Random | None = None, log: Callable[[str], None] | None = None,
             resolver: Any = None) -> Report:
    """Send every spooled result, oldest first; each one sent is removed from the spool.
    ``resolver``: a ``proxies.ProxyResolver`` carrying the run's proxy settings (None: the OS's).

    When the collector cannot be reached after ``attempts`` tries of one file, the rest wait
    too (no point hammering a collector that is down); they go with the next call. ``url``:
    several collectors (replicas on one database, comma-separated or a list) are each tried in
    order within one attempt (``_post_any``), from the one that took the last file.
    """
    endpoints = collector_urls(url)
    good = 0
    rng = rng or random.Random()
    report = Report()
    files = waiting(folder)
    for n, path in enumerate(files):
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            continue  # sent meanwhile by another readiness on this machine
        except OSError as exc:
            report.refused.append((str(path), f"cannot read it: {exc.strerror or exc}"))
            continue
        for attempt in range(attempts):
            try:
                good = _post_any(endpoints, good, token, body, timeout_s, resolver)
            except UploadError as exc:
                report.refused.append((str(path), str(exc)))
                break
            except _Retry as exc:
                report.problem = str(exc)
                if attempt + 1 < attempts:
                    wait = backoff(attempt, base_s, cap_s, rng)
                    if exc.after is not None:
                        wait = max(wait, min(exc.after, cap_s))
                    if log:
                        log(f"{exc}; trying again in {wait:.1f} s")
                    sleep(wait)
                continue
            path.unlink(missing_ok=True)
            report.sent.append(path.stem)
            break
        else:
            report.waiting = len(files) - n  # this one and those after it
            return report
    return report
