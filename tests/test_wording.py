"""Whose words a requirement speaks on the collector (``judge.wording.OwnWords``): the
organisation's words only for the very requirement its list holds; any other, the agent's words
marked as sent by the agent."""

from __future__ import annotations

from dataclasses import replace

from readiness.judge.requirements import parse_profile
from readiness.judge.wording import OwnWords
from readiness.plugins import load_plugins

OWN = """
name = "org"
title = "Org"

[[requirement]]
metric = "system.ram_total_gb"
min = 4
severity = "required"
label = "Memory (4 GB)"
why = "The meeting app needs 4 GB of memory."
fix = "Use a computer with at least 4 GB of RAM."
source = "https://example.invalid/memory"
[requirement.sv]
label = "Minne (4 GB)"
"""


def _words():
    plugins = load_plugins()
    own = parse_profile(OWN, "org.toml", plugins.checks, plugins.broken)
    return OwnWords([own]), own.requirements[0]


def test_the_same_requirement_gets_the_organisations_words():
    words, own = _words()
    uploaded = replace(own, label="Mem", why="", fix="Visit http://evil.example", source="http://evil.example",
                       translations={})
    shown, known = words.reword(uploaded)
    assert known and (shown.label, shown.fix, shown.source) == (own.label, own.fix, own.source)
    assert shown.text("label", "sv") == "Minne (4 GB)"


def test_another_bound_on_the_same_metric_keeps_the_agents_words_marked():
    """An upload judged by memory >= 2 GB is not the organisation's 4 GB requirement: its label
    says 2 GB, marked as the agent's, never "Memory (4 GB)"."""
    words, own = _words()
    uploaded = replace(own, min=2, label="Memory (2 GB)", fix="Add memory.", source="http://evil.example",
                       translations={})
    shown, known = words.reword(uploaded)
    assert not known and shown.min == 2
    assert shown.label == "Memory (2 GB) (as sent by the agent)" and "4 GB" not in shown.label
    assert shown.text("label", "sv") == "Memory (2 GB) (som agenten skickade det)"
    assert shown.source == ""
    for changed in (replace(own, severity="recommended"), replace(own, min=None, max=4.0)):
        assert words.reword(changed)[1] is False
