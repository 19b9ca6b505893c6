"""Bench: what evaluating alerts adds to the collector's ingest cost (issue 23: at most 10 %).

    python bench/alerts.py [--results 3000] [--hosts 300] [--clients 16] [--rounds 2]

The same ``--results`` results (bench/fleet.py's generator: a realistic fleet whose rooms change
verdict from run to run) are POSTed by ``--clients`` concurrent clients to a real
``readiness serve --db sqlite:///…`` on loopback, into a fresh database each time: once without
``--alerts`` (the reference, measured in the same run) and once with an alert file (a rule for
every event to a signed webhook on a local receiver, grouped within 2 s). With alerts, the
measurement ends only when the alert thread has judged every room's newest run (its work is done
after the upload's answer, in the same process: it is counted). The figure is the collector's
CPU seconds (server and ingest workers) per result, the ratio with/without; the rounds alternate
and the median ratio is the result. Wall times are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fleet import generate  # noqa: E402  bench/fleet.py: the same realistic fleet
from ingest import Server, post_all, results_from  # noqa: E402  bench/ingest.py: the same server and clients

TARGET_RATIO = 1.10


def receiver() -> tuple[ThreadingHTTPServer, list[int]]:
    got: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_a: Any) -> None:
            return None

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append(1)
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def caught_up(db_url: str) -> bool:
    """Every room's newest run judged by the alerts."""
    from sqlalchemy import func, select

    from readiness.collector.store import Store
    from readiness.collector.tables import alert_rooms, latest

    store = Store(db_url, create=False)
    try:
        with store.engine.connect() as conn:
            rooms = conn.execute(select(func.count()).select_from(latest).where(
                latest.c.check_name == "", ~latest.c.room_key.startswith("browser"))).scalar_one()
            judged = conn.execute(select(func.count()).select_from(alert_rooms.join(
                latest, (latest.c.room_key == alert_rooms.c.room_key) & (latest.c.check_name == "")
                & (latest.c.run_id == alert_rooms.c.run_id)))).scalar_one()
        return rooms == judged
    finally:
        store.close()


def one(work: Path, bodies: list[bytes], clients: int, alerts: Path | None, n: int) -> tuple[float, float]:
    """(collector CPU seconds, wall seconds) to take every result (and, with alerts, judge them all)."""
    from readiness.collector.store import Store

    db_url = f"sqlite:///{work / f'bench-{n}.db'}"
    store = Store(db_url)
    store.migrate()
    sites = sorted({json.loads(b)["labels"].get("site", "") for b in bodies})
    token = {site: store.add_token("upload", site)[1] for site in sites}
    store.close()
    pairs = [(b, token[json.loads(b)["labels"].get("site", "")]) for b in bodies]
    extra = ("--alerts", str(alerts), "--not-reporting-after", "3650d") if alerts else ()
    server = Server(db_url, *extra)
    try:
        cpu0 = server.cpu_s()
        t0 = time.perf_counter()
        _secs, answers = post_all(server.port, "/api/v1/results", pairs, clients)
        assert answers.get(201, 0) == len(pairs), answers
        if alerts:
            deadline = time.monotonic() + 120
            while not caught_up(db_url) and time.monotonic() < deadline:
                time.sleep(0.05)
        wall = time.perf_counter() - t0
        cpu = server.cpu_s() - cpu0
    finally:
        server.stop()
    return cpu, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=int, default=3000)
    ap.add_argument("--hosts", type=int, default=300)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="readiness-bench-alerts-"))
    generate(work / "files", args.results, args.hosts)
    bodies = results_from(work / "files")
    rx, got = receiver()
    alerts, sending = work / "alerts.toml", work / "sending.toml"
    head = (f'group_within = "2s"\n[channel.hook]\ntype = "webhook"\n'
            f'url = "http://127.0.0.1:{rx.server_address[1]}/hook"\nsecret = "bench-secret-0123456789"\n'
            '[[rule]]\nchannels = ["hook"]\n')
    alerts.write_text(head + 'sites = ["no site uploads here"]\n', encoding="utf-8")
    sending.write_text(head, encoding="utf-8")
    ratios, sent_ratios = [], []
    n = 0
    for _ in range(args.rounds):
        base = one(work, bodies, args.clients, None, n := n + 1)
        with_alerts = one(work, bodies, args.clients, alerts, n := n + 1)
        with_sending = one(work, bodies, args.clients, sending, n := n + 1)
        ratios.append(with_alerts[0] / base[0])
        sent_ratios.append(with_sending[0] / base[0])
        print(f"  without alerts:        {len(bodies) / base[0]:7.0f} results per collector CPU-second, "
              f"{len(bodies) / base[1]:6.0f} results/s wall")
        print(f"  alerts evaluated:      {len(bodies) / with_alerts[0]:7.0f} results per collector CPU-second, "
              f"{len(bodies) / with_alerts[1]:6.0f} results/s wall (every room judged)  -> cost ratio {ratios[-1]:.3f}")
        print(f"  evaluated and sent:    {len(bodies) / with_sending[0]:7.0f} results per collector CPU-second, "
              f"{len(bodies) / with_sending[1]:6.0f} results/s wall  -> cost ratio {sent_ratios[-1]:.3f}")
    rx.shutdown()
    ratio = statistics.median(ratios)
    print(f"[alerts] {len(bodies)} results, {args.clients} clients, {args.rounds} rounds; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {len(got)} alert messages delivered")
    print(f"  target: alerts add <= {TARGET_RATIO - 1:.0%} to ingest cost (CPU, the same run): "
          f"{'met' if ratio <= TARGET_RATIO else 'MISSED'} (x{ratio:.3f}, median of "
          f"{', '.join(f'{r:.3f}' for r in ratios)}); with every message rendered and sent: "
          f"x{statistics.median(sent_ratios):.3f}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
