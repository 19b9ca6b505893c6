"""``GET /metrics``: the fleet state in Prometheus text format (prometheus_client).

Labels of the fleet counts are bounded: ``site`` (sites exist only through the upload tokens IT
creates; a result cannot invent one) and ``state`` from a fixed set. The three per-room gauges are
the exception, on purpose: one series per room (or computer without a room label) and metric,
so 10 000 rooms are 30 000 series; Prometheus holds that easily, and an alert on one silent
room needs its name. Browser self-tests have none (a moment's test, not a standing room).
A room renamed or retired drops its series at the next scrape. The counts are the fleet
report's own (``FleetView``: each room's latest measurement of each check), read from the
database, so several collectors behind one load balancer report the same numbers.

    readiness_fleet_computers{site,state}     rooms/computers by state: ready, not_ready,
                                              unknown, not_reporting (these four add up to
                                              all), and partial (counted besides: checks missing)
    readiness_fleet_newest_result_age_seconds{site}
    readiness_room_last_report_age_seconds{site,room,host}
                                              per room: seconds since its newest result started
                                              (host: the computer's name when no room label is set)
    readiness_room_not_reporting{site,room,host}
                                              per room: 1 when that age is past the collector's
                                              not-reporting age (``serve --not-reporting-after``)
    readiness_room_ready{site,room,host}      per room: 1 when it reports and its verdict is
                                              ready (PASS or WARN), else 0

contrib/prometheus/readiness-rules.yml holds example alerting rules on these.
    readiness_results_stored                  runs in the database
    readiness_uploads_total{outcome}          uploads answered by this process since it started

and the process's own health (each replica its own numbers: sum or compare them across
replicas in Prometheus):

    readiness_ingest_seconds                  histogram: an upload's time in this process, from
                                              its handler's start to its answer (body read,
                                              border, group commit)
    readiness_ingest_queue_depth              results checked and waiting for the group commit
                                              (this process's, or its writer process's)
    readiness_database_errors_total{kind}     database errors met: unreachable, other
    readiness_alert_outbox_depth              alert messages (one per channel) not yet sent, in
                                              the database (every replica reports the same);
                                              only with ``serve --alerts``
    process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds, ...
                                              prometheus_client's process collector (Linux)

The agent's spool is on each agent, not here.
"""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from readiness.collector.fleetdb import FleetView
from readiness.collector.engine import Unavailable, utcnow
from readiness.collector.store import Store
from readiness.fleet.compliance import group_of, silent

# seconds; a quiet collector answers in a few milliseconds, one under load or waiting for a
# database that is away in seconds
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Health:
    """This process's own figures, kept between scrapes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.latency = Histogram("readiness_ingest_seconds", "Time to answer an upload in this process",
                                 buckets=LATENCY_BUCKETS, registry=None)
        self.process = ProcessCollector(registry=None)
        self.outbox: Callable[[], int] | None = None  # the alert outbox's depth (``alerts.Alerts.depth``)

    def collect(self) -> Any:
        depth = GaugeMetricFamily("readiness_ingest_queue_depth",
                                  "Results checked and waiting for this process's group commit (in it or in its "
                                  "writer process)")
        depth.add_metric([], self.store.queue_depth())
        yield depth
        errors = CounterMetricFamily("readiness_database_errors",
                                     "Database errors met by this process and its writer, by kind", labels=["kind"])
        for kind, n in self.store.errors.snapshot().items():
            errors.add_metric([kind], n)
        yield errors
        if self.outbox is not None:
            try:
                n = self.outbox()
            except Unavailable:
                return
            outbox = GaugeMetricFamily("readiness_alert_outbox_depth",
                                       "Alert messages (one per channel) waiting in the outbox, not yet sent")
            outbox.add_metric([], n)
            yield outbox

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("ready", "not_ready", "unknown", "not_reporting", "partial")


class _FleetState:
    """A prometheus_client custom collector: computed at scrape time, nothing kept between."""

    def __init__(self, view: FleetView, uploads: dict[str, int], sites: frozenset[str] | None = None) -> None:
        self.view = view
        self.store: Store = view.store
        self.uploads = uploads
        self.sites = sites  # None: every site

    def _rooms(self, now: Any) -> Any:
        """Each room's last-report age and whether it is not reporting (the rows of the fleet the
        caller may see; browser self-tests apart)."""
        fleet, _ = self.view.get("en", self.sites)
        after = self.view.not_reporting_after
        ages = GaugeMetricFamily("readiness_room_last_report_age_seconds",
                                 "Seconds since the room's newest result started", labels=["site", "room", "host"])
        quiet = GaugeMetricFamily("readiness_room_not_reporting",
                                  f"1 when the room has sent no result for longer than {after:g} seconds",
                                  labels=["site", "room", "host"])
        ready = GaugeMetricFamily("readiness_room_ready",
                                  "1 when the room reports and its newest verdict is ready (PASS or WARN)",
                                  labels=["site", "room", "host"])
        for r in fleet.runs:
            if r.facts.get("by") == "browser":
                continue
            labels = [r.site, r.room, "" if r.room else r.hostname]
            gone = silent(r.started, now, after)
            ages.add_metric(labels, max(0.0, (now - r.started).total_seconds()))
            quiet.add_metric(labels, 1.0 if gone else 0.0)
            ready.add_metric(labels, 1.0 if not gone and group_of(r.verdict) == "ready" else 0.0)
        yield ages
        yield quiet
        yield ready

    def collect(self) -> Any:
        computers = GaugeMetricFamily("readiness_fleet_computers",
                                      "Rooms (or computers without a room label) whose newest run is in this state",
                                      labels=["site", "state"])
        age = GaugeMetricFamily("readiness_fleet_newest_result_age_seconds",
                                "Seconds since the newest result of the site started", labels=["site"])
        _, figs = self.view.get("en", self.sites)
        newest = self.store.newest_per_site()
        now = utcnow()
        for row in figs["sites"]:
            for state in STATES:
                computers.add_metric([row["site"], state], row.get(state, 0))
            if row["site"] in newest:
                age.add_metric([row["site"]], max(0.0, (now - newest[row["site"]]).total_seconds()))
        yield computers
        yield age
        yield from self._rooms(now)
        stored = GaugeMetricFamily("readiness_results_stored", "Runs stored in the database")
        stored.add_metric([], self.store.count(self.sites))
        yield stored
        uploads = CounterMetricFamily("readiness_uploads", "Uploads answered by this server process, by outcome",
                                      labels=["outcome"])
        for outcome, n in self.uploads.items():
            uploads.add_metric([outcome], n)
        yield uploads


def exposition(view: FleetView, uploads: dict[str, int], health: Health | None = None,
               sites: frozenset[str] | None = None) -> bytes:
    """The scrape; ``sites``: only these sites' figures (the rest is this process's own health)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FleetState(view, uploads, sites))
    if health is not None:
        for part in (health, health.latency, health.process):
            registry.register(part)
    return generate_latest(registry)
