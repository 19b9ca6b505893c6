"""JSON Schemas of the documents readiness writes."""

from importlib import resources


def schema_text(name: str = "result") -> str:
    """The text of ``<name>.schema.json`` shipped in this package."""
    return resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
