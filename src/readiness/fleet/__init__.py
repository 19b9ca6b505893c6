"""The fleet (``readiness aggregate``): find the files (``files``) → read and judge each
(``read``) → keep each room's latest measurement of each check (``collect``, into ``model``'s
rows) → the fleet over time and who is not reporting (``compliance``) → figures (``figures``:
pure functions of what was kept) → step 5 (``step5``, ``actions``) → the report (``page``)."""

from readiness.fleet.collect import collect, collect_records, collect_results, gc_paused
from readiness.fleet.figures import figures, histogram, row_state, trend, with_rows
from readiness.fleet.files import iter_result_files
from readiness.fleet.model import Fleet, Run, Skipped
from readiness.judge.wording import requirement_key

__all__ = ["Fleet", "Run", "Skipped", "collect", "collect_records", "collect_results", "figures", "gc_paused",
           "histogram", "iter_result_files", "requirement_key", "row_state", "trend", "with_rows"]
