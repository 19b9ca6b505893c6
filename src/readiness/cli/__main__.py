"""``python -m readiness.cli``: the same as the ``readiness`` command (scheduled runs use it)."""

from readiness.cli import main

main()
