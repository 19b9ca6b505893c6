"""The fleet from the database: the same collect → figures → render as ``aggregate`` over files.

Sits between the store and the fleet code (``readiness.fleet``, ``readiness.render.fleet``):
documents are streamed from the database in batches into ``fleet.collect_results`` (never all
in memory), so /fleet, /api/v1/fleet, /metrics and ``aggregate --db`` give what ``aggregate``
would give over the same results as files.

Judged as stored (the default), only the runs the fleet state can use are read: the ``latest``
table holds, per room (or host), its newest run and its newest run of each check, which is
exactly what the fleet code keeps from all runs. The counts of every stored run (runs read,
runs per day for the trend) come from indexed columns. Judged again against a profile, or
with every run, all documents are streamed.

The server keeps one built fleet and builds it again only when the data changed (a cheap
look at the row count and the newest arrival), at most every ``min_age_s`` seconds, so a
Prometheus scrape every 15 s does not rebuild a large fleet each time.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable, Iterator

from ..fleet import Fleet, Skipped, collect_results, figures
from ..result import Result, ResultError
from .store import Store, redacted


def _results(store: Store, all_runs: bool, skip: list[Skipped]) -> Iterator[tuple[str, Result]]:
    for run_id, doc in store.documents(all_runs=all_runs):
        origin = f"run {run_id}"
        try:
            yield origin, Result.from_dict(doc, origin)
        except ResultError as exc:  # checked when it arrived; a hand-edited row is listed, not fatal
            skip.append(Skipped(origin, str(exc).removeprefix(origin + ": ")))


def build_fleet(store: Store, profile: Any = None, all_runs: bool = False,
                on_skip: Callable[[Skipped], None] | None = None) -> Fleet:
    """The fleet state from the database, as ``fleet.collect`` would build it from files."""
    bad: list[Skipped] = []
    every = all_runs or profile is not None
    fleet = collect_results(_results(store, every, bad), profile=profile, all_runs=all_runs, on_skip=on_skip)
    for s in bad:
        fleet.skipped.append(s)
        if on_skip is not None:
            on_skip(s)
    fleet.paths = [redacted(store.url)]
    if not every:
        # only the runs the state uses were read: the totals are every stored run's
        fed = fleet.results_read
        fleet.results_read = store.count()
        fleet.superseded += fleet.results_read - fed
        fleet.per_day = {day: Counter(counts) for day, counts in store.per_day().items()}
    return fleet


class FleetView:
    """One built fleet (and its figures per language), rebuilt when the database changed."""

    def __init__(self, store: Store, min_age_s: float = 10.0) -> None:
        self.store = store
        self.min_age_s = min_age_s
        self.lock = threading.Lock()
        self.stamp: Any = None
        self.built = 0.0
        self.fleet: Fleet | None = None
        self.figs: dict[str, dict[str, Any]] = {}

    def get(self, lang: str) -> tuple[Fleet, dict[str, Any]]:
        with self.lock:  # one build at a time; readers arriving meanwhile get its result
            now = time.monotonic()
            if self.fleet is None or now - self.built >= self.min_age_s:
                stamp = self.store.change_stamp()
                if self.fleet is None or stamp != self.stamp:
                    self.fleet, self.figs, self.stamp = build_fleet(self.store), {}, stamp
                self.built = now
            if lang not in self.figs:
                self.figs[lang] = figures(self.fleet, lang)
            return self.fleet, self.figs[lang]

    def html(self, lang: str) -> str:
        from ..render.fleet import render_html

        fleet, figs = self.get(lang)
        # the page is /fleet: a row links its run's report at /runs/ID
        return render_html(fleet, figs, "fleet.html", lang, link=lambda r: f"runs/{r.run_id}")
