"""The result document: versioned, schema-valid, written atomically, refused when unreadable."""

from __future__ import annotations

import os

import pytest

from conftest import validate_result
from readiness.result import SCHEMA_VERSION, CheckRecord, Result, ResultError, read_result, result_stem, write_result


def make(run_id: str = "a" * 32, host: str = "PC 4.12/room") -> Result:
    rec = CheckRecord(name="system", status="ok", started_utc="2026-11-26T10:00:00.000Z", duration_s=1.0,
                      metrics={"ram_total_gb": {"value": 8, "unit": "GB"}}, details={"nan": float("nan"), "t": (1, 2)})
    return Result(run_id=run_id, started_utc="2026-11-26T10:00:00.000Z", finished_utc="2026-11-26T10:00:02.000Z",
                  host={"hostname": host, "os": "Windows"}, labels={"room": "4.12"},
                  profile={"name": "video-call", "sha256": "0" * 64}, checks={"system": rec}, tool_version="0.1.0")


def test_round_trip_and_schema(tmp_path):
    path = write_result(make(), tmp_path)
    doc = validate_result(path)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == "readiness-result"
    assert doc["checks"]["system"]["details"] == {"nan": None, "t": [1, 2]}  # JSON-safe
    again = read_result(path)
    assert again.metric("system.ram_total_gb") == (8, "GB", again.checks["system"])
    assert again.metric("camera.fps")[0] is None


def test_file_names_are_unique_per_host_and_time_and_safe(tmp_path):
    a, b = make("a" * 32), make("b" * 32)
    assert result_stem(a) == "readiness-PC-4.12-room-20261126T100000Z-aaaaaaaa"
    assert result_stem(a) != result_stem(b)
    write_result(a, tmp_path)
    write_result(b, tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2


# The atomic write is tested deterministically in test_writers.py (a racing reader caught a
# non-atomic writer only in some runs).


@pytest.mark.parametrize(
    "content, words",
    [
        (b"{\"kind\": \"readiness-result\", \"schema_ver", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2, 3]", "not a readiness result"),
        (b"{\"kind\": \"readiness-result\", \"schema_version\": 99}", "newer readiness (schema version 99"),
        (b"{\"kind\": \"readiness-result\", \"schema_version\": 1, \"checks\": {}}", "malformed result"),
    ],
)
def test_unreadable_results_are_refused_with_a_reason(tmp_path, content, words):
    p = tmp_path / "r.json"
    p.write_bytes(content)
    with pytest.raises(ResultError) as info:
        read_result(p)
    assert words in str(info.value) and str(p) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ResultError, match="cannot read"):
        read_result(tmp_path / "nope.json")
