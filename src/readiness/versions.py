"""Version strings compared as versions, not as text ("10.2" is newer than "9.14").

Used by the judge (a requirement's ``min_version``) and by the software check (which of two
copies of a client is newer). Sits low in the engine: no imports from the rest of readiness.

Why not ``packaging.version``: it implements PEP 440 (Python's own scheme) and rejects most
version strings meeting clients and browsers really carry — Firefox ``128.0esr``, Zoom
``5.17.11 (34827)``, Debian ``1:115.3.1esr-1~deb12u1``, macOS ``14.6.1 (23G93)`` — so it would
need the same clean-up this module does, plus a dependency on every meeting-room PC.

The rule: the leading run of dot-separated numbers is the version; anything after it (a
suffix, a build in brackets, a package revision) is ignored, and so is a Debian/RPM epoch
(``1:``) before it — an epoch orders one package's own history, not the vendor's versions, and
the same Firefox comes as ``1:128.5.1esr`` from Debian and ``128.5.1`` from Mozilla. Missing
parts count as zero, so ``24.1`` equals ``24.1.0``.
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^\s*v?(?:(\d+):)?(\d+(?:\.\d+)*)")
MAX_LEN = 64  # a version longer than this is not a version (a result may hold anything)


def version_key(text: object) -> tuple[int, ...] | None:
    """The comparable form of a version string, or None if it holds no version."""
    if not isinstance(text, str) or len(text) > MAX_LEN:
        return None
    m = _VERSION.match(text)
    if m is None:
        return None
    parts = [int(p) for p in m.group(2).split(".")]
    while len(parts) > 1 and parts[-1] == 0:  # 24.1.0 == 24.1
        parts.pop()
    return tuple(parts)


def is_version(text: object) -> bool:
    return version_key(text) is not None


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, the same as, or newer than ``b``.

    Raises ValueError when either holds no version.
    """
    ka, kb = version_key(a), version_key(b)
    if ka is None or kb is None:
        raise ValueError(f"not a version: {a if ka is None else b!r}")
    return (ka > kb) - (ka < kb)


def newest(versions: list[str]) -> str | None:
    """The newest of several version strings (those without a version are ignored)."""
    best: tuple[tuple[int, ...], str] | None = None
    for v in versions:
        k = version_key(v)
        if k is not None and (best is None or k > best[0]):
            best = (k, v)
    return best[1] if best else None
