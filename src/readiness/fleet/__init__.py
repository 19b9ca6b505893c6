"""The fleet (``readiness aggregate``): collect (``collect``: read results, keep each room's
latest measurement of each check) → figures (``figures``: pure functions of what was kept) →
render (``readiness.fleet.page``)."""

from readiness.fleet.collect import Fleet, Run, Skipped, collect, collect_records, collect_results, gc_paused, iter_result_files, requirement_key
from readiness.fleet.figures import figures, histogram, row_state, trend

__all__ = ["Fleet", "Run", "Skipped", "collect", "collect_records", "collect_results", "figures", "gc_paused", "histogram", "iter_result_files", "requirement_key",
           "row_state", "trend"]
