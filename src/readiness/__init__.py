"""readiness: is this workstation or meeting room ready for video meetings, and if not, what to fix.

The pipeline: checks measure (``check.py``, ``plugins.py``, ``runner.py``) -> one result
document (``result.py``) -> a requirement list judges it (``requirements.py``, ``judge.py``)
-> templates render it (``report.py``). ``cli.py`` ties them together.
"""

__version__ = "0.1.0"
