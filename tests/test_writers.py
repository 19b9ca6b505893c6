"""The output writers (``readiness.render.writers``): one registry, one atomic write.

The atomic-write test is deterministic: at the moment the new bytes are forced to disk
(fsync), the target must still hold the old document and a temporary file in the same folder
the whole new one. A writer that writes the target in place fails it every time (a reader
racing a writer caught that only some of the runs).
"""

from __future__ import annotations

import json
import os

from readiness.render import writers


def test_write_is_atomic_at_the_moment_of_fsync(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    old, new = json.dumps({"v": "old"}), json.dumps({"v": "new", "pad": "x" * 100_000})
    target.write_text(old, encoding="utf-8")
    seen = []
    real_fsync = os.fsync

    def spy(fd):
        real_fsync(fd)
        others = [p for p in tmp_path.iterdir() if p != target]
        seen.append((target.read_text(encoding="utf-8"), [p.read_text(encoding="utf-8") for p in others]))

    monkeypatch.setattr(os, "fsync", spy)
    writers.write_atomic(target, new)
    assert seen, "the data was never forced to disk before the rename"
    at_fsync, temps = seen[0]
    assert at_fsync == old  # a reader still sees the whole old file...
    assert temps == [new]  # ...while the whole new one waits beside it, in the same folder
    assert target.read_text(encoding="utf-8") == new
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # nothing left behind


def test_bytes_are_written_as_given(tmp_path):
    data = "\ufeffsite,room\r\nMalmö,4.12\r\n".encode("utf-8")  # the fleet CSV: a BOM, CRLF rows
    writers.write_atomic(tmp_path / "f.csv", data)
    assert (tmp_path / "f.csv").read_bytes() == data
