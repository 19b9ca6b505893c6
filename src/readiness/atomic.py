"""The one way readiness writes a file: whole or not at all, and never through a planted link.

Every output (result JSON, HTML reports, the fleet CSV and JSON) goes through here. Output
folders may be shares that room PCs can write to, where anyone can plant a link, so:

- the temporary file is created exclusively (``O_EXCL``, and ``O_NOFOLLOW`` where the OS has it)
  in the target's own folder, under an unpredictable name, so no existing name, link or not, is
  ever opened for writing;
- its mode is what an ordinary new file gets (0666 less the umask), not mkstemp's 0600;
- it is flushed to disk (fsync) and then renamed over the target: a rename replaces the
  directory entry, it never writes through a link that stands at the target's name;
- on any error the temporary file is removed and the error (an ``OSError``) is raised.

``write_all_or_none`` writes several files so that either all appear or none (a result JSON
is never left without its HTML); ``probe_writable`` proves a folder writable the same way.
``read_regular`` is the matching way to read a file someone else may have put there: a
regular file only (a pipe or device is refused without waiting on it), at most ``limit`` bytes.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class NotAFile(OSError):
    """A path that is not a regular file of a readable size; ``str()`` says why in plain words."""

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


def _create_temp(folder: Path, stem: str) -> tuple[int, Path]:
    """A new file in ``folder`` that did not exist before (and so is no one's link)."""
    for _ in range(100):
        tmp = folder / f".{stem[:40]}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file in {folder}")


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_temp(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        view = memoryview(raw)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    return tmp


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path``: readers see the old file or the whole new one."""
    write_all_or_none([(Path(path), data)])


def write_all_or_none(items: list[tuple[Path, str | bytes]]) -> None:
    """Write every (path, data) or none of them: all temporary files are written and synced
    first (a full disk fails here, before any target changes), then renamed in order; if a
    rename fails, the targets already renamed that did not exist before are removed again and
    the error is raised."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in items:
            temps.append((_write_temp(Path(path), data), Path(path)))
    except BaseException:
        for tmp, _ in temps:
            _unlink(tmp)
        raise
    done: list[tuple[Path, bool]] = []
    try:
        for tmp, target in temps:
            existed = os.path.lexists(target)
            os.replace(tmp, target)
            done.append((target, existed))
    except BaseException:
        for tmp, _ in temps[len(done):]:
            _unlink(tmp)
        for target, existed in done:
            if not existed:
                _unlink(target)
        raise


def probe_writable(folder: str | os.PathLike[str]) -> None:
    """Raise OSError unless a file can be created (and removed) in ``folder``; creates the
    folder if needed. Uses the same exclusive, unpredictable temporary name as the writer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(folder, "readiness-write-test")
    os.close(fd)
    os.unlink(tmp)


def _size(limit: int) -> str:
    return f"{limit / 1048576:g} MB" if limit >= 1048576 else f"{limit / 1024:g} kB"


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Raises NotAFile for a folder, a
    pipe, a device or a larger file (never blocking on a pipe), OSError when it cannot be read."""
    return read_regular_stat(path, limit)[0]


def read_regular_stat(path: str | os.PathLike[str], limit: int) -> tuple[bytes, os.stat_result]:
    """``read_regular``, and the file's status as it was opened (its modification time without
    a second look at the path)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise NotAFile("is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise NotAFile("not a regular file (a pipe, device or socket); not read")
        if st.st_size > limit:
            raise NotAFile(f"too large ({st.st_size / 1048576:.1f} MB; at most {_size(limit)})")
        # sized by the file, not the limit: reading limit + 1 allocates the whole limit (16 MB
        # for a result) for every file, which cost more than parsing a 50 kB result; read on
        # until the end (the file may have grown since fstat), still at most limit + 1 bytes.
        # os.read, not a buffered file object: that object cost a tenth of the parse
        data = os.read(fd, min(st.st_size, limit) + 1)
        while len(data) <= limit:
            piece = os.read(fd, limit + 1 - len(data))
            if not piece:
                break
            data += piece
        if len(data) > limit:  # grew while being read
            raise NotAFile(f"too large (more than {_size(limit)})")
        return data, st
    finally:
        os.close(fd)
