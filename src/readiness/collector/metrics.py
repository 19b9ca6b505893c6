"""``GET /metrics``: the fleet state in Prometheus text format (prometheus_client).

Labels are bounded: ``site`` (sites exist only through the upload tokens IT creates; a result
cannot invent one) and ``state`` from a fixed set. Never a label per host or room: 10 000 rooms
would be 10 000 series per metric. The counts are the fleet report's own (``FleetView``: each
room's latest measurement of each check), read from the database, so several collectors
behind one load balancer report the same numbers.

    readiness_fleet_computers{site,state}     rooms/computers by state: ready, not_ready,
                                              unknown (these three add up to all), and
                                              partial (counted besides: checks missing)
    readiness_fleet_newest_result_age_seconds{site}
    readiness_results_stored                  runs in the database
    readiness_uploads_total{outcome}          uploads answered by this process since it started
"""

from __future__ import annotations

from typing import Any

from readiness.collector.fleetdb import FleetView
from readiness.collector.store import Store, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("ready", "not_ready", "unknown", "partial")


class _FleetState:
    """A prometheus_client custom collector: computed at scrape time, nothing kept between."""

    def __init__(self, view: FleetView, uploads: dict[str, int]) -> None:
        self.view = view
        self.store: Store = view.store
        self.uploads = uploads

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        computers = GaugeMetricFamily("readiness_fleet_computers",
                                      "Rooms (or computers without a room label) whose newest run is in this state",
                                      labels=["site", "state"])
        age = GaugeMetricFamily("readiness_fleet_newest_result_age_seconds",
                                "Seconds since the newest result of the site started", labels=["site"])
        _, figs = self.view.get("en")
        newest = self.store.newest_per_site()
        now = utcnow()
        for row in figs["sites"]:
            for state in STATES:
                computers.add_metric([row["site"], state], row.get(state, 0))
            if row["site"] in newest:
                age.add_metric([row["site"]], max(0.0, (now - newest[row["site"]]).total_seconds()))
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


def exposition(view: FleetView, uploads: dict[str, int]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FleetState(view, uploads))
    return generate_latest(registry)
