"""Bench: the fleet's compliance over 90 days from the collector's database — time and peak memory.

    python bench/compliance.py [--rooms 10000] [--days 90] [--skip-postgres] [--keep]

1. Fills ``room_days`` (revision 0008: each room's last run per UTC day, as ingest keeps it) for
   ``--rooms`` rooms over ``--days`` days and the few days before that can still carry into the
   window, in SQLite and in PostgreSQL (a throw-away cluster, tests/postgres.py): 8 sites, rooms
   that pass, fail or cannot be measured at their own rates, 5 % gone silent in the last days,
   a tenth that joined during the window. The table is filled directly (the ingest bench,
   bench/ingest.py, measures ingest, which keeps this table in the same transaction).
2. In a fresh process each (time and peak RSS): the compliance as /fleet and ``aggregate --db``
   compute it (``fleetdb.day_rows`` → ``fleet.compliance.compliance``: every site's share per day,
   every room's share over 30 and 90 days); the references measured in the same run: reading the
   same rows with the same query and nothing else, and the database's plain ``COUNT(*)`` over them.

Target (issue 23): <= 5 s and <= 400 MB for 10 000 rooms x 90 days. The machine is shared:
timings taken while others load it are noisy; the ratio to reading the rows is the figure to compare.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

TARGET_S = 5.0
TARGET_MB = 400.0
SITES = ["Stockholm", "Göteborg", "Malmö", "Uppsala", "Linköping", "Umeå", "Luleå", "Kiruna"]
AFTER_S = 3 * 86400.0


def fill(url: str, rooms: int, days: int, now: datetime) -> int:
    """``rooms`` x (``days`` + the carry-in days) rows of ``room_days``; the number written."""
    from sqlalchemy import insert

    from readiness.collector.store import Store
    from readiness.collector.tables import latest, results, room_days
    from readiness.fleet.compliance import lookback_days

    store = Store(url)
    store.migrate()
    rng = random.Random(23)
    span = days + lookback_days(AFTER_S)
    today = now.date()
    written = 0
    rows: list[dict] = []
    newest: list[dict] = []

    def flush(conn) -> None:
        nonlocal rows
        if not rows:
            return
        if store.dialect == "postgresql":  # COPY: a million rows in seconds, not minutes
            cur = conn.connection.driver_connection.cursor()
            with cur.copy("COPY room_days (room_key, day, site, room, hostname, run_id, started, verdict) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row((r["room_key"], r["day"], r["site"], r["room"], r["hostname"], r["run_id"],
                                  r["started"], r["verdict"]))
        else:
            conn.execute(insert(room_days), rows)
        rows = []

    with store.engine.begin() as conn:
        for i in range(rooms):
            site = SITES[i % len(SITES)]
            room = f"{i // 100}.{i % 100:02d}"
            fail, unknown = rng.random() * 0.3, rng.random() * 0.1
            first = rng.randrange(days) if rng.random() < 0.1 else span - 1  # a tenth joined during the window
            last = rng.randrange(1, 8) if rng.random() < 0.05 else 0  # 5 % went silent some days ago
            for k in range(first, last - 1, -1):
                day = today - timedelta(days=k)
                started = datetime(day.year, day.month, day.day, 7, 30, tzinfo=timezone.utc)
                if started > now:
                    started = now - timedelta(minutes=1)
                r = rng.random()
                verdict = "FAIL" if r < fail else "UNKNOWN" if r < fail + unknown else "PASS"
                rows.append({"room_key": f"room\x1f{site}\x1f{room}", "day": day.isoformat(), "site": site, "room": room,
                             "hostname": f"mr{i:05d}", "run_id": f"{i:016x}{k:016x}", "started": started,
                             "verdict": verdict})
                written += 1
            # the room's newest run, as ingest leaves it: ``latest`` names the labels compliance shows
            newest.append({"run_id": rows[-1]["run_id"], "site": site, "room": room, "hostname": f"mr{i:05d}",
                           "room_key": rows[-1]["room_key"], "started": rows[-1]["started"],
                           "received": rows[-1]["started"], "profile": "meeting-room", "verdict": rows[-1]["verdict"],
                           "coverage": 1.0, "document": {}})
            if len(rows) >= 20000:
                flush(conn)
        flush(conn)
        conn.execute(insert(results), newest)
        conn.execute(insert(latest), [{"room_key": r["room_key"], "check_name": "", "run_id": r["run_id"],
                                       "started": r["started"]} for r in newest])
    store.close()
    return written


def child(mode: str, url: str, now_iso: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    from sqlalchemy import func, select

    from readiness.collector.fleetdb import day_rows
    from readiness.collector.store import Store
    from readiness.collector.tables import room_days
    from readiness.fleet.compliance import compliance

    now = datetime.fromisoformat(now_iso)
    store = Store(url, create=False)
    t0 = time.perf_counter()
    if mode == "compliance":
        rows, labels = day_rows(store, now, AFTER_S)
        comp = compliance(rows, labels, now, AFTER_S)
        n = len(comp["rooms"])
    elif mode == "read":
        n = sum(1 for _ in day_rows(store, now, AFTER_S)[0])
    else:
        since = (now.date() - timedelta(days=89 + 5)).isoformat()
        with store.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(room_days).where(room_days.c.day >= since)).scalar_one()
    secs = time.perf_counter() - t0
    store.close()
    print(json.dumps({"s": secs, "n": n, "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(mode: str, url: str, now: datetime) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, url, now.isoformat()], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed: {done.stderr[-600:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(name: str, url: str, rooms: int, days: int) -> bool:
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    n = fill(url, rooms, days, now)
    print(f"{name}: {n} rows of room_days ({rooms} rooms x {days} days and the carry-in days) "
          f"filled in {time.perf_counter() - t0:.1f} s", flush=True)
    comp = measure("compliance", url, now)
    read = measure("read", url, now)
    count = measure("count", url, now)
    ok = comp["s"] <= TARGET_S and comp["mb"] <= TARGET_MB
    print(f"  compliance (every site's days, every room's share): {comp['s']:.2f} s, peak {comp['mb']:.0f} MB, "
          f"{comp['n']} rooms")
    print(f"  reference, reading the same rows: {read['s']:.2f} s, peak {read['mb']:.0f} MB ({read['n']} rows); "
          f"COUNT(*): {count['s']:.2f} s")
    print(f"  ratio to reading the rows: {comp['s'] / read['s']:.2f}x; target <= {TARGET_S:g} s and "
          f"<= {TARGET_MB:g} MB: {'met' if ok else 'MISSED'}", flush=True)
    return ok


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=10000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--keep", action="store_true", help="Keep the work folder and print where it is.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="readiness-bench-compliance-"))
    ok = True
    try:
        ok &= bench("sqlite", f"sqlite:///{work / 'readiness.db'}", args.rooms, args.days)
        if not args.skip_postgres:
            from postgres import Postgres

            pg = Postgres()
            try:
                ok &= bench("postgresql", pg.fresh_url(), args.rooms, args.days)
            finally:
                pg.close()
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
