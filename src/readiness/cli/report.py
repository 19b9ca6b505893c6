"""``readiness report`` (one saved result judged again) and ``readiness aggregate`` (the fleet
report from many results, from files or a collector's database)."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from readiness.cli.common import (LANGS, fail, load_checks, load_list, open_store, refuse_overwriting_inputs,
                                  span_seconds, warn_plugins)
from readiness.textsafe import terminal_text

# The package is imported inside each command: `readiness --help` stays fast (numpy, OpenCV, Jinja2).


@click.command()
@click.argument("result_file", metavar="RESULT.json", type=click.Path(dir_okay=False))
@click.option("--profile", "-p", metavar="NAME", help="Judge again against this shipped profile.")
@click.option("--requirements", "-r", metavar="FILE", type=click.Path(dir_okay=False), help="Judge again against your own list.")
@click.option("--output", "-o", "out", metavar="OUT.html", type=click.Path(dir_okay=False), help="Where to write the report (default: beside the result).")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, help="Language of the report.")
@click.option("--json", "as_json", is_flag=True, help="Print the judgement as JSON on stdout.")
@click.option("--open/--no-open", "open_report", default=False, help="Open the report in the browser.")
def report(result_file: str, profile: str | None, requirements: str | None, out: str | None, lang: str,
           as_json: bool, open_report: bool) -> None:
    """Judge a saved result again, without measuring, and write its report.

    Without --profile/--requirements the result is judged against the profile it ran with
    (the judgement stored in it). Exit code as for `run`.
    """
    import json

    from readiness.judge.verdicts import Judgement, exit_code, judge
    from readiness.render.report import summary_text
    from readiness.render.writers import RUN_WRITERS, RunDocument, render, write_atomic
    from readiness.result import ResultError, read_result

    try:
        result = read_result(result_file)
    except ResultError as exc:
        fail(str(exc))
    target = Path(out) if out else Path(result_file).with_suffix(".html")
    refuse_overwriting_inputs([(target, "--output" if out else "the report")], [result_file, requirements])
    plugins = load_checks()  # loaded either way: a plugin brings its own words (its title, its findings)
    try:
        if profile or requirements:
            prof = load_list(profile, requirements, plugins, lang)
            judgement = judge(result, prof, only_checks=set(result.checks))
        elif result.judgement:
            judgement = Judgement.from_dict(result.judgement)
        else:
            fail(f"{result_file}: holds no judgement; give --profile or --requirements")
        html = render(RUN_WRITERS, "html", RunDocument(result, judgement, lang))
    except (click.ClickException, click.exceptions.Exit):
        raise
    except Exception as exc:  # noqa: BLE001 - a document that passed the schema and still breaks: name it
        if os.environ.get("READINESS_DEBUG") == "1":
            raise
        fail(f"{result_file}: cannot be reported ({type(exc).__name__}: {exc})")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, html)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps(judgement.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(terminal_text(summary_text(result, judgement, lang, [target])))
    if open_report:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())
    sys.exit(exit_code(judgement))


@click.command()
@click.argument("paths", metavar="[PATH...]", nargs=-1, type=click.Path())
@click.option("--db", "db_url", metavar="URL", help="Read the results from a collector's database instead of files (sqlite:///PATH or postgresql://...).")
@click.option("--output", "-o", "out", metavar="OUT.html", default="fleet.html", show_default=True, type=click.Path(dir_okay=False), help="Where to write the fleet report.")
@click.option("--csv", "csv_path", metavar="FILE.csv", type=click.Path(dir_okay=False), help="Also write one row per computer/room (or run) for a spreadsheet.")
@click.option("--json", "json_path", metavar="FILE.json", type=click.Path(dir_okay=False), help="Also write the aggregate figures as JSON ('-' for stdout).")
@click.option("--profile", "-p", metavar="NAME", help="Judge every result again against this shipped profile.")
@click.option("--requirements", "-r", metavar="FILE", type=click.Path(dir_okay=False), help="Judge every result again against your own list.")
@click.option("--all-runs", is_flag=True, help="Keep every run, not only the latest per computer or room.")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, help="Language of the report.")
@click.option("--max-rows", default=500, show_default=True, type=click.IntRange(min=0), help="Rows of the per-computer table in the HTML (the CSV has all).")
@click.option("--sections-csv", "sections_csv", metavar="FILE.csv", type=click.Path(dir_okay=False), help="Also write the step-5 sections and the action list as one long table.")
@click.option("--not-reporting-after", "not_reporting_after", metavar="SPAN", default="3d", show_default=True, help="A room with no result for longer than this (before now) is \"not reporting\": a fault, not ready as last seen; 30m, 12h, 3d, 1w (units s, m, h, d, w).")
@click.option("--partner", "partners", metavar="SITE", multiple=True, help="A site label of a partner organisation (repeatable); browser self-tests from sites no agent measured count as partners too.")
@click.option("--history", "history_dir", metavar="DIR", type=click.Path(file_okay=False), help="Also write each room's history (verdict per day, key figures over time, what changed, every run) as static pages into DIR, with an index.html; from result files only.")
def aggregate(paths: tuple[str, ...], db_url: str | None, out: str, csv_path: str | None, json_path: str | None,
              profile: str | None, requirements: str | None, all_runs: bool, lang: str, max_rows: int,
              sections_csv: str | None, partners: tuple[str, ...], history_dir: str | None,
              not_reporting_after: str) -> None:
    """One fleet report from many results; folders are searched for *.json recursively.

    With --db URL the results come from a collector's database (`readiness serve --db`): the
    same report as over the same results as files.

    By default each computer (or room, when a room label is set) counts with the latest
    measurement of each check, as judged when it ran, so a later partial run (--check system)
    cannot hide an earlier failure; --profile/--requirements judge every result again. Files that are not
    readable results are skipped and listed, in the report and here; so is a result that
    starts more than 10 minutes after its file was last modified (a computer's clock ahead). Exit code 0 when the
    report was written from at least one result; 2 when no readable result was found (a
    missing or empty folder): the report is still written and says so. Missing folders in
    -o/--csv/--json are created.
    """
    import json

    from readiness.fleet import collect, figures
    from readiness.fleet.compliance import over_time
    from readiness.fleet.page import FLEET_WRITERS, FleetDocument, fleet_csv_ahead
    from readiness.cli.usage import usage_error
    from readiness.render.writers import write

    if bool(paths) == bool(db_url):
        raise usage_error("paths_or_db")
    if history_dir and db_url:
        raise usage_error("history_needs_files")
    silent_after = span_seconds(not_reporting_after, "--not-reporting-after")
    prof = None
    if profile or requirements:
        plugins = load_checks()
        warn_plugins(plugins)
        prof = load_list(profile, requirements, plugins, lang)

    outputs = [(Path(out), "--output")] + ([(Path(csv_path), "--csv")] if csv_path else []) \
        + ([(Path(json_path), "--json")] if json_path and json_path != "-" else [])
    folders = [p for p in paths if os.path.isdir(p)]
    refuse_overwriting_inputs(outputs, [*(p for p in paths if p not in folders), requirements])
    for target, what in outputs:
        if target.suffix.lower() == ".json" and target.exists():
            inside = [f for f in folders if Path(os.path.realpath(target)).is_relative_to(os.path.realpath(f))]
            if inside:
                fail(f"{what} {target} is in {inside[0]}, whose results are the input; it would be replaced. "
                     "Choose another file.")

    def show_skip(s: Any) -> None:
        click.echo(terminal_text(f"skipped: {s.path}: {s.reason}"), err=True)

    from readiness.fleet import gc_paused

    with gc_paused():
        if db_url:
            from readiness.collector.fleetdb import build_fleet
            from readiness.collector.engine import Unavailable, redacted

            try:
                fleet = build_fleet(open_store(db_url, create=False), profile=prof, all_runs=all_runs, on_skip=show_skip,
                                    workers=None, not_reporting_after=silent_after)
            except Unavailable as exc:
                fail(str(exc))
            source = redacted(db_url)
        else:
            fleet = collect(paths, profile=prof, all_runs=all_runs, on_skip=show_skip)
            over_time(fleet, datetime.now(timezone.utc), silent_after)  # now: when this report is made
            source = ", ".join(paths)
        csv_made = fleet_csv_ahead(fleet) if csv_path else None  # made beside the figures and the HTML
        figs = figures(fleet, lang, partners, rows=bool(json_path))  # the rows: only the JSON lists them
    to_stdout = json_path == "-"
    regressions: list[str] = []
    if history_dir:  # each room's runs, for its page and the fleet's suspected regressions
        from readiness.fleet.history import fleet_regressions, page_files, rooms_from_files, write_history

        rooms = rooms_from_files(paths, lambda _p, _r: None)
        regressions = fleet_regressions(rooms, lang)
        pages = page_files(rooms)
        try:  # the fleet report links each room's page, relative: the share can move
            base = quote(Path(os.path.relpath(os.path.abspath(history_dir), os.path.abspath(Path(out).parent))).as_posix())
        except ValueError:  # another drive (Windows): no relative path
            base = Path(os.path.abspath(history_dir)).as_uri()

        def room_link(run: Any) -> str | None:
            file = pages.get(run.key)
            return None if file is None else f"{base}/{quote(file)}"
    doc = FleetDocument(fleet, figs, lang, Path(out), max_rows, regressions, room_link if history_dir else None,
                        csv_made)
    targets = [("html", Path(out))]
    if csv_path:
        targets.append(("csv", Path(csv_path)))
    if sections_csv:
        targets.append(("sections_csv", Path(sections_csv)))
    if json_path and not to_stdout:
        targets.append(("json", Path(json_path)))
    for name, target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)  # as `run` creates its folder
            write(FLEET_WRITERS, name, doc, target)
        except OSError as exc:
            fail(f"cannot write {target}: {exc.strerror or exc}")
    from readiness.i18n.format import word

    c = figs["counts"]
    done_key = ("aggregate_done_runs" if all_runs else "aggregate_done") + ("_db" if db_url else "")
    click.echo(terminal_text(word(lang, done_key, files=fleet.results_read, skipped=len(fleet.skipped), total=c["total"],
                                  ready=c["ready"], not_ready=c["not_ready"], unknown=c["unknown"])), err=to_stdout)
    if history_dir:
        from readiness.render.plots import PlotsUnavailable

        try:
            pages = write_history(rooms, history_dir, lang)
        except PlotsUnavailable as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot write {history_dir}: {exc.strerror or exc}")
        targets.append(("history", pages[-1]))
    for _, target in targets:
        click.echo(terminal_text(word(lang, "wrote", path=str(target))), err=to_stdout)
    if to_stdout:
        click.echo(json.dumps(figs, indent=2, ensure_ascii=False))
    if not fleet.runs:
        fail(f"no readable results were found in {source} (the report says so; nothing to aggregate)")
