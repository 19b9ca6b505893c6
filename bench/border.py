"""Bench: what hardening costs.

- The result border (size, nesting, numbers, schema) per file, beside json.loads of the same
  bytes in interleaved rounds of the same run. Target: the checks add at most twice the
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


def best_of(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def decoders(docs: list[bytes]) -> None:
    """Where the border's time goes, and what a one-pass decoder could save: the parsers
    alone (json, orjson, msgspec when installed: C, untyped), the schema (fastjsonschema) and
    the finite-number walk alone, beside the whole border, in interleaved rounds (median per
    file). msgspec's gain is bounded by the parse share: the schema's exact refusals (patterns,
    bounds, the messages the hostile tests read) would have to be written again as typed
    structs to replace the rest."""
    import orjson

    from readiness.result import _bounded, _validator

    try:
        import msgspec  # optional: only measured when installed
        ms = msgspec.json.Decoder()
    except ImportError:
        ms = None
    validate = _validator()
    parsed = [json.loads(d) for d in docs]
    parts = {"json.loads": lambda: [json.loads(d) for d in docs],
             "orjson.loads": lambda: [orjson.loads(d) for d in docs],
             "schema (fastjsonschema)": lambda: [validate(d) for d in parsed],
             "finite-number walk": lambda: [_bounded(d, "bench") for d in parsed],
             "whole border": lambda: [load_result_bytes(d, "bench") for d in docs]}
    if ms is not None:
        parts["msgspec decode"] = lambda: [ms.decode(d) for d in docs]
    rounds: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(7):
        for name, fn in parts.items():
            rounds[name].append(best_of(fn, runs=1) / len(docs) * 1000)
    ref = statistics.median(rounds["json.loads"])
    print("border, per file (median of 7 interleaved rounds; ratio to json.loads in the same rounds):")
    for name, times in rounds.items():
        t = statistics.median(times)
        print(f"  {name:26s} {t:7.3f} ms  {t / ref:5.2f}x")


def main() -> int:
    plugins = load_plugins()
    profile = load_profile("meeting-room", checks=plugins.checks, broken=plugins.broken)
    rng = random.Random(7)
    docs = [sample_result(rng, plugins.checks, profile) for _ in range(FILES)]
    size = statistics.mean(len(d) for d in docs) / 1000
    # interleaved rounds, the ratio taken per round: load from others on the machine hits both alike
    rounds = []
    for _ in range(7):
        p = best_of(lambda: [json.loads(d) for d in docs], runs=1)
        b = best_of(lambda: [load_result_bytes(d, "bench") for d in docs], runs=1)
        rounds.append((b / p, p / FILES * 1000, b / FILES * 1000))
    ratio, parse, border = sorted(rounds)[len(rounds) // 2]
    extra = border - parse
    ok_border = extra <= 2 * parse
    print(f"result border: {border:.3f} ms per {size:.0f} kB result; json.loads alone {parse:.3f} ms; "
          f"the checks add {extra:.3f} ms = {extra / parse:.2f}x the parse (target <= 2x) "
          f"{'OK' if ok_border else 'MISSED'}")

    decoders(docs)

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
