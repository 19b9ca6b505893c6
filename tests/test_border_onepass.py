"""The one-pass border (issue 22, item 6): msgspec's typed decode checks a result's structure
and a walk checks only the free-form parts; anything they refuse takes the full path (parse,
nesting walk, schema), which words every refusal. These tests hold the one pass to never
accept what the full path refuses, and to build the same Result when both accept: over every
place of a judged result (with support, translations, coverage and nested details) replaced by
values of each JSON kind, out of bounds, too long, too deep, non-finite, with unknown keys."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_hostile import make_result  # noqa: E402

from readiness.result import MAX_DEPTH, ResultError, _one_pass, checked_data, load_result_bytes  # noqa: E402


def _base() -> dict[str, Any]:
    doc = make_result("onepass", index=5)
    doc["labels"] = {"site": "Lund", "room": "A1"}
    doc["host"].update(measured_by="agent", cpu=4, up=1.5, gpu=None, vm=False)
    doc["profile"].update(title="Rooms", origin="profiles/x.toml", extra={"a": [1, 2.5]},
                          support={"name": "IT", "phone": "123", "lund": {"name": "Lund desk", "hours": "8-17"}})
    doc["warnings"] = ["one warning"]
    doc["checks"]["system"]["details"] = {"samples": [1.5, 2, None], "devices": [{"name": "d", "rates": [8000]}]}
    doc["checks"]["net"] = {"name": "net", "status": "error", "started_utc": doc["started_utc"], "duration_s": 0,
                            "metrics": {"up": {"value": True, "unit": ""}, "v": {"value": "1.2", "unit": ""}},
                            "details": {}, "error": "no route"}
    doc["coverage"] = {"needed": ["system"], "ran": ["system", "net"], "measured": ["system"]}
    req = doc["judgement"]["items"][0]["requirement"]
    req["translations"] = {"sv": {"why": "varför", "fix": "åtgärd"}}
    req["note"] = {"free": [1, {"x": 2}]}
    doc["judgement"]["items"][0]["extra"] = [1, 2]
    doc["judgement"]["verdict"] = "PASS"
    return doc


def _places(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _places(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _places(value, path + (i,))
    return out


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


VALUES = [None, True, 0, -1, 2.5, -1e16, 1e16, 10 ** 20, "", "x" * 70, "y" * 5000, "é", [], ["s"], {}, {"k": 1},
          {"": None}, _deep(MAX_DEPTH), "2026-11-26T10:00:00Z", "f" * 32, "0" * 64, "ok", "error", "PASS",
          "required", "sv"]


def _full(raw: bytes, origin: str) -> Any:
    """The full path alone (the one pass is skipped without the bytes)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return "refused"
    try:
        result, _changed = checked_data(data, origin)
    except (ResultError, RecursionError):
        return "refused"
    return result.to_dict()


def _mutations(base: dict[str, Any] | None = None) -> list[bytes]:
    base = _base() if base is None else base
    out = []
    for place in _places(base):
        for value in VALUES:
            doc = copy.deepcopy(base)
            node = doc
            for key in place[:-1]:
                node = node[key]
            node[place[-1]] = copy.deepcopy(value)
            out.append(json.dumps(doc).encode())
        doc = copy.deepcopy(base)  # the key removed
        node = doc
        for key in place[:-1]:
            node = node[key]
        if isinstance(node, dict):
            del node[place[-1]]
            out.append(json.dumps(doc).encode())
        if isinstance(node, dict):  # an unknown key beside it, and a non-finite number there
            doc = copy.deepcopy(base)
            node = doc
            for key in place[:-1]:
                node = node[key]
            node["unknown"] = 1
            out.append(json.dumps(doc).encode())
            node["unknown"] = float("inf")
            out.append(json.dumps(doc).encode())  # 'Infinity': json reads it, the one pass does not
            out.append(json.dumps(doc).encode().replace(b"Infinity", b"1e400"))
    return out


def test_the_one_pass_reads_a_good_result_and_builds_the_same_result():
    raw = json.dumps(_base()).encode()
    fast = _one_pass(raw, None, "doc")
    assert fast is not None, "a valid result must take the one pass"
    assert fast.to_dict() == _full(raw, "doc")
    assert load_result_bytes(raw, "doc").to_dict() == fast.to_dict()


def test_the_one_pass_never_accepts_what_the_full_path_refuses():
    mutations = _mutations()
    taken = refused = 0
    for raw in mutations:
        full = _full(raw, "doc")
        fast = _one_pass(raw, None, "doc")
        data = json.loads(raw)
        at_collector = _one_pass(raw, data, "doc")  # the collector's parse, then the border
        if full == "refused":
            refused += 1
            assert fast is None and at_collector is None, raw[:2000]
        elif fast is not None:
            taken += 1
            assert fast.to_dict() == full and at_collector.to_dict() == full, raw[:2000]
    # both sides were exercised: many refusals, and most accepted documents took the one pass
    assert refused > 200 and taken > 200, (refused, taken, len(mutations))


@pytest.mark.parametrize("raw,said", [
    (json.dumps(_base()).replace('"duration_s": 1.0', '"duration_s": -1').encode(),
     "malformed result (checks.system.duration_s must be bigger than or equal to 0)"),
    (json.dumps(_base()).replace('"no route"', "null").encode(), "checks.net.error must be string"),
    (json.dumps(_base()).replace('"samples": [', '"samples": [' + "[" * 40 + "]" * 40 + ",").encode(),
     f"nested more than {MAX_DEPTH} levels deep"),
])
def test_a_refusal_is_worded_by_the_full_path(raw, said):
    assert _one_pass(raw, None, "doc") is None
    with pytest.raises(ResultError) as err:
        load_result_bytes(raw, "doc")
    assert said in str(err.value)


def test_the_fleets_one_decode_never_accepts_what_the_full_path_refuses_and_reads_the_same():
    """``clean_struct`` (the fleet reader's one typed decode, its open objects closed, each
    requirement checked once by its bytes) over the same mutations: never a document the full
    path refuses, and for one it takes, the fleet's record equals the one made from the full
    path's Result (labels, verdicts by requirement, figures, facts, the requirements built)."""
    from readiness.fleet.read import _Reader
    from readiness.onepass import clean_struct

    # the base document's item and requirement hold keys the closed types do not name: the
    # fleet reads such a document the usual way; without them, it takes the one decode
    assert clean_struct(json.dumps(_base()).encode()) is None
    plain = _base()
    del plain["judgement"]["items"][0]["extra"], plain["judgement"]["items"][0]["requirement"]["note"]
    assert clean_struct(json.dumps(plain).encode()) is not None
    taken = refused = 0
    for raw in _mutations(plain):
        full = _full(raw, "doc")
        clean = clean_struct(raw)
        if full == "refused":
            refused += 1
            assert clean is None, raw[:2000]
        elif clean is not None:
            record = _Reader(None)._record(*clean, "doc", None)
            if record is not None:  # None: no judgement, read the usual way
                taken += 1
                assert record == _Reader(None).from_result(checked_data(json.loads(raw), "doc")[0], "doc"), raw[:2000]
    assert refused > 200 and taken > 200, (refused, taken)


@pytest.mark.parametrize("kind", ["lists", "objects", "mixed"])
def test_the_fleets_nesting_walk_draws_the_line_where_the_full_walk_does(kind):
    """The fleet's walk of the free parts looks at a container's children in one go when they are
    all lists or all objects (a chart's points); around MAX_DEPTH, in each shape, it must say
    exactly what the full walk says."""
    from readiness.onepass import _nested_within, _parts_clean

    def nested(levels: int) -> Any:
        value: Any = 1
        for i in range(levels):
            value = ([value, [2]] if kind == "lists" else {"a": value, "b": {"c": 1}} if kind == "objects"
                     else [value] if i % 2 else {"k": value})
        return value

    verdicts = set()
    for levels in range(MAX_DEPTH - 8, MAX_DEPTH + 1):
        for wrap in (lambda v: v, lambda v: [v, v], lambda v: [[1], v], lambda v: {"x": v, "y": {"z": 2}}):
            for depth in (1, 3):
                part = [(wrap(nested(levels)), depth)]
                verdicts.add(_parts_clean(part))
                assert _nested_within(part) == _parts_clean(part), (levels, depth)
    assert verdicts == {True, False}  # both sides of the line were drawn


def test_the_fleets_one_decode_compares_a_remembered_run_of_requirements_byte_for_byte():
    """``clean_struct`` remembers a file's requirements (all checked) by their lengths, and takes
    the next file's as those when they are equal byte for byte. A file whose requirements have
    the same lengths but differ by one byte is never taken for it: a requirement the schema
    refuses is refused (and the full path refuses the file), and one it accepts is read as itself."""
    from readiness.onepass import clean_struct

    plain = _base()
    del plain["judgement"]["items"][0]["extra"], plain["judgement"]["items"][0]["requirement"]["note"]
    raw = json.dumps(plain).encode()
    first = clean_struct(raw)
    assert first is not None and clean_struct(raw)[1] == first[1]  # read again: the same requirements
    severity = plain["judgement"]["items"][0]["requirement"]["severity"]
    assert severity == "required"
    for changed in ("requirez", "requireD"):
        bad = copy.deepcopy(plain)
        bad["judgement"]["items"][0]["requirement"]["severity"] = changed
        doc = json.dumps(bad).encode()
        assert len(doc) == len(raw)
        assert clean_struct(doc) is None and _full(doc, "doc") == "refused"
    why = plain["judgement"]["items"][0]["requirement"]["why"]
    other = copy.deepcopy(plain)
    other["judgement"]["items"][0]["requirement"]["why"] = ("X" + why[1:]) if why[:1] != "X" else ("Y" + why[1:])
    doc = json.dumps(other).encode()
    clean = clean_struct(doc)
    assert len(doc) == len(raw) and clean is not None and clean[1] != first[1]
    assert [json.loads(r) for r in clean[1]] == [i["requirement"] for i in other["judgement"]["items"]]
    assert [json.loads(r) for r in first[1]] == [i["requirement"] for i in plain["judgement"]["items"]]


@pytest.mark.parametrize("where", ["details", "profile", "judgement profile"])
def test_the_fleets_one_decode_reads_details_deeper_than_its_shallow_type_as_before(where):
    """``clean_struct`` decodes the free parts (a check's details, the profile, the judgement's
    profile) first with a type that holds their nesting to a few levels (no walk needed); deeper
    ones are decoded again and walked, so a document is taken or refused exactly as before:
    taken up to MAX_DEPTH, refused past it (as the full path refuses it), and read into the same
    record as the full path's Result."""
    from readiness.fleet.read import _Reader
    from readiness.onepass import _SHALLOW_LEVELS, _TYPED_SHALLOW, clean_struct

    plain = _base()
    del plain["judgement"]["items"][0]["extra"], plain["judgement"]["items"][0]["requirement"]["note"]
    assert clean_struct(json.dumps(plain).encode()) is not None
    shallow = _TYPED_SHALLOW[0]
    seen = {"shallow": 0, "deeper": 0, "refused": 0}
    for levels in (1, _SHALLOW_LEVELS - 1, _SHALLOW_LEVELS, _SHALLOW_LEVELS + 3, MAX_DEPTH - 4, MAX_DEPTH - 3,
                   MAX_DEPTH - 2, MAX_DEPTH):
        for wrap in (lambda v: v, lambda v: {"charts": [{"points": v}]}):
            doc = copy.deepcopy(plain)
            part = {"nested": wrap(_deep(levels)), "samples": [1.5, 2]}
            if where == "details":
                doc["checks"]["system"]["details"] = part
            else:
                (doc["profile"] if where == "profile" else doc["judgement"]["profile"])["extra"] = part
            raw = json.dumps(doc).encode()
            full, clean = _full(raw, "doc"), clean_struct(raw)
            if full == "refused":
                seen["refused"] += 1
                assert clean is None, levels
                continue
            assert clean is not None, levels
            try:
                shallow.decode(raw)
                seen["shallow"] += 1
            except Exception:
                seen["deeper"] += 1
            assert _Reader(None)._record(*clean, "doc", None) == \
                   _Reader(None).from_result(checked_data(json.loads(raw), "doc")[0], "doc"), levels
    assert all(seen.values()), seen


def test_the_fleets_remembered_runs_of_requirements_stay_bounded():
    """A file whose requirements together are longer than ``_MAX_RUN_BYTES`` is read (each
    requirement checked) but its run is not remembered: what ``clean_struct`` keeps between
    files stays bounded whatever the files hold."""
    from readiness import onepass

    plain = _base()
    del plain["judgement"]["items"][0]["extra"], plain["judgement"]["items"][0]["requirement"]["note"]
    item = plain["judgement"]["items"][0]
    items = []
    for i in range(onepass._MAX_RUN_BYTES // 3000 + 2):  # each requirement about 4 kB, all different
        big = copy.deepcopy(item)
        big["requirement"]["why"] = f"{i} " + "w" * 3990
        items.append(big)
    plain["judgement"]["items"] = items
    raw = json.dumps(plain).encode()
    first = onepass.clean_struct(raw)
    assert first is not None and sum(map(len, first[1])) > onepass._MAX_RUN_BYTES
    assert tuple(map(len, first[1])) not in onepass._CHECKED_RUNS
    again = onepass.clean_struct(raw)
    assert again is not None and again[1] == first[1]
    assert all(sum(map(len, reqs)) <= onepass._MAX_RUN_BYTES for _, reqs in onepass._CHECKED_RUNS.values())


def _slow_check(raw: bytes) -> tuple[Any, ...]:
    """``ingest.check`` with its one typed decode turned off: the border's usual path."""
    from readiness.collector import ingest

    typed = ingest._typed
    ingest._typed = lambda body, utf8: None
    try:
        return ingest.check(raw)
    finally:
        ingest._typed = typed


def _without_time(outcome: tuple[Any, ...]) -> tuple[Any, ...]:
    if outcome[0] != "ok":
        return outcome
    return (outcome[0], {k: v for k, v in outcome[1].items() if k != "received"}, *outcome[2:])


def test_the_collectors_one_decode_checks_and_stores_what_the_usual_path_does():
    """``ingest.check`` takes ``onepass.clean_struct`` for a document orjson parsed: over the
    same mutations, its outcome (refusal, or every column, the summary, fleet record, history,
    the document to store and the requirements) equals the usual path's, and it is taken."""
    from readiness.collector import ingest

    plain = _base()
    del plain["judgement"]["items"][0]["extra"], plain["judgement"]["items"][0]["requirement"]["note"]
    # no run of 19 digits: orjson reads it (``jsontext.read``)
    plain["run_id"], plain["profile"]["sha256"] = "0123456789abcdef" * 2, "0123456789abcdef" * 4
    taken = refused = 0
    for raw in _mutations(plain):
        fast, slow = ingest.check(raw), _slow_check(raw)
        assert _without_time(fast) == _without_time(slow), raw[:2000]
        refused += slow[0] == "refused"
        taken += fast[0] == "ok" and ingest._typed(raw, ingest._parse(raw, ingest.MAX_BODY_BYTES)[1]) is not None
    assert refused > 200 and taken > 200, (refused, taken)


def _hostile(change: Any) -> bytes:
    plain = _base()
    del plain["judgement"]["items"][0]["extra"], plain["judgement"]["items"][0]["requirement"]["note"]
    plain["run_id"], plain["profile"]["sha256"] = "0123456789abcdef" * 2, "0123456789abcdef" * 4
    return change(plain)


def _in_details(value: Any) -> Any:
    def change(doc: dict[str, Any]) -> bytes:
        doc["checks"]["system"]["details"]["x"] = value
        return json.dumps(doc).encode()
    return change


@pytest.mark.parametrize("name, change, status, code", [
    ("deep details", _in_details(_deep(MAX_DEPTH)), 422, "invalid_result"),
    ("NUL in details", _in_details("a\x00b"), 400, "nul_character"),
    ("lone surrogate", lambda d: json.dumps(d).encode().replace(b'"one warning"', b'"\\ud800"'), 400, "not_text"),
    ("raw surrogate bytes", lambda d: json.dumps(d, ensure_ascii=False).encode().replace(
        b'"one warning"', b'"\xed\xa0\x80"'), 400, "not_text"),
    ("1e400 in the host", lambda d: json.dumps(d).encode().replace(b'"up": 1.5', b'"up": 1e400'), 422,
     "invalid_result"),
    ("NaN in the profile", lambda d: json.dumps(d).encode().replace(b"2.5]", b"NaN]"), 422, "invalid_result"),
])
def test_hostile_uploads_are_refused_with_the_one_decode_in_place(name, change, status, code):
    """The collector's fast path (``ingest._typed``) refuses each: deep nesting in details (orjson
    reads it, the typed decode's walk does not pass it), a NUL, a lone surrogate escaped or as
    bytes, a number out of range or NaN (orjson refuses them: json reads them, the usual path
    refuses them). The clean document they come from does take the fast path."""
    from readiness.collector import ingest

    clean = _hostile(lambda d: json.dumps(d).encode())
    assert ingest._typed(clean, ingest._parse(clean, ingest.MAX_BODY_BYTES)[1]) is not None
    assert ingest.check(clean)[0] == "ok"
    raw = _hostile(change)
    assert raw != clean
    outcome = ingest.check(raw)
    assert outcome[:3] == ("refused", status, code), (name, outcome)


def test_a_non_finite_measured_value_via_the_json_fallback_is_stored_as_null():
    """1e400 as a measured value: orjson refuses it, json reads it as infinity, the usual path
    makes it null (not measured) and the checked document, not the bytes, is what is stored."""
    from readiness.collector import ingest

    raw = _hostile(lambda d: json.dumps(d).encode())
    doc = json.loads(raw)
    name, metric = next((c, m) for c, rec in doc["checks"].items() for m in rec["metrics"])
    doc["checks"][name]["metrics"][metric]["value"] = 12345.5
    raw = json.dumps(doc).encode().replace(b"12345.5", b"1e400")
    outcome = ingest.check(raw)
    assert outcome[0] == "ok" and outcome[3] is not None
    assert outcome[3]["checks"][name]["metrics"][metric]["value"] is None


def test_the_collectors_one_decode_stores_judged_runs_as_the_usual_path_does():
    """Judged runs of every verdict (a failing requirement, a failed and a missing check, the
    self-test page's, labelled): the one decode is taken, and every column, the summary, the
    fleet record and the history equal the usual path's."""
    import collector_docs as docs
    from readiness.collector import ingest

    variants = [dict(), dict(cores=1), dict(height=None), dict(camera=False), dict(browser=True),
                dict(label="front desk", ram=2, height=480), dict(room="", hostname="h2")]
    for i, variant in enumerate(variants):
        raw = docs.body(docs.document(run_id=(f"{i:x}" + "abcdef0123456789" * 2)[:32], **variant))
        assert ingest._typed(raw, ingest._parse(raw, ingest.MAX_BODY_BYTES)[1]) is not None, variant
        fast, slow = ingest.check(raw), _slow_check(raw)
        assert fast[0] == "ok" and fast[1]["record"] is not None, variant
        assert _without_time(fast) == _without_time(slow), variant
