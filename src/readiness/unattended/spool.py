"""The spool: where results wait on a room PC until a collector has stored them, and the
quarantine beside it for the files a collector refused (each with its reason). Files are opened
without following links and must be regular files with one name: a link planted in the spool
is never sent. ``unattended.upload`` sends what waits here."""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from platformdirs import user_state_path

from readiness.atomic import write_atomic
from readiness.i18n.format import Worded
from readiness.redact import redact_url
from readiness.result import ResultError, read_result

SPOOL_ENV = "READINESS_SPOOL_DIR"
QUARANTINE = "quarantine"
REASON_SUFFIX = ".reason.txt"
MAX_SEND_BYTES = 64 * 1000 * 1000  # the largest --max-upload-mb a collector can be given


class UploadError(Worded):
    """A user mistake, in plain words: a catalog key (``upload.err_*``) and its arguments; the CLI
    prints ``text(lang)`` and exits 2."""


def spool_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """Where results wait: ``given``, else $READINESS_SPOOL_DIR, else the user's state folder."""
    if given:
        return Path(given).expanduser()
    if os.environ.get(SPOOL_ENV):
        return Path(os.environ[SPOOL_ENV]).expanduser()
    return user_state_path("readiness", appauthor=False) / "spool"


def enqueue(result_file: str | os.PathLike[str], folder: Path) -> Path:
    """Put a copy of a result file into the spool, named by its run id (one file per run)."""

    try:
        result = read_result(result_file)
    except ResultError as exc:
        raise UploadError("upload.err_result", detail=str(exc)) from None
    if not isinstance(result.run_id, str) or not result.run_id.isalnum():
        raise UploadError("upload.err_no_run_id", file=str(result_file))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{result.run_id}.json"
        if not os.path.lexists(target):
            write_atomic(target, Path(result_file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UploadError("upload.err_spool_write", folder=str(folder), detail=exc.strerror or str(exc)) from None
    return target


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(regular ``*.json`` files, newest first; ``*.json`` entries that are anything else)."""
    files: list[tuple[float, str, Path]] = []
    odd: list[Path] = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if not e.name.endswith(".json") or e.name.startswith("."):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                if stat.S_ISREG(st.st_mode):
                    files.append((st.st_mtime, e.name, Path(e.path)))
                else:
                    odd.append(Path(e.path))
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise UploadError("upload.err_spool_read", folder=str(folder), detail=exc.strerror or str(exc)) from None
    files.sort(key=lambda t: (-t[0], t[1]))
    return [p for _, _, p in files], odd


def waiting(folder: Path) -> list[Path]:
    """Spooled results that will be sent, newest first (links and other odd entries excluded)."""
    return _entries(folder)[0]


class _SetAside(Worded):
    """This file cannot be sent at all; the reason is a catalog key and its arguments."""


def _read_spooled(path: Path) -> bytes:
    """The bytes of one spooled file, read without following a link (O_NOFOLLOW, and the open
    file checked: a regular file with one name, not too large), without hanging on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():  # Windows: no O_NOFOLLOW
            raise _SetAside("upload.why_link")
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise _SetAside("upload.why_link") from None
        raise _SetAside("upload.why_unreadable", detail=exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise _SetAside("upload.why_link")
        if st.st_size > MAX_SEND_BYTES:
            raise _SetAside("upload.why_too_large", mb=MAX_SEND_BYTES / 1e6)
        data = f.read(MAX_SEND_BYTES + 1)
    if len(data) > MAX_SEND_BYTES:
        raise _SetAside("upload.why_too_large", mb=MAX_SEND_BYTES / 1e6)
    return data


def _run_id_of(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _SetAside("upload.why_not_result") from None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    if not isinstance(run_id, str) or not run_id.isascii() or not run_id.isalnum():
        raise _SetAside("upload.why_not_result")
    return run_id


def quarantine_dir(folder: Path) -> Path:
    return folder / QUARANTINE


def set_aside(path: Path, why: str, collector: str | None) -> None:
    """Move a spooled file into the quarantine folder with its reason beside it."""

    qdir = quarantine_dir(path.parent)
    qdir.mkdir(exist_ok=True)
    if qdir.is_symlink() or not qdir.is_dir():  # files go into the spool's own folder, never elsewhere
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(qdir))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"when: {when}", f"reason: {' '.join(why.split())}"]
    if collector:
        lines.insert(1, f"collector: {redact_url(collector)}")
    write_atomic(qdir / (path.name + REASON_SUFFIX), "\n".join(lines) + "\n")
    os.replace(path, qdir / path.name)  # a link moves as the link itself, never what it points to


@dataclass
class Quarantined:
    name: str
    when: str
    reason: str


def quarantined(folder: Path) -> list[Quarantined]:
    """What waits in quarantine, newest first, each with its reason."""
    qdir = quarantine_dir(folder)
    out: list[tuple[float, Quarantined]] = []
    try:
        entries = list(os.scandir(qdir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UploadError("upload.err_quarantine_read", folder=str(qdir), detail=exc.strerror or str(exc)) from None
    for e in entries:
        if e.name.endswith(REASON_SUFFIX) or e.name.startswith("."):
            continue
        facts = {"when": "", "reason": ""}
        try:
            with open(os.path.join(qdir, e.name + REASON_SUFFIX), encoding="utf-8", errors="replace") as f:
                for line in f.read(8192).splitlines():
                    key, sep, value = line.partition(": ")
                    if sep and key in facts:
                        facts[key] = value
        except OSError:
            pass
        try:
            mtime = e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        out.append((mtime, Quarantined(e.name, facts["when"], facts["reason"])))
    out.sort(key=lambda t: (-t[0], t[1].name))
    return [q for _, q in out]


def drop_quarantined(folder: Path) -> int:
    """Delete every file in quarantine (and its reason file); how many results were dropped."""
    qdir = quarantine_dir(folder)
    n = 0
    for q in quarantined(folder):
        try:
            os.unlink(qdir / q.name)  # unlink removes a link itself, never its target
            n += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UploadError("upload.err_quarantine_delete", file=str(qdir / q.name), detail=exc.strerror or str(exc)) from None
        try:
            os.unlink(qdir / (q.name + REASON_SUFFIX))
        except OSError:
            pass
    return n
