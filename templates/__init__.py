"""Jinja2 templates of the reports, read through importlib.resources."""
