"""What the self-test page posts, checked at the border before anything reads it.

The browser sends raw observations only (per-frame picture facts, 20 ms audio window levels,
byte counts over time, probe round trips); the server turns them into metrics with the very
functions the agent's checks use (``readiness.measure.frames``, ``readiness.measure.audio``,
``readiness.measure.netstats``, the bandwidth backend's ``steady_rate``). So a hand-made post cannot
choose its own verdict-bearing numbers more freely than a browser could, and the rules are
the agent's, not a JavaScript copy of them.

:func:`parse` is strict: unknown keys, wrong types, non-finite or out-of-range numbers,
over-long strings or lists, control characters and unpaired surrogates are refused with one
plain message (:class:`SubmissionError`), before any other code sees the document.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from readiness.textsafe import has_surrogate

MAX_BODY = 256 * 1024  # bytes; a real post is 10-40 kB
MAX_KEY = 100  # a site link's token (47 characters); the server looks it up, never stores it
MAX_LIST = 1500  # values per list: 20 s of frames at 60 fps, 25 s of 20 ms audio windows
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# The states a device step can end in. The page maps the browser's exception names onto these
# (NotAllowedError -> denied, NotFoundError -> not_found, NotReadableError -> in_use).
STATES = ("ok", "denied", "not_found", "in_use", "unsupported", "error", "skipped")


class SubmissionError(ValueError):
    """A post the server refuses; the message says what is wrong, in plain words."""


class _Spec:
    def check(self, value: Any, where: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class Num(_Spec):
    def __init__(self, lo: float, hi: float, whole: bool = False, null: bool = False) -> None:
        self.lo, self.hi, self.whole, self.null = lo, hi, whole, null

    def check(self, value: Any, where: str) -> Any:
        if value is None and self.null:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SubmissionError(f"{where} must be a number")
        if not math.isfinite(value) or not self.lo <= value <= self.hi:
            raise SubmissionError(f"{where} must be between {self.lo:g} and {self.hi:g}")
        if self.whole:
            if value != int(value):
                raise SubmissionError(f"{where} must be a whole number")
            return int(value)
        return float(value)


class Bool(_Spec):
    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, bool):
            raise SubmissionError(f"{where} must be true or false")
        return value


class Text(_Spec):
    def __init__(self, max_len: int, pattern: str | None = None) -> None:
        self.max_len = max_len
        self.pattern = re.compile(pattern) if pattern else None

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str):
            raise SubmissionError(f"{where} must be text")
        if len(value) > self.max_len:
            raise SubmissionError(f"{where} is longer than {self.max_len} characters")
        if _CONTROL.search(value):
            raise SubmissionError(f"{where} holds control characters")
        if has_surrogate(value):  # "\ud800": json reads it, no file or database can hold it
            raise SubmissionError(f"{where} holds text that is not Unicode (an unpaired surrogate)")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise SubmissionError(f"{where} has an unexpected form")
        return value


class OneOf(_Spec):
    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def check(self, value: Any, where: str) -> Any:
        if value not in self.choices or not isinstance(value, str):
            raise SubmissionError(f"{where} must be one of {', '.join(self.choices)}")
        return value


class List(_Spec):
    def __init__(self, item: _Spec, max_len: int = MAX_LIST) -> None:
        self.item, self.max_len = item, max_len

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, list):
            raise SubmissionError(f"{where} must be a list")
        if len(value) > self.max_len:
            raise SubmissionError(f"{where} has more than {self.max_len} entries")
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


class Obj(_Spec):
    def __init__(self, fields: dict[str, _Spec], required: tuple[str, ...] = ()) -> None:
        self.fields, self.required = fields, required

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise SubmissionError(f"{where} must be an object")
        unknown = sorted(set(value) - set(self.fields))
        if unknown:
            raise SubmissionError(f"{where} has unknown field {unknown[0][:40]!r}")
        missing = [k for k in self.required if k not in value]
        if missing:
            raise SubmissionError(f"{where} lacks {missing[0]}")
        return {k: spec.check(value[k], f"{where}.{k}") for k, spec in self.fields.items() if k in value}


def _pair(lo: float, hi: float) -> _Spec:
    return List(Num(lo, hi), max_len=2)


_DEVICE = {"state": OneOf(*STATES), "error": Text(300), "duration_s": Num(0, 600)}
_SHARE = Num(0, 1)
_TRANSFER = Obj({"ticks": List(_pair(0, 1e15)), "streams": Num(1, 32, whole=True),
                 "errors": List(Text(200), max_len=10),
                 # [seconds since the load began, round trip ms or null (lost)] of the probes under load
                 "probes": List(List(Num(0, 1e6, null=True), max_len=2))})

SPEC = Obj({
    "profile": Text(64, r"[A-Za-z0-9][A-Za-z0-9_.-]*"),
    "lang": Text(8, r"[a-z]{2}"),
    "labels": Obj({k: Text(120) for k in ("site", "room", "label")}),
    "key": Text(MAX_KEY),  # the site link the page was opened with (``?key=``), "" for none
    "browser": Obj({
        "name": Text(40), "version": Text(40), "platform": Text(60), "mobile": Bool(),
        "webrtc": Bool(), "cpu_threads": Num(0, 4096, whole=True), "memory_class_gb": Num(0, 4096),
        "secure_context": Bool(),
    }),
    "camera": Obj(_DEVICE | {
        "requested": Obj({"width_px": Num(0, 16384, whole=True), "height_px": Num(0, 16384, whole=True)}),
        "width_px": Num(0, 16384, whole=True), "height_px": Num(0, 16384, whole=True),
        "first_frame_ms": Num(0, 600_000),
        "claimed_fps": Num(0, 1000),
        "presented_frames": Num(0, 1e6, whole=True), "span_s": Num(0, 600),
        "t": List(Num(0, 1e6)), "brightness": List(_SHARE), "black_share": List(_SHARE),
        "bright_share": List(_SHARE), "diff": List(_SHARE), "sharpness": List(Num(0, 1e6)),
        "noise": List(_SHARE),
    }),
    "microphone": Obj(_DEVICE | {
        "rate_hz": Num(1000, 384_000), "samples": Num(0, 1e9, whole=True), "window_rms": List(Num(0, 100)),
        "peak": Num(0, 100), "clipping_runs": Num(0, 1e9, whole=True), "sum": Num(-1e12, 1e12),
        "all_zero": Bool(), "processing_off": Bool(),
    }),
    "speakers": Obj(_DEVICE | {"played": Bool(), "heard": Bool(), "tone_hz": Num(20, 20000)}),
    "bandwidth": Obj(_DEVICE | {"down": _TRANSFER, "up": _TRANSFER}),
    "latency": Obj(_DEVICE | {
        "method": OneOf("webrtc", "http"), "interval_ms": Num(5, 1000),
        "rtt_ms": List(Num(0, 60_000, null=True)), "arrival": List(Num(0, 1e6, whole=True)),
        "webrtc_error": Text(300),
    }),
}, required=("profile",))


def parse(raw: bytes) -> dict[str, Any]:
    """The checked submission from a request body; raises :class:`SubmissionError`."""
    if len(raw) > MAX_BODY:
        raise SubmissionError(f"the result is larger than {MAX_BODY // 1024} kB")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SubmissionError(f"the result is not valid JSON ({str(exc)[:80]})") from None
    return SPEC.check(data, "result")


def _no_constant(name: str) -> Any:
    raise SubmissionError(f"the result holds {name}, which is not a number in JSON")
