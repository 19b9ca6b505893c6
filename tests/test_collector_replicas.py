"""Several ``readiness serve --db postgresql://…`` replicas on one real PostgreSQL (tests/postgres.py),
each a real process: replicas starting together on an empty database, the same run sent to two
replicas at the same moment stored once, a token revoked through one place refused by every
replica at once, and a replica SIGKILLed mid-ingest while an agent fails over to the next URL:
every result arrives, none doubled."""

from __future__ import annotations

import json
import threading
import time

import collector_docs as docs
from postgres import postgres  # noqa: F401 - the session fixture
from readiness.collector.store import Store
from test_collector_serve import Collector, add_token, readiness_cmd, rows, spool_env


def _replicas(url: str, n: int = 2) -> list[Collector]:
    """``n`` replicas started at the same moment (they race to create the schema)."""
    out: list[Collector | BaseException] = [None] * n  # type: ignore[list-item]

    def start(i: int) -> None:
        try:
            out[i] = Collector(url)
        except BaseException as exc:  # noqa: BLE001 - reported below
            out[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [c for c in out if isinstance(c, Collector)]
    if len(started) < n:
        for c in started:
            c.kill()
        raise AssertionError(f"a replica did not start: {[c for c in out if not isinstance(c, Collector)]}")
    return started


def test_replicas_store_a_run_sent_to_both_at_once_once_and_share_revocation(cli, postgres):  # noqa: F811
    url = postgres.fresh_url()
    a, b = _replicas(url)
    try:
        token = add_token(cli, url, "--site", "Stockholm")
        for i in range(20):
            body = docs.body(docs.document(hostname=f"pc{i}", room=f"r{i}"))
            answers: list[int] = []
            go = threading.Barrier(2)

            def send(c: Collector) -> None:
                go.wait()
                answers.append(c.request("POST", "/api/v1/results", body, token)[0])

            pair = [threading.Thread(target=send, args=(c,)) for c in (a, b)]
            for t in pair:
                t.start()
            for t in pair:
                t.join()
            assert sorted(answers) == [200, 201], answers  # one stored it, the other found it stored
        assert rows(url) == 20
        # both replicas now remember the token (each keeps a found token two seconds)
        for c in (a, b):
            assert c.request("POST", "/api/v1/results", docs.body(docs.document(hostname="warm")), token)[0] in (200, 201)
        listed = cli("serve", "token", "list", "--db", url)
        token_id = listed.stdout.split()[0]
        revoked = cli("serve", "token", "revoke", token_id, "--db", url)
        assert revoked.returncode == 0, revoked.stderr
        # at once, with no wait: both replicas still hold the token in their two-second memory
        for c in (a, b):
            code, _, answer = c.request("POST", "/api/v1/results", docs.body(docs.document(hostname="late")), token)
            assert code == 401 and json.loads(answer)["error"] == "revoked_token"
        assert rows(url) == 22  # the 20 and the two sent to warm the replicas; nothing after the revocation
    finally:
        a.kill()
        b.kill()


def test_a_replica_killed_mid_ingest_loses_and_doubles_nothing_the_agent_fails_over(cli, postgres, tmp_path):  # noqa: F811
    url = postgres.fresh_url()
    token_file = tmp_path / "token"
    token_file.write_text(add_token(cli, url, "--site", "Stockholm"))
    a, b = _replicas(url)
    n = 400
    made = [docs.write(docs.document(hostname=f"pc{i}", room=f"r{i}"), tmp_path / "out") for i in range(n)]
    env = spool_env(tmp_path)
    try:
        spooled = cli("upload", "http://127.0.0.1:9", *map(str, made), "--token-file", str(token_file), "--attempts",
                      "1", env=env)
        assert spooled.returncode == 1 and len(list((tmp_path / "spool").glob("*.json"))) == n
        import subprocess

        agent = subprocess.Popen(readiness_cmd("upload", f"{a.url},{b.url}", "--token-file", str(token_file),
                                               "--attempts", "2"),
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while rows(url) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        a.kill()  # SIGKILL: a request may be half-read, committed without its answer, or lost
        at_kill = rows(url)
        _, err = agent.communicate(timeout=180)
        assert agent.returncode == 0, err
        assert 20 <= at_kill < n  # killed mid-ingest
        code, _, metrics = b.request("GET", "/metrics")
        taken = sum(float(line.split()[-1]) for line in metrics.decode().splitlines()
                    if line.startswith("readiness_uploads_total{") and ('"new"' in line or '"already"' in line))
        assert code == 200 and taken >= n - at_kill  # the rest went to the second replica
    finally:
        a.kill()
        b.kill()
    store = Store(url)
    try:
        stored = {run_id for run_id, _ in store.documents(all_runs=True)}
    finally:
        store.close()
    assert stored == {json.loads(p.read_text())["run_id"] for p in made}  # nothing lost
    assert rows(url) == n  # nothing doubled
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_run_with_two_upload_urls_sends_to_the_first_that_answers(cli, postgres, tmp_path):  # noqa: F811
    url = postgres.fresh_url()
    token_file = tmp_path / "token"
    token_file.write_text(add_token(cli, url, "--site", "Stockholm"))
    c = Collector(url)
    try:
        out = tmp_path / "out"
        done = cli("run", "--check", "system", "-o", str(out), "--quiet", "--no-open", "--site", "Stockholm",
                   "--upload-url", "http://127.0.0.1:9", "--upload-url", c.url, "--token-file", str(token_file),
                   env=spool_env(tmp_path), timeout=180)
        assert done.returncode in (0, 1, 3), done.stderr  # the verdict's code; the upload went through
        [result] = out.glob("*.json")
        store = Store(url)
        try:
            assert store.document(json.loads(result.read_text())["run_id"]) is not None
        finally:
            store.close()
        assert list((tmp_path / "spool").glob("*.json")) == []
    finally:
        c.kill()


def test_two_replicas_committing_the_same_rooms_in_opposite_orders_do_not_deadlock(postgres):  # noqa: F811
    """Two group commits (two replicas' writers) storing newer runs of the same 30 rooms at the same
    moment, one batch in the rooms' order and one in reverse: every row is locked in key order, so
    neither transaction is refused as a deadlock (in batch order, 4 of 20 such rounds were)."""
    from datetime import timedelta

    from readiness.collector.ingest import check

    url = postgres.fresh_url()
    replicas = [Store(url), Store(url)]
    replicas[0].migrate()

    def batch(hours: int) -> list[tuple]:
        out = []
        for i in range(30):
            doc = docs.document(hostname=f"pc{i}", room=f"r{i}", age=timedelta(hours=hours))
            _, row, measured, document, reqs = check(docs.body(doc))
            out.append((row, document if document is not None else docs.body(doc).decode(), measured, reqs))
        return out

    failures: list[BaseException] = []

    def commit(store: Store, items: list[tuple], go: threading.Barrier) -> None:
        go.wait()
        try:
            store._store_batch(items)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    try:
        for rnd in range(20):
            go = threading.Barrier(2)
            pair = [threading.Thread(target=commit, args=(replicas[0], batch(100 - 2 * rnd), go)),
                    threading.Thread(target=commit, args=(replicas[1], batch(99 - 2 * rnd)[::-1], go))]
            for t in pair:
                t.start()
            for t in pair:
                t.join(60)
        assert failures == []
        assert rows(url) == 20 * 2 * 30
    finally:
        for store in replicas:
            store.close()
