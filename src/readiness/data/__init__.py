"""Data files shipped with readiness (the OS end-of-support table)."""
