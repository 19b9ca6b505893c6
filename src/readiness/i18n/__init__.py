"""The language catalogs: one ``<lang>.toml`` per language holds every word a person reads.

The list of languages is the list of these files, so adding a language is adding one catalog
(plus the profiles' texts). Kept import-light: the CLI reads the list for its ``--lang`` choice.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """Every language a catalog exists for, English first."""
    found = sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".toml"))
    return tuple(["en"] + [c for c in found if c != "en"])
