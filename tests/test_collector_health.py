"""The collector's own health, on a real ``readiness serve --db``: ``/healthz`` and ``/readyz`` for a
load balancer (no token), and ``/metrics``' process figures (ingest latency histogram, queue
depth, database errors, memory), with the database taken away for real (PostgreSQL stopped,
the SQLite file moved)."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

import collector_docs as docs
from postgres import Postgres
from test_collector_serve import Collector, add_token, collector, sqlite_url, token_file, spool_env  # noqa: F401

FORWARDED = {"X-Forwarded-For": "198.51.100.7"}  # as a proxy passes on another machine's request: not local


def _readyz(c, want: int, within_s: float = 15.0) -> tuple[int, dict, bytes]:
    """/readyz's answer once it is ``want`` (it keeps an answer about a second), or the last one."""
    import time

    deadline = time.monotonic() + within_s
    while True:
        got = c.request("GET", "/readyz")
        if got[0] == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_healthz_and_readyz_need_no_token_and_metrics_still_do(collector):
    for path, status, state in (("/healthz", 200, "ok"), ("/readyz", 200, "ready")):
        code, headers, body = collector.request("GET", path, headers=FORWARDED)
        assert (code, json.loads(body)["status"]) == (status, state)
        assert headers["cache-control"] == "no-store"
    assert collector.request("GET", "/metrics", headers=FORWARDED)[0] == 401


def test_metrics_show_ingest_latency_queue_errors_and_memory(cli, tmp_path, collector, token_file):
    made = [docs.write(docs.document(hostname=f"pc{i}", room=f"r{i}"), tmp_path / "out") for i in range(6)]
    sent = cli("upload", collector.url, *map(str, made), "--token-file", str(token_file), env=spool_env(tmp_path))
    assert sent.returncode == 0, sent.stderr
    token = token_file.read_text().strip()
    again = collector.request("POST", "/api/v1/results", made[0].read_bytes(), token)  # "already": counted too
    assert again[0] == 200
    code, _, body = collector.request("GET", "/metrics")
    assert code == 200
    m = _samples(body.decode())
    assert m[("readiness_ingest_seconds_count", ())] == 7
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items() if k[0] == "readiness_ingest_seconds_bucket")
    assert buckets[-1] == (float("inf"), 7) and all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert 0 < m[("readiness_ingest_seconds_sum", ())] < 7 * 60
    assert m[("readiness_ingest_queue_depth", ())] == 0  # all committed: nothing waits
    assert m[("readiness_database_errors_total", (("kind", "unreachable"),))] == 0
    rss = m[("process_resident_memory_bytes", ())]
    assert abs(rss / 1024 - collector.rss_kb()) < 0.5 * collector.rss_kb()  # the server's own RSS, as /proc says


def test_readyz_is_503_while_the_sqlite_file_is_gone_and_200_when_it_is_back(collector, sqlite_url):
    path = sqlite_url.removeprefix("sqlite:///")
    assert collector.request("GET", "/readyz")[0] == 200
    import os

    os.rename(path, path + ".away")
    try:
        code, headers, body = _readyz(collector, 503)
        assert code == 503 and headers["retry-after"] and json.loads(body)["status"] == "not_ready"
        assert path not in body.decode()  # the reason names no path
        assert collector.request("GET", "/healthz")[0] == 200  # the process itself is fine
    finally:
        os.rename(path + ".away", path)
    assert _readyz(collector, 200)[0] == 200


def test_readyz_follows_postgresql_and_database_errors_are_counted(cli, tmp_path):
    pg = Postgres()
    try:
        url = pg.fresh_url()
        token = add_token(cli, url, "--site", "Stockholm")
        c = Collector(url)
        try:
            assert c.request("GET", "/readyz")[0] == 200
            pg.stop()
            code, _, body = _readyz(c, 503)
            assert code == 503 and json.loads(body)["reason"] == "the database is not reachable"
            assert c.request("GET", "/healthz")[0] == 200
            assert c.request("POST", "/api/v1/results", docs.body(docs.document()), token)[0] == 503
            pg.start()
            assert _readyz(c, 200)[0] == 200
            code, _, body = c.request("GET", "/metrics")
            m = _samples(body.decode())
            assert code == 200 and m[("readiness_database_errors_total", (("kind", "unreachable"),))] >= 1
        finally:
            c.kill()
    finally:
        pg.close()


def test_readyz_asks_the_database_once_a_second_and_logs_a_failure_once_a_minute(cli, sqlite_url, token_file):
    """Anyone may ask /readyz: many asks while the database is away give one log line, not one
    per request (a log an anonymous client could fill), and each is still answered 503."""
    import os

    c = Collector(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    try:
        assert _readyz(c, 200)[0] == 200
        os.rename(path, path + ".away")
        try:
            assert _readyz(c, 503)[0] == 503
            codes = [c.request("GET", "/readyz")[0] for _ in range(30)]
        finally:
            os.rename(path + ".away", path)
        assert codes == [503] * 30
        assert _readyz(c, 200)[0] == 200
    finally:
        log = c.stop()
    assert log.count("readyz: database not reachable") == 1, log
