"""The built-in checks: one module per check, registered as `readiness.checks` entry points."""
