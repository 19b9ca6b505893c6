"""Running checks: one wrapper for every check, time budgets, child processes, concurrency.

Sits between the plugins (``plugins.py``) and the result (``result.py``). Every check call goes
through :func:`run_one`, which records start and duration and turns any exception into
``status: error`` with its message (only KeyboardInterrupt propagates), and a budget overrun
into ``status: timeout``.

- In-process checks run in a daemon thread; at the budget the wrapper stops waiting (a Python
  thread cannot be killed, but a daemon thread does not keep the process alive).
- ``isolated`` checks run in a child process (spawned, on every OS alike) that is killed at the
  budget, because native driver calls (camera, audio) can block forever.
- Checks sharing a ``resource`` run one after another, in ``order``; the groups run
  concurrently, so a run takes about as long as its slowest group.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from readiness.check import Check, CheckContext, CheckError, CheckSkipped, Measurement, RunChoices
from readiness.result import CheckRecord, json_safe, utc_now
from readiness.plugins import load_spec
from readiness.versions import is_version

# Extra seconds an isolated check gets for starting its interpreter before its budget counts.
SPAWN_GRACE_S = 2.0
KILL_WAIT_S = 2.0


@dataclass
class Planned:
    """A check chosen for this run, with its merged settings and budget."""

    name: str
    cls: type[Check]
    spec: str  # "module:attr", to load it again in a child process
    settings: dict[str, Any]
    budget_s: float


Progress = Callable[[str, str], None]  # (check name, message)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CheckError):
        return str(exc) or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class Outcome:
    """How one call of a check ended (as pytest's CallInfo): ``status`` ok, skipped, error or
    timeout; the measurement when ok; else the message, the traceback of an unexpected exception
    (empty for a CheckError: the check said what went wrong) and the check's finding (its cause
    code and facts, for the reader's language). Picklable: an isolated check's child sends it."""

    status: str
    measurement: Measurement | None = None
    message: str = ""
    traceback: str = ""
    finding: dict[str, Any] | None = None

    @classmethod
    def error(cls, message: str, debug: str = "", finding: Any = None) -> "Outcome":
        return cls("error", message=message, traceback=debug, finding=finding if isinstance(finding, dict) else None)


def _outcome_of(fn: Callable[[], Measurement]) -> Outcome:
    """Call ``fn``; every exception but KeyboardInterrupt becomes the outcome."""
    try:
        m = fn()
    except KeyboardInterrupt:
        raise
    except CheckSkipped as exc:
        return Outcome("skipped", message=str(exc))
    except BaseException as exc:  # noqa: BLE001 - any failure of plugin code is recorded
        debug = "" if isinstance(exc, CheckError) else traceback.format_exc(limit=6)
        return Outcome.error(_describe(exc), debug, getattr(exc, "finding", None))
    if not isinstance(m, Measurement):
        return Outcome.error(f"check returned {type(m).__name__}, not a Measurement")
    return Outcome("ok", m)


def _metrics_of(cls: type[Check], m: Measurement, details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Attach units from the check's declaration; drop undeclared or non-numeric values, saying so."""
    out: dict[str, dict[str, Any]] = {}
    dropped: list[str] = []
    for name, value in m.metrics.items():
        spec = cls.metric(name)
        if spec is None:
            dropped.append(f"{name} (not declared by the check)")
            continue
        if value is None:
            continue
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if spec.kind == "bool":
            if not isinstance(value, bool):
                dropped.append(f"{name} (not a boolean)")
                continue
        elif spec.kind == "version":
            if not is_version(value):
                dropped.append(f"{name} (not a version string)")
                continue
            value = value.strip()
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            dropped.append(f"{name} (not a finite number)")
            continue
        out[name] = {"value": value, "unit": spec.unit}
    if dropped:
        details.setdefault("dropped_metrics", dropped)
    return out


# --- child process --------------------------------------------------------------------------


def _child_main(spec: str, ctx: CheckContext, conn: Any) -> None:
    """Entry point of an isolated check's child process; sends one ("done", outcome) message."""
    ctx.progress = lambda msg: conn.send(("progress", msg))
    try:
        cls = load_spec(spec)
        outcome = _outcome_of(lambda: cls().run(ctx))
    except BaseException as exc:  # noqa: BLE001 - includes KeyboardInterrupt in the child
        outcome = Outcome.error(_describe(exc), traceback.format_exc(limit=6))
    if outcome.measurement is not None:
        m = outcome.measurement
        outcome = Outcome("ok", Measurement(metrics=dict(m.metrics), details=json_safe(m.details)))
    try:
        conn.send(("done", outcome))
    except Exception as exc:  # unpicklable details
        conn.send(("done", Outcome.error(f"check result could not be sent back: {_describe(exc)}")))
    conn.close()


def _run_isolated(p: Planned, ctx: CheckContext, say: Callable[[str], None]) -> Outcome:
    mp = multiprocessing.get_context("spawn")
    parent, child = mp.Pipe(duplex=False)
    ctx_for_child = CheckContext(settings=ctx.settings, options=ctx.options, budget_s=ctx.budget_s)
    proc = mp.Process(target=_child_main, args=(p.spec, ctx_for_child, child), daemon=True, name=f"readiness-{p.name}")
    proc.start()
    child.close()
    deadline = time.monotonic() + p.budget_s + SPAWN_GRACE_S
    outcome: Outcome | None = None
    try:
        while outcome is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                if not parent.poll(min(left, 0.25)):
                    if not proc.is_alive() and not parent.poll(0):
                        break
                    continue
                kind, payload = parent.recv()
            except (EOFError, OSError):
                break
            if kind == "progress":
                say(payload if isinstance(payload, str) else str(payload))
            elif kind == "done":
                outcome = payload
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(KILL_WAIT_S)
            if proc.is_alive():
                proc.kill()
                proc.join(KILL_WAIT_S)
        parent.close()
    if outcome is not None:
        return outcome
    if time.monotonic() >= deadline:
        return Outcome("timeout", message=f"did not finish within its {p.budget_s:g} s budget; its process was stopped")
    return Outcome.error(f"its process ended unexpectedly (exit code {proc.exitcode})")


def _run_in_thread(p: Planned, ctx: CheckContext) -> Outcome:
    box: list[Outcome] = []

    def target() -> None:
        try:
            box.append(_outcome_of(lambda: p.cls().run(ctx)))
        except KeyboardInterrupt:
            box.append(Outcome.error("interrupted"))

    t = threading.Thread(target=target, daemon=True, name=f"readiness-{p.name}")
    t.start()
    t.join(p.budget_s)
    if not box:
        return Outcome("timeout", message=f"did not finish within its {p.budget_s:g} s budget")
    return box[0]


def run_one(p: Planned, options: RunChoices, progress: Progress | None = None) -> CheckRecord:
    """Run one check in the wrapper; never raises (but for KeyboardInterrupt)."""

    def say(msg: str) -> None:
        if progress is not None:
            progress(p.name, msg)

    ctx = CheckContext(settings=dict(p.settings), options=options, budget_s=p.budget_s, progress=say)
    started = utc_now()
    t0 = time.perf_counter()
    outcome = _run_isolated(p, ctx, say) if p.cls.isolated else _run_in_thread(p, ctx)
    duration = round(time.perf_counter() - t0, 3)
    record = CheckRecord(name=p.name, title=p.cls.title or p.name, status=outcome.status, started_utc=started,
                         duration_s=duration)
    if outcome.measurement is not None:
        record.details = json_safe(dict(outcome.measurement.details))
        record.metrics = _metrics_of(p.cls, outcome.measurement, record.details)
    else:
        record.error = outcome.message
        if outcome.traceback:
            record.details = {"traceback": outcome.traceback}
        if outcome.finding is not None:
            record.details["findings"] = [json_safe(outcome.finding)]  # the failure as a fact, for the reader's language
    return record


def run_all(planned: list[Planned], options: RunChoices, progress: Progress | None = None,
            done: Callable[[CheckRecord], None] | None = None) -> dict[str, CheckRecord]:
    """Run the planned checks: groups by resource concurrently, each group in order."""
    groups: dict[str, list[Planned]] = {}
    for p in planned:
        key = p.cls.resource or f"__own__{p.name}"
        groups.setdefault(key, []).append(p)
    records: dict[str, CheckRecord] = {}
    lock = threading.Lock()

    def run_group(items: list[Planned]) -> None:
        for p in sorted(items, key=lambda x: (x.cls.order, x.name)):
            if progress is not None:
                progress(p.name, "started")
            rec = run_one(p, options, progress)
            with lock:
                records[p.name] = rec
            if done is not None:
                done(rec)

    threads = [threading.Thread(target=run_group, args=(items,), daemon=True) for items in groups.values()]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():  # join in slices so Ctrl-C reaches the main thread
            t.join(0.2)
    order = [p.name for p in planned]
    return {name: records[name] for name in order if name in records}
