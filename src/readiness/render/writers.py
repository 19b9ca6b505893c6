"""The output writers: one small registry of what can be written (JSON, HTML, CSV) for each
kind of document (a run, a fleet), and one way every file is written — the atomic writer.

Adding an output (Prometheus text, another format) is adding one entry to a registry: a name, a
file suffix, and a function from the document to ``str | bytes``. The run's writers are here; the
fleet's (``readiness.fleet.page.FLEET_WRITERS``) sit with the fleet, above this stage, and use the
same :class:`Writer` and :func:`write`. Nothing else in the project opens an output file for
writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from readiness.atomic import write_all_or_none as _write_all, write_atomic as _write
from readiness.render.report import render_report


def write_atomic(path: Path, data: str | bytes) -> None:
    """The one place outputs reach the disk: the project's atomic writer (``readiness.atomic``:
    temp file in the target folder, fsync, rename), so a reader on a share never sees half a file."""
    _write(Path(path), data)


def write_all_or_none(items: list[tuple[Path, str | bytes]]) -> None:
    """Several outputs of one document (a result and its report): all of them or none."""
    _write_all(items)


@dataclass(frozen=True)
class RunDocument:
    result: Any  # readiness.result.Result
    judgement: Any  # readiness.judge.verdicts.Judgement
    lang: str = "en"



@dataclass(frozen=True)
class Writer:
    name: str
    suffix: str
    render: Callable[[Any], str | bytes]


def _run_json(doc: RunDocument) -> str:
    return doc.result.to_json()


def _run_html(doc: RunDocument) -> str:
    return render_report(doc.result, doc.judgement, doc.lang)


RUN_WRITERS: dict[str, Writer] = {
    "json": Writer("json", ".json", _run_json),
    "html": Writer("html", ".html", _run_html),
}


def render(registry: dict[str, Writer], name: str, doc: Any) -> str | bytes:
    return registry[name].render(doc)


def write(registry: dict[str, Writer], name: str, doc: Any, path: Path) -> Path:
    """Render ``doc`` with the writer ``name`` and write it to ``path`` atomically."""
    write_atomic(Path(path), render(registry, name, doc))
    return Path(path)
