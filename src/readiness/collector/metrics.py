"""``GET /metrics``: the fleet state in Prometheus text format (prometheus_client).

Labels are bounded: ``site`` (sites exist only through the upload tokens IT creates; a result
cannot invent one) and ``state`` from a fixed set. Never a label per host or room: 10 000 rooms
would be 10 000 series per metric. Each scrape reads the state from the database, so several
collectors behind one load balancer report the same numbers.

    readiness_fleet_computers{site,state}     rooms/computers (newest run each) by state:
                                              ready, not_ready, unknown, partial (partial is
                                              counted besides its verdict: measured in part)
    readiness_fleet_newest_result_age_seconds{site}
    readiness_results_stored                  runs in the database
    readiness_uploads_total{outcome}          uploads answered by this process since it started
"""

from __future__ import annotations

from typing import Any

from .store import Store, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("ready", "not_ready", "unknown", "partial")


def _group(overall: str | None) -> str:
    return "ready" if overall in ("PASS", "WARN") else "not_ready" if overall == "FAIL" else "unknown"


class _FleetState:
    """A prometheus_client custom collector: computed at scrape time, nothing kept between."""

    def __init__(self, store: Store, uploads: dict[str, int]) -> None:
        self.store = store
        self.uploads = uploads

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        computers = GaugeMetricFamily("readiness_fleet_computers",
                                      "Rooms (or computers without a room label) whose newest run is in this state",
                                      labels=["site", "state"])
        age = GaugeMetricFamily("readiness_fleet_newest_result_age_seconds",
                                "Seconds since the newest result of the site started", labels=["site"])
        now = utcnow()
        for row in self.store.site_states():
            counts = dict.fromkeys(STATES, 0)
            for overall, n in row["verdicts"].items():
                counts[_group(overall)] += n
            counts["partial"] = row["partial"]
            for state in STATES:
                computers.add_metric([row["site"], state], counts[state])
            age.add_metric([row["site"]], max(0.0, (now - row["newest"]).total_seconds()))
        yield computers
        yield age
        stored = GaugeMetricFamily("readiness_results_stored", "Runs stored in the database")
        stored.add_metric([], self.store.count())
        yield stored
        uploads = CounterMetricFamily("readiness_uploads", "Uploads answered by this server process, by outcome",
                                      labels=["outcome"])
        for outcome, n in self.uploads.items():
            uploads.add_metric([outcome], n)
        yield uploads


def exposition(store: Store, uploads: dict[str, int]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FleetState(store, uploads))
    return generate_latest(registry)
