"""The house's shape, read from the code's own imports (AST, every import in a file, at the top
or inside a function): imports point down the pipeline, no package imports a plugin, no cycles.

Layers, lowest first. A module may import its own package and any lower layer:

  foundation  check, plugins, result, onepass, atomic, textsafe, redact, versions, settings, siteserver, i18n, schema
              (and data folders)
  measure     the measurement libraries
  judge       requirement lists, verdicts
  render      report, charts, writers
  run         runner, config, target, session   | unattended (schedule, upload) | fleet
  server      the HTTP framework, speed endpoints, STUN responder
  collector   | selftest
  service     ``readiness serve`` assembled
  cli         the commands

The checks (``readiness.checks``, the ``checks/`` folder) are plugins: they may import
foundation, measure and judge; nothing under src/ imports them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "readiness"
CHECKS = ROOT / "checks"

LAYER = {
    "check": 0, "result": 0, "onepass": 0, "atomic": 0, "textsafe": 0, "redact": 0, "versions": 0, "i18n": 0, "schema": 0,
    "settings": 0, "siteserver": 0, "plugins": 0,
    "data": 0, "profiles": 0, "sounds": 0, "templates": 0,
    "measure": 1,
    "checks": 2,  # plugins: above measure, never imported from below
    "judge": 2,
    "render": 3,
    "run": 4, "unattended": 4, "fleet": 4,
    "server": 5,
    "collector": 6, "selftest": 6,
    "service": 7,
    "cli": 8,
}
TOP = {"__init__": 0, "__main__": 8}


def _modules() -> dict[str, Path]:
    found = {}
    for base, prefix in ((SRC, ["readiness"]), (CHECKS, ["readiness", "checks"])):
        for path in base.rglob("*.py"):
            parts = [*prefix, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t == "readiness" or t.startswith("readiness."))
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    return LAYER.get(part, TOP.get(part, 0))


def _area(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_area_has_a_layer():
    unknown = {_area(m) for m in _graph() if "." in m and _area(m) not in LAYER and _area(m) not in TOP}
    assert not unknown, f"new top-level modules or folders need a layer in tests/test_layout.py: {sorted(unknown)}"


def test_imports_point_down_the_pipeline():
    upward = []
    for mod, targets in _graph().items():
        for t in targets:
            if t == "readiness" or _area(t) == _area(mod):
                continue
            sideways = _layer(t) == _layer(mod) and _layer(t) > 0  # foundation modules may use each other
            if _layer(t) > _layer(mod) or sideways:
                upward.append(f"{mod} -> {t}")
    assert not upward, "imports that run up (or sideways across) the pipeline:\n" + "\n".join(sorted(upward))


def test_no_package_module_imports_a_plugin():
    bad = [f"{mod} -> {t}" for mod, targets in _graph().items() if not mod.startswith("readiness.checks")
           for t in targets if t.startswith("readiness.checks")]
    assert not bad, "the core names a check (checks describe themselves instead):\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    # cycles between modules, ignoring a package's __init__ importing its own children (re-exports)
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, targets in graph.items():
        for t in targets:
            if t in graph and t != mod and not t.startswith(mod + "."):
                edges[mod].add(t)
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_rules_catch_what_they_are_for(tmp_path):
    """The checks above would notice: an upward import, a core → plugin import, a cycle."""
    assert _layer("readiness.measure.audio") < _layer("readiness.judge.verdicts") < _layer("readiness.render.report")
    assert _layer("readiness.collector.http") > _layer("readiness.server.http")
    fake = tmp_path / "m.py"
    fake.write_text("from readiness.checks.camera import CameraCheck\ndef f():\n    from readiness.cli import main\n")
    assert _imports("readiness.measure.m", fake, {"readiness.checks.camera", "readiness.cli"}) == {
        "readiness.checks.camera", "readiness.cli"}
