"""Whose words a requirement speaks: the organisation's own lists, or what an agent sent.

A result carries the requirements it was judged by, texts included (label, why, fix, source).
On a share those come from IT's own agents; uploaded to a collector they come from whoever
holds a site's token, and a page that shows them as advice would put an uploader's words
("Visit http://…") in IT's mouth. So the collector speaks with the lists it knows: the
profiles shipped with readiness and the organisation's own lists (``serve --requirements``).

``OwnWords.reword`` gives a requirement the texts of the organisation's requirement on the
same metric (the same bound first; the advice for a metric does not depend on its number).
A requirement no list knows keeps the agent's texts, each marked in every language as sent by
the agent (catalog ``sent_by_agent``), and loses its source link: the document keeps it as data.
Only texts change: the metric, bound and severity a verdict was judged by stay as judged.

The support contact ("Not ready? Call …", a profile's ``[support]``) is the same kind of
words: ``support`` gives the contact of the organisation's list of that name, and nothing for a
list it does not know (an uploaded phone number or address is never shown as IT's).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from readiness.i18n import languages
from readiness.i18n.format import word
from readiness.judge.requirements import Profile, Requirement, load_profile, shipped_profiles

TEXTS = ("label", "why", "fix")


def requirement_key(req: Requirement) -> tuple[Any, ...]:
    """Two requirements are the same when metric, bound, severity and service are (texts may differ)."""
    return (req.metric, req.severity, req.min, req.max, req.expect, req.min_version, req.service)


def own_lists(paths: Sequence[str | Path], checks: dict[str, Any], broken: dict[str, str] | None = None) -> list[Profile]:
    """The organisation's lists: each file in ``paths`` (first), then every shipped profile.
    Raises ``requirements.ProfileError`` for a file that is not a valid list."""
    mine = [load_profile(path=p, checks=checks, broken=broken) for p in paths]
    return mine + [load_profile(name, checks=checks, broken=broken) for name in shipped_profiles()]


class OwnWords:
    """The organisation's words for each requirement it knows (see the module docstring)."""

    def __init__(self, lists: Iterable[Profile]) -> None:
        self.exact: dict[tuple[Any, ...], Requirement] = {}
        self.by_metric: dict[str, Requirement] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        for profile in lists:
            self.contacts.setdefault(profile.name, profile.support)
            for req in profile.requirements:
                self.exact.setdefault(requirement_key(req), req)
                self.by_metric.setdefault(req.metric, req)

    def support(self, profile_name: Any) -> dict[str, Any]:
        """The support contact of the organisation's list named ``profile_name``; {} for none."""
        return self.contacts.get(profile_name, {}) if isinstance(profile_name, str) else {}

    def find(self, req: Requirement) -> Requirement | None:
        return self.exact.get(requirement_key(req)) or self.by_metric.get(req.metric)

    def reword(self, req: Requirement) -> tuple[Requirement, bool]:
        """(the requirement in the organisation's words, True), or (its texts marked as the
        agent's, False) when no list holds its metric."""
        own = self.find(req)
        if own is not None:
            return replace(req, label=own.label, why=own.why, fix=own.fix, source=own.source,
                           translations=own.translations), True
        return marked(req), False


def marked(req: Requirement) -> Requirement:
    """``req`` with each text framed, in every catalog language, as sent by the agent; no source."""

    def frame(lang: str, key: str) -> str:
        text = req.text(key, lang)
        return word(lang, "sent_by_agent", text=text) if text else ""

    translations = {lang: {key: frame(lang, key) for key in TEXTS} for lang in languages()}
    return replace(req, source="", translations=translations, **{key: translations["en"][key] for key in TEXTS})
