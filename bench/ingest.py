"""Bench: the collector — ingest rate with nothing lost or doubled, and the fleet view from the database.

    python bench/ingest.py [--results 10000] [--clients 32] [--fleet-rooms 10000] [--fleet-runs 10]
                           [--skip-postgres] [--skip-fleet]

1. Ingest: ``--results`` results (made by bench/fleet.py's generator through the project's own
   result model) POSTed to a real ``readiness serve --db URL`` on loopback by ``--clients``
   concurrent clients (one keep-alive connection each), into SQLite and into PostgreSQL (a
   throw-away cluster, tests/postgres.py; needs root and Debian's postgresql). Then every tenth
   result is sent again, at the same concurrency. Counted: results/s, rows in the database
   (must equal the distinct run ids: zero lost), repeats answered "already" with no new row
   (zero doubled). References measured in the same run: the same bodies POSTed to the
   server's own ``/__up`` (the HTTP floor: no parsing, no database; both once the server's
   start-up warm-ups are over), and ``ingest()`` called
   in-process on one thread (the database floor: no HTTP). The results go in ``--rounds`` shares,
   each POSTed to ``/__up`` and then ingested, so each ratio pairs two measurements seconds apart.
   Target: >= 25 % of the HTTP floor's rate on SQLite (the median round). PostgreSQL: one
   replica, then two (``readiness serve`` twice on one database, the
   clients spread over them).
2. Fleet view: ``--fleet-rooms`` rooms x ``--fleet-runs`` runs stored in SQLite, then the fleet
   report built from the database (``readiness aggregate --db URL``: time and peak RSS) against
   ``readiness aggregate`` over the same results as files; and the live view, GET /fleet from
   ``readiness serve --db`` on the same database (its first request builds the fleet: asked
   once the server is idle after its start's warm-ups, and, on another start, right after it
   listens; the server's peak RSS). Then the same on PostgreSQL, every table copied there row for row
   (``--skip-postgres``: not). ``--keep`` leaves the fleet; ``--reuse DIR`` measures the views
   again over the one left in DIR (an older schema is upgraded first).
   Target: <= 2 s cold and <= 300 MB (issue 22), beside orjson's parse of the summaries the view
   reads, measured in the same run.

The machine is shared: timings taken while others load it are noisy; the ratios to the
references measured in the same run are the figures to compare.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from fleet import generate  # noqa: E402  bench/fleet.py: the same realistic fleet

TARGET_SHARE = 0.25  # of the bare HTTP endpoint's request rate, measured in the same run (issue 22)
TARGET_FLEET_S = 2.0  # cold, 10 000 rooms (issue 22)
TARGET_FLEET_MB = 300


def readiness(*args: str) -> list[str]:
    exe = shutil.which("readiness")
    return [exe, *args] if exe else [sys.executable, "-m", "readiness.cli", *args]


def results_from(top: Path) -> list[bytes]:
    """The generated result files (one per run; the generator's duplicate and broken copies left out)."""
    out = []
    for p in sorted(top.rglob("readiness-*.json")):
        if "sync-conflict" not in p.parts:
            out.append(p.read_bytes())
    return out


class Server:
    """``readiness serve --db URL`` on a loopback port the system picks."""

    def __init__(self, db_url: str, *extra: str) -> None:
        self.results_dir = tempfile.mkdtemp(prefix="readiness-bench-selftest-")  # removed by stop()
        self.proc = subprocess.Popen(readiness("serve", "--db", db_url, "--host", "127.0.0.1", "--http-port", "0",
                                               "--stun-port", "0", "--max-connections", "512", "--max-transfers", "64",
                                               "--results-dir", self.results_dir, *extra),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 60
        while True:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"readiness serve did not start: {line}")
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # drain the log

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server and its ingest workers have used: a figure the
        machine's other load changes far less than the wall time."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def peak_rss_mb(self) -> float:
        """The server process's peak resident memory so far (Linux: VmHWM)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

    def idle(self, quiet_s: float = 1.0, limit_s: float = 60.0) -> float:
        """Wait until the server has used no CPU for ``quiet_s`` (its start's warm-ups are done:
        plugins, compliance, the regressions pass, the plotting library); returns the seconds waited."""
        t0 = time.monotonic()
        last = self.cpu_s()
        while time.monotonic() - t0 < limit_s:
            time.sleep(quiet_s)
            now = self.cpu_s()
            if now - last < 0.02 * quiet_s:
                break
            last = now
        return time.monotonic() - t0

    def settled(self) -> float:
        """Let the start's warm-ups run now and wait until they are done (``idle``): they wait
        for a first /fleet page or ``service.WARM_AFTER_S``, which would otherwise fall inside a
        measurement (the plotting library's import in the middle of the ingest run, not in the
        reference's). Returns the seconds waited."""
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", "/fleet")
        conn.getresponse().read()
        conn.close()
        self.idle()
        return time.monotonic() - t0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.results_dir, ignore_errors=True)


def post_all(port: int | list[int], path: str, bodies: list[tuple[bytes, str]], clients: int
             ) -> tuple[float, dict[Any, int]]:
    """POST every (body, token) with ``clients`` threads, one keep-alive connection each (spread
    over the ports given, one per replica); returns the wall time and the count of each answer
    (status, or the error's name)."""
    ports = port if isinstance(port, list) else [port]
    answers: dict[Any, int] = {}
    lock = threading.Lock()
    shares = [bodies[i::clients] for i in range(clients)]

    def worker(share: list[tuple[bytes, str]], port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        seen: dict[Any, int] = {}
        for body, token in share:
            for _attempt in range(3):
                try:
                    conn.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                                   "Authorization": f"Bearer {token}"})
                    resp = conn.getresponse()
                    resp.read()
                    key: Any = resp.status
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    key = type(exc).__name__
                    conn.close()
            seen[key] = seen.get(key, 0) + 1
        conn.close()
        with lock:
            for k, v in seen.items():
                answers[k] = answers.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(s, ports[i % len(ports)])) for i, s in enumerate(shares)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, answers


def ingest_bench(name: str, db_url: str, bodies: list[bytes], clients: int, replicas: int = 1, rounds: int = 3) -> bool:
    from readiness.collector.ingest import ingest
    from readiness.collector.store import Store

    store = Store(db_url)
    store.migrate()
    sites = sorted({json.loads(b)["labels"].get("site", "") for b in bodies})
    token = {site: store.add_token("upload", site)[1] for site in sites}
    pairs = [(b, token[json.loads(b)["labels"].get("site", "")]) for b in bodies]
    run_ids = {json.loads(b)["run_id"] for b in bodies}

    # reference 1, the database floor: ingest() on this thread, no HTTP, into a second database
    floor_url = db_url.replace("readiness.db", "floor.db") if db_url.startswith("sqlite") else None
    floor_rate = None
    if floor_url:
        floor = Store(floor_url)
        floor.migrate()
        sample = bodies[:2000]
        t0 = time.perf_counter()
        for b in sample:
            ingest(floor, b, json.loads(b)["labels"].get("site", ""))
        floor_rate = len(sample) / (time.perf_counter() - t0)
        floor.close()

    servers = [Server(db_url) for _ in range(replicas)]
    ports = [server.port for server in servers]
    for server in servers:  # a collector as it runs: its start's warm-ups over before either measurement
        server.settled()

    def cpu_s() -> float:
        return sum(server.cpu_s() for server in servers)

    try:
        # reference 2, the HTTP floor: the same bodies to /__up (read and dropped), measured just
        # before each round's share is ingested, so each ratio pairs two measurements seconds apart
        # (this machine's speed drifts by a quarter between hours)
        up_s = secs = up_cpu = ingest_cpu = 0.0
        up_answers: dict[Any, int] = {}
        answers: dict[Any, int] = {}
        shares = []
        for share in (pairs[i::rounds] for i in range(rounds)):
            cpu0 = cpu_s()
            round_up_s, got = post_all(ports, "/__up", share, clients)
            cpu1 = cpu_s()
            round_s, stored_now = post_all(ports, "/api/v1/results", share, clients)
            cpu2 = cpu_s()
            up_s, secs = up_s + round_up_s, secs + round_s
            up_cpu, ingest_cpu = up_cpu + cpu1 - cpu0, ingest_cpu + cpu2 - cpu1
            for mine, theirs in ((up_answers, got), (answers, stored_now)):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            shares.append(round_up_s / round_s)
        stored = store.count()
        again = pairs[::10]
        again_s, again_answers = post_all(ports, "/api/v1/results", again, clients)
        stored_after = store.count()
        with store.engine.connect() as conn:
            from sqlalchemy import select

            from readiness.collector.tables import results

            in_db = {r for (r,) in conn.execute(select(results.c.run_id))}
            if store.dialect == "postgresql":  # what the capacity model in the README reads
                db_bytes = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
            else:
                db_bytes = sum(f.stat().st_size for f in Path(store.engine.url.database).parent.glob("readiness.db*"))
    finally:
        for server in servers:
            server.stop()
        store.close()
    rate = len(pairs) / secs
    lost = len(run_ids - in_db)
    doubled = stored_after - len(run_ids)
    print(f"\n[{name}] {len(pairs)} results, {clients} clients, {replicas} replica(s); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    share = statistics.median(shares)
    print(f"  ingest over HTTP:      {rate:8.0f} results/s ({secs:.1f} s)  answers {answers}")
    print(f"                         {len(pairs) / max(ingest_cpu, 1e-9):8.0f} results per CPU-second of the collector "
          f"(server and its ingest workers; one free core's rate)")
    print(f"  HTTP floor (/__up):    {len(pairs) / up_s:8.0f} requests/s, {len(pairs) / max(up_cpu, 1e-9):.0f} per "
          f"CPU-second  answers {up_answers}")
    print(f"  ingest against /__up:  {share:.0%}, the median of {rounds} rounds each measuring both on its share "
          f"({', '.join(f'{x:.0%}' for x in shares)})")
    if floor_rate:
        print(f"  in-process ingest():   {floor_rate:8.0f} results/s, one thread, no HTTP")
    print(f"  rows {stored} for {len(run_ids)} run ids: lost {lost}; every tenth sent again: answers "
          f"{again_answers}, rows after {stored_after}: doubled {doubled} ({len(again) / again_s:.0f} repeats/s)")
    print(f"  database size: {db_bytes / 1e6:.0f} MB for {stored_after} results = {db_bytes / stored_after / 1e3:.1f} kB "
          f"per result (documents of {sum(map(len, bodies)) / len(bodies) / 1e3:.1f} kB on average)")
    ok = lost == 0 and doubled == 0 and answers.get(201, 0) == len(pairs) and again_answers.get(200, 0) == len(again)
    if name == "sqlite":
        ok = ok and share >= TARGET_SHARE
        print(f"  target >= {TARGET_SHARE:.0%} of the HTTP floor's rate on SQLite (the same run): "
              f"{'met' if share >= TARGET_SHARE else 'MISSED'} ({share:.0%})")
    return ok


# Runs the command and prints the peak RSS of it alone: a child's ru_maxrss starts at the RSS of
# the process it was forked from (Linux keeps it across exec), and this bench holds a big fleet in
# memory, so the command is started from this small launcher instead.
_LAUNCHER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
             "print('peak-rss-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")


def peak_rss_run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall time, peak RSS (MB) and the printed summary of a subprocess."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {p.stdout[-400:]}")
    first = next((line for line in p.stdout.splitlines() if line.startswith("Read ")), "")
    rss_kb = next(int(line.split()[1]) for line in p.stdout.splitlines() if line.startswith("peak-rss-kb "))
    return secs, rss_kb / 1024, first


def fleet_bench(work: Path, rooms: int, runs: int, pg: Any = None, reuse: bool = False, files: bool = True) -> bool:
    """The fleet views over ``rooms`` x ``runs`` stored results (``make_fleet``; ``reuse``: the
    ones a previous run kept in ``work``), on SQLite and, given ``pg`` (tests/postgres.py), on
    PostgreSQL (the same rows copied there)."""
    db_url = f"sqlite:///{work / 'fleet.db'}"
    if not (reuse and (work / "fleet.db").exists()):
        make_fleet(work, rooms, runs)
    from readiness.collector.store import Store

    store = Store(db_url)
    store.migrate()  # a kept database of an older schema is brought up to date (and its records made)
    print(f"  {store.count()} stored runs", flush=True)
    store.close()
    ok = fleet_views(work, "SQLite", db_url, files)
    if pg is not None:
        pg_url = pg.fresh_url()
        t0 = time.perf_counter()
        copy_fleet(work / "fleet.db", pg_url)
        print(f"  copied to PostgreSQL in {time.perf_counter() - t0:.0f} s", flush=True)
        ok &= fleet_views(work, "PostgreSQL", pg_url, files=False)
    return ok


def copy_fleet(sqlite_path: Path, pg_url: str) -> None:
    """Every table of the fleet database, row for row, into a new PostgreSQL database (as
    ``readiness serve`` made it). The documents go as the text they are (no parse here), unpacked."""
    import sqlite3

    from readiness.collector.packed import is_packed, unpack
    from readiness.collector.store import RawJSON, Store
    from readiness.collector.tables import (day_counts, fleet_records, latest, requirements, results, room_days,
                                            run_history, summaries)

    store = Store(pg_url)
    store.migrate()
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)

    json_cols = {"document", "summary", "requirement", "record"}  # fleet_records' record is text: a RawJSON is text too
    times = {"started", "received"}
    # each room's days (the compliance) and its runs' history too: without them PostgreSQL's
    # fleet had no compliance and its view less to do than SQLite's
    for table in (requirements, results, summaries, fleet_records, latest, day_counts, room_days, run_history):
        names = [c.name for c in table.columns]
        cur = src.execute(f"SELECT {', '.join(names)} FROM {table.name}")
        while True:
            rows = cur.fetchmany(500)
            if not rows:
                break
            with store.engine.begin() as conn:
                conn.execute(table.insert(), [{n: (RawJSON(unpack(v).decode() if is_packed(v) else v) if n in json_cols
                                                   else when(v) if n in times else v)
                                               for n, v in zip(names, row)} for row in rows])
    src.close()
    # the statistics a running database has (autovacuum keeps them): without this, the server's
    # autovacuum analysed the freshly copied tables during the measurement (a first /fleet of
    # 4.5 s wall for 2.9 s of the collector's CPU, slower once idle than right after the start)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    store.close()


def make_fleet(work: Path, rooms: int, runs: int) -> None:
    """``rooms`` x ``runs`` stored results: results made by bench/fleet.py's generator (judged by
    the project's judge; at most 2 000 distinct ones, each standing for several computers under
    their own host name and room label), and ``runs - 1`` earlier copies of each (new run id,
    started a week earlier each): a fleet whose history is ten times its size."""
    from readiness.collector.ingest import row_of
    from readiness.collector.store import RawJSON, Store

    top = work / "fleet-files"
    print(f"\n[fleet view] {rooms * runs} results: {rooms} computers/rooms x {runs} runs; generating ...", flush=True)
    t0 = time.perf_counter()
    distinct = min(rooms, 2000)
    generate(top / "base", distinct, distinct, bad_every=10**9, html_every=10**9)
    bases = [p for p in sorted((top / "base").rglob("readiness-*.json")) if "sync-conflict" not in p.parts]
    bases_docs = [json.loads(p.read_bytes()) for p in bases]
    shutil.rmtree(top / "base")  # only the derived copies below are the fleet
    db_url = f"sqlite:///{work / 'fleet.db'}"
    store = Store(db_url)
    store.migrate()
    batch: list[tuple[Any, ...]] = []
    rng = random.Random(5)
    for n in range(rooms):
        base = bases_docs[n % len(bases_docs)]
        labels = dict(base["labels"], room=f"{base['labels']['room']}-{n}") if base["labels"].get("room") else base["labels"]
        doc = dict(base, run_id=f"{rng.getrandbits(128):032x}", labels=labels,
                   host=dict(base["host"], hostname=f"{base['host']['hostname']}-{n}"))
        for k in range(runs):
            if k:
                doc = dict(doc, run_id=f"{rng.getrandbits(128):032x}")
                for key in ("started_utc", "finished_utc"):
                    when = datetime.fromisoformat(doc[key].replace("Z", "+00:00")) - timedelta(days=7)
                    doc[key] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                text = json.dumps(doc)
                (top / f"older{k}").mkdir(parents=True, exist_ok=True)
                (top / f"older{k}" / f"readiness-{n}-{k}.json").write_text(text, encoding="utf-8")
            else:
                text = json.dumps(doc)
                (top / "latest").mkdir(parents=True, exist_ok=True)
                (top / "latest" / f"readiness-{n}.json").write_text(text, encoding="utf-8")
            row, checks, reqs = row_of(doc)
            batch.append((row, RawJSON(text), checks, reqs))
            if len(batch) >= 500:
                store._store_batch(batch)  # the bench loads the history directly; ingest is measured above
                batch = []
    if batch:
        store._store_batch(batch)
    print(f"  generated and stored in {time.perf_counter() - t0:.0f} s ({store.count()} rows)", flush=True)
    store.close()
    os.sync()  # the gigabytes just written go to disk now, not while the views below are timed


def fleet_views(work: Path, engine: str, db_url: str, files: bool = True) -> bool:
    """``aggregate --db`` and GET /fleet from ``readiness serve --db`` (cold, then built) on one
    database, beside orjson's parse of the summaries of the runs the view reads (same run);
    with ``files``, also ``aggregate`` over the same results as files, whose counts must match."""
    top = work / "fleet-files"
    print(f"\n  [{engine}]", flush=True)
    # the reference, in the same run: orjson's parse of the summaries the view reads (one per room
    # here), straight from SQLite; nothing else
    import sqlite3

    import orjson

    conn = sqlite3.connect(f"file:{work / 'fleet.db'}?mode=ro", uri=True)
    texts = [text for (text,) in conn.execute("SELECT summary FROM summaries WHERE run_id IN "
                                             "(SELECT DISTINCT run_id FROM latest)")]
    conn.close()
    t1 = time.perf_counter()  # the texts are in memory: the reference is the parse alone, not the disk
    for text in texts:
        orjson.loads(text)
    ref_s = time.perf_counter() - t1
    del texts
    out = work / f"fleet-db-{engine}.json"
    db_s, db_mb, db_err = peak_rss_run(readiness("aggregate", "--db", db_url, "-o", str(work / "fleet-db.html"),
                                                 "--json", str(out)))
    again_s = peak_rss_run(readiness("aggregate", "--db", db_url, "-o", str(work / "fleet-db.html"),
                                     "--json", str(out)))[0]
    if files:
        files_s, files_mb, files_err = peak_rss_run(readiness("aggregate", str(top), "-o",
                                                              str(work / "fleet-files.html"), "--json",
                                                              str(work / "fleet-files.json")))
    # the live view: GET /fleet from `readiness serve --db` on the same database (its first
    # request builds the fleet; later ones are served from the built one until the data changes)
    def get_fleet(server: Server) -> tuple[float, float, float]:
        cpu0 = server.cpu_s()
        t1 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        conn.request("GET", "/fleet")
        resp = conn.getresponse()
        page = resp.read()
        conn.close()
        if resp.status != 200 or b"</html>" not in page:
            raise RuntimeError(f"GET /fleet answered {resp.status}")
        return time.perf_counter() - t1, server.cpu_s() - cpu0, os.getloadavg()[0]

    # first right after "listening" (the start's warm-ups still running beside it), then on a
    # second start once the server is idle (warm-ups done, the fleet not built yet), then built
    server = Server(db_url)
    try:
        at_start = get_fleet(server)
        server_mb = server.peak_rss_mb()
    finally:
        server.stop()
    server = Server(db_url)
    try:
        waited = server.idle()
        timings, cpus = [], []
        for _ in range(2):
            wall, cpu, load = get_fleet(server)
            timings.append(wall)
            cpus.append((cpu, load))
        server_mb = max(server_mb, server.peak_rss_mb())
    finally:
        server.stop()
    a = json.loads(out.read_text())
    # the same fleet as from the files, or (without them) as from SQLite (itself, on SQLite)
    b = json.loads((work / ("fleet-files.json" if files else "fleet-db-SQLite.json")).read_text())
    # a requirement's texts come from the first profile that names it, so they depend on reading
    # order (files by path, the database by time); its counts must not
    counted = ("metric", "severity", "min", "max", "expect", "missed", "FAIL", "WARN", "UNKNOWN", "PASS", "judged")

    def reqs(f: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(tuple(str(r.get(k)) for k in counted) for r in f["requirements"])

    same = a["counts"] == b["counts"] and reqs(a) == reqs(b) and \
        [{k: v for k, v in x.items() if k != "rooms"} for x in a["sites"]] == \
        [{k: v for k, v in x.items() if k != "rooms"} for x in b["sites"]]
    print(f"  aggregate --db (from the database): {db_s:6.1f} s, peak RSS {db_mb:6.0f} MB  | {db_err}")
    print(f"                              again: {again_s:6.1f} s  (the first run reads the database file from disk "
          f"where this machine has dropped it from memory since it was written; the second, as on a running "
          f"collector, from memory)")
    if files:
        print(f"  aggregate over the same as files:   {files_s:6.1f} s, peak RSS {files_mb:6.0f} MB  | {files_err}")
    print(f"  GET /fleet from readiness serve --db: {timings[0]:6.2f} s the first time (builds the fleet; "
          f"asked once the server was idle, {waited:.1f} s after it listened), {timings[1]:.2f} s after (built); "
          f"the server's peak RSS {server_mb:.0f} MB; the server's CPU for the first {cpus[0][0]:.2f} s (load "
          f"average {cpus[0][1]:.1f} then), for the second {cpus[1][0]:.2f} s")
    print(f"  GET /fleet right after the server listened (its start's warm-ups running beside it): "
          f"{at_start[0]:.2f} s, the server's CPU {at_start[1]:.2f} s (load average {at_start[2]:.1f})")
    met = (min(db_s, again_s) <= TARGET_FLEET_S and timings[0] <= TARGET_FLEET_S and db_mb <= TARGET_FLEET_MB
           and server_mb <= TARGET_FLEET_MB)
    print(f"  reference: orjson's parse of the summaries the view reads: {ref_s:6.2f} s; aggregate --db takes "
          f"{min(db_s, again_s) / ref_s:.1f}x it, the live view's first request {timings[0] / ref_s:.1f}x "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if files:
        print(f"  the database view takes {db_s / files_s:.0%} of the files' time and {db_mb / files_mb:.0%} of their "
              "memory")
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"  same counts (fleet, per site, per requirement) as {'the files' if files else 'SQLite'}: {same}; target "
          f"<= {TARGET_FLEET_S:.0f} s and <= {TARGET_FLEET_MB} MB: {verdict(met)} — the live view's first request "
          f"{verdict(timings[0] <= TARGET_FLEET_S)} ({timings[0]:.2f} s; right after the start {at_start[0]:.2f} s), "
          f"the server's peak memory {verdict(server_mb <= TARGET_FLEET_MB)}, aggregate --db from memory "
          f"{verdict(min(db_s, again_s) <= TARGET_FLEET_S)} ({min(db_s, again_s):.1f} s), its memory "
          f"{verdict(db_mb <= TARGET_FLEET_MB)}")
    return same and met


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3,
                    help="Ingest the results in this many shares, each right after /__up took the same share")
    ap.add_argument("--fleet-rooms", type=int, default=10_000)
    ap.add_argument("--fleet-runs", type=int, default=10)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-fleet", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true", help="ingest into PostgreSQL only")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--keep", action="store_true", help="Keep the work folder (databases and files) and print where it is.")
    ap.add_argument("--skip-files", action="store_true", help="Do not time aggregate over the fleet as files")
    ap.add_argument("--reuse", metavar="DIR", help="The fleet view over the fleet a --keep run left in DIR (kept again)")
    args = ap.parse_args()
    work = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="readiness-bench-ingest-"))
    if args.reuse:
        args.keep, args.skip_ingest = True, True
    ok = True
    try:
        if not args.skip_ingest:
            print(f"generating {args.results} results ...", flush=True)
            generate(work / "files", args.results, max(1, args.results // 4), bad_every=10**9, html_every=10**9)
            bodies = results_from(work / "files")
            random.Random(3).shuffle(bodies)
            if not args.skip_sqlite:
                ok &= ingest_bench("sqlite", f"sqlite:///{work / 'readiness.db'}", bodies, args.clients,
                                   rounds=args.rounds)
        if not args.skip_postgres and not args.skip_ingest:
            from postgres import Postgres

            pg = Postgres()
            try:
                ok &= ingest_bench("postgresql", pg.fresh_url(), bodies, args.clients, rounds=args.rounds)
                ok &= ingest_bench("postgresql, two replicas", pg.fresh_url(), bodies, args.clients, replicas=2,
                                   rounds=args.rounds)
            finally:
                pg.close()
        if not args.skip_fleet:
            pg = None
            if not args.skip_postgres:
                from postgres import Postgres

                pg = Postgres()
            try:
                ok &= fleet_bench(work, args.fleet_rooms, args.fleet_runs, pg, reuse=bool(args.reuse),
                                  files=not args.skip_files)
            finally:
                if pg is not None:
                    pg.close()
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
