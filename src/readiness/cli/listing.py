"""``readiness checks | profiles | devices``: what is installed, shipped and plugged in."""

from __future__ import annotations

import click

from readiness.cli.common import Finite, fail, load_checks, load_list, warn_plugins

# The package is imported inside each command: `readiness --help` stays fast (numpy, OpenCV, Jinja2).


@click.command("checks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
def list_checks(as_json: bool) -> None:
    """List the installed checks and the metrics (name, unit) each provides."""
    import json

    plugins = load_checks()
    warn_plugins(plugins)
    rows = []
    for name, cls in sorted(plugins.checks.items()):
        rows.append({"name": name, "title": cls.title, "description": cls.description, "isolated": cls.isolated,
                     "budget_s": cls.budget_s,
                     "metrics": [{"name": f"{name}.{m.name}", "unit": m.unit, "kind": m.kind, "description": m.description} for m in cls.metrics],
                     "settings": {k: {"default": s.default, "help": s.help} for k, s in cls.settings.items()}})
    if as_json:
        click.echo(json.dumps({"checks": rows, "warnings": plugins.warnings}, indent=2, default=str))
        return
    for row in rows:
        click.echo(f"{row['name']} — {row['title']}" + ("  (runs in its own process)" if row["isolated"] else ""))
        for m in row["metrics"]:
            unit = f" [{m['unit']}]" if m["unit"] else {"bool": " [yes/no]", "version": " [version]"}.get(m["kind"], "")
            click.echo(f"    {m['name']}{unit}  {m['description']}")
        for key, s in row["settings"].items():
            click.echo(f"    setting {key} = {s['default']!r}  {s['help']}")


@click.command("profiles")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
@click.option("--show", metavar="NAME", help="Print one shipped profile's TOML (a start for your own).")
def list_profiles(as_json: bool, show: str | None) -> None:
    """List the shipped requirement lists."""
    import json

    from readiness.judge.requirements import DEFAULT_PROFILE, shipped_profiles

    shipped = shipped_profiles()
    if show:
        if show not in shipped:
            fail(f"no shipped profile '{show}' (shipped: {', '.join(shipped)})")
        click.echo(shipped[show], nl=False)
        return
    plugins = load_checks()
    rows = []
    for name in shipped:
        prof = load_list(name, None, plugins)
        rows.append({"name": name, "title": prof.title, "description": prof.description, "default": name == DEFAULT_PROFILE,
                     "requirements": len(prof.requirements), "checks": prof.checks()})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = " (default)" if r["default"] else ""
        click.echo(f"{r['name']}{mark} — {r['title']}: {r['requirements']} requirements; checks: {', '.join(r['checks'])}")
        if r["description"]:
            click.echo(f"    {r['description']}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable inventory.")
@click.option("--timeout", type=Finite(0.1, 3600), default=15.0, show_default=True, help="Seconds before device enumeration is given up.")
def devices(as_json: bool, timeout: float) -> None:
    """List microphones, speakers and cameras, and which are the defaults."""
    import json

    try:
        from readiness.measure.devices import format_text, inventory
    except ImportError as exc:
        fail(f"device listing is not available: {exc}")
    inv = inventory(timeout_s=timeout)
    click.echo(json.dumps(inv, indent=2, ensure_ascii=False) if as_json else format_text(inv))
