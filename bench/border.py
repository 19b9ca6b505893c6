"""Bench: what hardening costs.

- The result border (size, nesting, numbers, schema) per file, beside json.loads (and orjson.loads)
  of the same bytes in interleaved rounds of the same run, and the full path alone (the border
  before msgspec's one pass); the collector's CPU per upload beside orjson.loads. Target: the checks add at most twice the
  parse's own time (so bench/fleet.py's 10 000 files stay within its 10 s).
- Loading a profile of n and of 4n requirements. Target: linear, 4n under 10x n against the
  16x of a quadratic search (which took 148 s for 4 000 requirements). TOML parsing itself is
  most of the time; timings on a shared machine are noisy.

Run: python3 bench/border.py
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from typing import Any

from readiness.judge.verdicts import judge
from readiness.plugins import load_plugins
from readiness.judge.requirements import load_profile, parse_profile
from readiness.result import CheckRecord, Result, load_result_bytes

FILES = 300


def sample_result(rng: random.Random, checks: dict, profile) -> bytes:
    """A run's result with every metric of every installed check and busy details (~40 kB)."""
    records = {}
    for name, cls in checks.items():
        metrics = {m.name: {"value": rng.random() > 0.5 if m.kind == "bool" else round(rng.uniform(0, 500), 2),
                            "unit": m.unit} for m in cls.metrics}
        details = {"samples": [round(rng.uniform(0, 100), 3) for _ in range(200)],
                   "devices": [{"name": f"device {i}", "index": i, "rates": [8000, 16000, 48000]} for i in range(8)]}
        records[name] = CheckRecord(name=name, status="ok", started_utc="2026-11-26T10:00:00.000Z", duration_s=2.5,
                                    title=cls.title, metrics=metrics, details=details)
    res = Result(run_id="%032x" % rng.getrandbits(128), started_utc="2026-11-26T10:00:00.000Z",
                 finished_utc="2026-11-26T10:00:20.000Z", host={"hostname": "ws", "os": "Linux"},
                 labels={"site": "Stockholm"}, profile=profile.summary(), checks=records, tool_version="0.1.0")
    res.judgement = judge(res, profile).to_dict()
    return res.to_json().encode()


def each(fn, items, *args) -> None:
    """``fn`` on every item, each outcome dropped at once: a list of them kept alive makes the
    cyclic garbage collector walk them all, again and again, which is not the border's cost."""
    for item in items:
        fn(item, *args)


def best_of(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def decoders(docs: list[bytes]) -> None:
    """Where the border's time goes: the parsers alone (json, orjson, msgspec untyped), the
    one pass's typed decode (msgspec, C: the structure) and the full path's schema
    (fastjsonschema) and nesting/finite-number walk, which now run only for a document the one
    pass refuses (to word the refusal), beside the whole border, in interleaved rounds (median
    per file), each with its ratio to json.loads and to orjson.loads of the same bytes."""
    import msgspec
    import orjson

    from readiness.onepass import _TYPED
    from readiness.result import _bounded, _validator

    ms = msgspec.json.Decoder()
    validate = _validator()
    parsed = [json.loads(d) for d in docs]
    parts = {"json.loads": lambda: each(json.loads, docs),
             "orjson.loads": lambda: each(orjson.loads, docs),
             "msgspec decode (untyped)": lambda: each(ms.decode, docs),
             "msgspec typed decode": lambda: each(_TYPED.decode, docs),
             "schema (fastjsonschema)": lambda: each(validate, parsed),
             "finite-number walk": lambda: each(_bounded, parsed, "bench"),
             "whole border": lambda: each(load_result_bytes, docs, "bench")}
    rounds: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(7):
        for name, fn in parts.items():
            rounds[name].append(best_of(fn, runs=1) / len(docs) * 1000)
    ref = statistics.median(rounds["json.loads"])
    fast = statistics.median(rounds["orjson.loads"])
    print("border, per file (median of 7 interleaved rounds; ratio to json.loads and to orjson.loads in the same "
          "rounds):")
    for name, times in rounds.items():
        t = statistics.median(times)
        print(f"  {name:26s} {t:7.3f} ms  {t / ref:5.2f}x json  {t / fast:5.2f}x orjson")


def full_path_only() -> Any:
    """A context in which every document takes the full path (the border before the one pass),
    to measure both in the same run."""
    import contextlib

    import readiness.result as border

    @contextlib.contextmanager
    def scope() -> Any:
        saved = border._one_pass
        border._one_pass = lambda *args: None
        try:
            yield
        finally:
            border._one_pass = saved
    return scope()


def collector(docs: list[bytes], uploads: int = 2000) -> None:
    """The collector's CPU per upload without the database (``ingest.check``: parse, border, the
    row) and its border alone (``ingest.validate``), over ``uploads`` documents, beside
    orjson.loads of the same bytes; the full path's figures (the border before the one pass) in
    the same interleaved rounds."""
    try:
        import orjson

        from readiness.collector import ingest
    except ImportError:  # the server extra is not installed
        print("collector: skipped (the server extra is not installed)")
        return
    bodies = [docs[i % len(docs)] for i in range(uploads)]
    parsed = [ingest.parse(d) for d in docs]

    def border() -> None:
        for i in range(uploads):
            ingest.validate(parsed[i % len(docs)], docs[i % len(docs)])  # the outcome dropped at once (see each)

    def full_border() -> None:
        with full_path_only():
            border()

    def full_check() -> None:
        with full_path_only():
            for b in bodies:
                ingest.check(b)

    parts = {"orjson.loads": lambda: each(orjson.loads, bodies),
             "border (validate)": border, "border, full path": full_border,
             "upload CPU (check)": lambda: each(ingest.check, bodies),
             "upload CPU, full path": full_check}
    rounds: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(5):
        for name, fn in parts.items():
            rounds[name].append(best_of(fn, runs=1) / uploads * 1000)
    ref = statistics.median(rounds["orjson.loads"])
    print(f"collector, per upload over {uploads} uploads (median of 5 interleaved rounds; ratio to orjson.loads "
          f"of the same bytes):")
    for name, times in rounds.items():
        t = statistics.median(times)
        print(f"  {name:26s} {t:7.3f} ms  {t / ref:5.2f}x orjson")


def main() -> int:
    plugins = load_plugins()
    profile = load_profile("meeting-room", checks=plugins.checks, broken=plugins.broken)
    rng = random.Random(7)
    docs = [sample_result(rng, plugins.checks, profile) for _ in range(FILES)]
    size = statistics.mean(len(d) for d in docs) / 1000
    # interleaved rounds, the ratio taken per round: load from others on the machine hits both alike
    rounds = []
    for _ in range(7):
        p = best_of(lambda: each(json.loads, docs), runs=1)
        b = best_of(lambda: each(load_result_bytes, docs, "bench"), runs=1)
        rounds.append((b / p, p / FILES * 1000, b / FILES * 1000))
    ratio, parse, border = sorted(rounds)[len(rounds) // 2]
    extra = border - parse
    ok_border = extra <= 2 * parse
    print(f"result border: {border:.3f} ms per {size:.0f} kB result; json.loads alone {parse:.3f} ms; "
          f"the checks add {extra:.3f} ms = {extra / parse:.2f}x the parse (target <= 2x) "
          f"{'OK' if ok_border else 'MISSED'}")

    with full_path_only():
        before = min(best_of(lambda: each(load_result_bytes, docs, "bench"), runs=1) for _ in range(5))
    print(f"the full path alone (parse, nesting and finite-number walk, schema; the border before the one pass, "
          f"and still the path of a document the one pass refuses): {before / FILES * 1000:.3f} ms per result")

    decoders(docs)
    collector(docs)

    block = ('[[requirement]]\nmetric = "system.cpu_cores"\nmin = {n}\nseverity = "required"\nwhy = "w"\n'
             'fix = "f"\nsource = "https://example.invalid"\n[requirement.sv]\nwhy = "v"\n')

    def load(n: int) -> float:
        text = 'name = "big"\n' + "".join(block.format(n=i % 8) for i in range(n))
        return best_of(lambda: parse_profile(text, "big.toml", plugins.checks), runs=5)

    small, large = load(1000), load(4000)
    ok_linear = large / small < 10
    print(f"profile loading: 1000 requirements {small:.3f} s, 4000 {large:.3f} s = {large / small:.1f}x "
          f"(linear 4x, quadratic 16x; target < 10x) {'OK' if ok_linear else 'MISSED'}")
    return 0 if ok_border and ok_linear else 1


if __name__ == "__main__":
    sys.exit(main())
