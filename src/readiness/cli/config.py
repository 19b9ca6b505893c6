"""``readiness config show``: the effective configuration and where each value came from."""

from __future__ import annotations

import click

from readiness.cli.common import config_option, load_checks, typed_config, warn_plugins
from readiness.textsafe import terminal_text


@click.group("config")
def config_group() -> None:
    """The configuration: files, READINESS_* variables and their effect."""


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
def config_show(config_file: str | None, as_json: bool) -> None:
    """Print the effective configuration and where each value came from.

    Sources, lowest first: built-in defaults, the system file, the user file, --config FILE
    (or READINESS_CONFIG), READINESS_<SETTING> variables (check settings:
    READINESS_CHECKS__<CHECK>__<SETTING>), the command line. A wrong value exits 2.
    """
    import json

    plugins = load_checks()
    warn_plugins(plugins)
    cfg = typed_config(click.get_current_context(), (), config_file, (), plugins)
    rows = cfg.rows()
    if as_json:
        click.echo(json.dumps({"files": [{"path": p, "exists": e} for p, e in cfg.files],
                               "settings": [{"name": n, "value": v, "source": src} for n, v, src in rows]},
                              indent=2, ensure_ascii=False, default=str))
        return
    for path, exists in cfg.files:
        click.echo(f"# {'read' if exists else 'not present'}: {path}")
    width = max(len(n) for n, _, _ in rows)
    for name, value, src in rows:
        shown = "(not set)" if value is None else json.dumps(value, ensure_ascii=False, default=str)
        click.echo(terminal_text(f"{name:<{width}} = {shown}    # {src}"))
