"""The result border's one pass: msgspec's typed decoding (in C) checks a result document's
structure against types that mirror ``schema/result.schema.json``, and a walk of only the
free-form parts (details, the profile, open keys) checks nesting and finite numbers. A document
it does not find clean takes ``result``'s full path (parse, nesting walk, the schema), which
refuses it in words that name the place and the rule; so this module only ever says "clean" or
"ask the full path", never why.

A foundation module beside ``result``, which calls :func:`clean_document` first. The fleet
reader (``fleet.read``) calls :func:`clean_struct` instead: the same rules in one typed decode,
the open objects closed (a document with keys they do not name takes the usual path), the typed
structure handed over as it is.
"""

from __future__ import annotations

import math
import operator
import re
from itertools import chain
from typing import Annotated, Any, Literal, Union

import msgspec

MAX_DEPTH = 32  # nesting levels; a result needs about 8
MAX_JUDGED = 1e15  # the schema's bound on a measured value and a requirement's bound
# What in JSON bytes can become an unpaired surrogate: the escape \ud800-\udfff, or the bytes of
# one written raw in UTF-8 (json reads both). No match: the (slower) exact look is not needed.
# Two patterns, each looked for only where a byte search (memchr) finds its first byte: one
# pattern with both alternatives cost as much as parsing the document (measured, 96 kB).
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")


def may_hold_surrogate(raw: bytes) -> bool:
    if b"\x00" in raw[:4]:  # UTF-16 or UTF-32
        return True
    if raw.find(b"\\") != -1 and _ESCAPED_SURROGATE.search(raw) is not None:
        return True
    return raw.find(b"\xed") != -1 and _RAW_SURROGATE.search(raw) is not None



# --- The one-pass border: msgspec's typed decoding (C) checks the document's structure --------
# The types below mirror schema/result.schema.json: a document they accept, the schema accepts
# (tests/test_borders.py holds them to that over every hostile document and its mutations).
# A document they refuse takes the full path (json, the nesting walk, the schema), whose
# refusal names the place and the rule in the words the hostile tests read: the common valid
# document costs one typed decode, one untyped decode and a walk of the free-form parts only.
def _text(limit: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=limit)]


_UTC = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")]
_JUDGED_INT = Annotated[int, msgspec.Meta(ge=-10 ** 15, le=10 ** 15)]
_JUDGED_FLOAT = Annotated[float, msgspec.Meta(ge=-MAX_JUDGED, le=MAX_JUDGED)]
_VALUE = Union[None, bool, _JUDGED_INT, _JUDGED_FLOAT, _text(64)]
_BOUNDED = Annotated[float, msgspec.Meta(ge=-MAX_JUDGED, le=MAX_JUDGED)]  # an int decodes too
_VERDICT = Literal["PASS", "WARN", "FAIL", "UNKNOWN"]
_UNSET: Any = msgspec.UNSET


# gc=False: a decoded document is a tree (it holds no cycle), so its structs need not be
# tracked by the cyclic garbage collector; each is made and freed faster (a result holds hundreds)
class _Closed(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An object of the schema with ``additionalProperties: false``."""


class _Metric(_Closed):
    value: _VALUE
    unit: _text(40)


class _Check(_Closed):
    name: _text(100)
    status: Literal["ok", "error", "timeout", "skipped"]
    started_utc: _UTC
    duration_s: Annotated[float, msgspec.Meta(ge=0, le=1e6)]
    metrics: Annotated[dict[_text(100), _Metric], msgspec.Meta(max_length=500)]
    details: dict[str, Any]  # free-form: its nesting and numbers are walked (_free_parts_clean)
    error: Union[_text(20000), None]
    title: Union[_text(500), msgspec.UnsetType] = _UNSET


class _Labels(_Closed):
    label: Union[_text(200), msgspec.UnsetType] = _UNSET
    site: Union[_text(200), msgspec.UnsetType] = _UNSET
    room: Union[_text(200), msgspec.UnsetType] = _UNSET


class _Desk(_Closed):
    name: Union[_text(500), msgspec.UnsetType] = _UNSET
    hours: Union[_text(500), msgspec.UnsetType] = _UNSET


class _Coverage(_Closed):
    needed: Annotated[list[_text(100)], msgspec.Meta(max_length=200)]
    ran: Annotated[list[_text(100)], msgspec.Meta(max_length=200)]
    measured: Annotated[list[_text(100)], msgspec.Meta(max_length=200)]


class _Translation(_Closed):
    label: Union[_text(500), msgspec.UnsetType] = _UNSET
    why: Union[_text(4000), msgspec.UnsetType] = _UNSET
    fix: Union[_text(4000), msgspec.UnsetType] = _UNSET


_LANGUAGE = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]


class _Requirement(msgspec.Struct, gc=False):  # open: other keys are walked (_free_parts_clean)
    metric: Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^.]+\..+$")]
    severity: Literal["required", "recommended"]
    why: _text(4000)
    fix: _text(4000)
    source: _text(2000)
    min: Union[_BOUNDED, msgspec.UnsetType] = _UNSET
    max: Union[_BOUNDED, msgspec.UnsetType] = _UNSET
    expect: Union[bool, msgspec.UnsetType] = _UNSET
    min_version: Union[_text(64), msgspec.UnsetType] = _UNSET
    label: Union[_text(500), msgspec.UnsetType] = _UNSET
    service: Union[_text(500), msgspec.UnsetType] = _UNSET
    translations: Union[Annotated[dict[_LANGUAGE, _Translation], msgspec.Meta(max_length=20)],
                        msgspec.UnsetType] = _UNSET


class _Item(msgspec.Struct, gc=False):  # open
    status: _VERDICT
    requirement: _Requirement
    value: Union[_VALUE, msgspec.UnsetType] = _UNSET
    unit: Union[_text(40), None, msgspec.UnsetType] = _UNSET
    reason: Union[_text(20000), None, msgspec.UnsetType] = _UNSET


class _Judgement(msgspec.Struct, gc=False):  # open
    profile: dict[str, Any]
    overall: _VERDICT
    ready: bool
    items: Annotated[list[_Item], msgspec.Meta(max_length=5000)]
    verdict: Union[Literal["PASS", "WARN", "FAIL", "UNKNOWN", "PARTIAL"], msgspec.UnsetType] = _UNSET
    coverage: Union[_Coverage, msgspec.UnsetType] = _UNSET


class _Document(_Closed):
    kind: Literal["readiness-result"]
    schema_version: Literal[1]
    tool_version: _text(100)
    run_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
    started_utc: _UTC
    finished_utc: _UTC
    host: Annotated[dict[str, Union[None, bool, int, float, _text(1000)]], msgspec.Meta(max_length=50)]
    labels: _Labels
    profile: dict[str, Any]  # its named keys are checked in _typed_clean, the rest walked
    checks: Annotated[dict[_text(100), _Check], msgspec.Meta(max_length=200)]
    warnings: Annotated[list[_text(4000)], msgspec.Meta(max_length=500)]
    judgement: Union[_Judgement, None, msgspec.UnsetType] = _UNSET
    coverage: Union[_Coverage, None, msgspec.UnsetType] = _UNSET


# For a reader that needs few fields of many documents (the fleet): the same types with the open
# objects closed, so a document that passes needs no walk of its judgement (one with keys the
# types do not name is left to ``clean_document``, which walks them), and each item's requirement
# kept as its JSON bytes: a fleet's files repeat the same few requirements, each checked once
# (``_ClosedRequirement``) and remembered by its bytes, not decoded again in every file.
class _ClosedRequirement(_Requirement, forbid_unknown_fields=True):
    pass


class _RawItem(_Item, forbid_unknown_fields=True):
    requirement: msgspec.Raw


class RawJudgement(_Judgement, forbid_unknown_fields=True):
    """A judgement whose items keep their requirement as raw JSON (``clean_struct``; the fleet
    reader checks each distinct one once)."""

    items: Annotated[list[_RawItem], msgspec.Meta(max_length=5000)]


class _RawDocument(_Document):
    judgement: Union[RawJudgement, None, msgspec.UnsetType] = _UNSET


# The same document with its free parts (each check's details, the profile, the judgement's
# profile) typed as JSON values nested at most _SHALLOW_LEVELS containers deep: msgspec then
# holds their nesting itself (in C), far inside MAX_DEPTH, and they need no walk. The usual
# details are 2-5 levels deep (a chart's points); a document with deeper ones (or that this
# type refuses for any other reason) is decoded again with _RawDocument and its free parts
# walked, as before: what is accepted does not change.
_SHALLOW_LEVELS = 6
assert 3 + _SHALLOW_LEVELS < MAX_DEPTH  # details stand at depth 3, the profiles at 1 and 2


def _json_value(levels: int) -> Any:
    """A JSON value with at most ``levels`` levels of lists and objects (numbers as msgspec
    decodes them for Any: the same int, float, bool, None and str)."""
    scalar = Union[None, bool, int, float, str]
    if levels == 0:
        return scalar
    inner = _json_value(levels - 1)
    return Union[None, bool, int, float, str, list[inner], dict[str, inner]]


_SHALLOW_VALUE = _json_value(_SHALLOW_LEVELS - 1)


class _ShallowCheck(_Check, forbid_unknown_fields=True, gc=False):
    details: dict[str, _SHALLOW_VALUE]


class _ShallowJudgement(RawJudgement, forbid_unknown_fields=True, gc=False):
    profile: dict[str, _SHALLOW_VALUE]


class _ShallowDocument(_RawDocument, forbid_unknown_fields=True, gc=False):
    profile: dict[str, _SHALLOW_VALUE]
    checks: Annotated[dict[_text(100), _ShallowCheck], msgspec.Meta(max_length=200)]
    judgement: Union[_ShallowJudgement, None, msgspec.UnsetType] = _UNSET


_TYPED_SHALLOW: list[msgspec.json.Decoder] = []  # made on first use (a few ms): only the fleet reads with it


_TYPED = msgspec.json.Decoder(_Document)
_TYPED_RAW = msgspec.json.Decoder(_RawDocument)
_REQUIREMENT = msgspec.json.Decoder(_ClosedRequirement)
_CHECKED_REQUIREMENTS: set[bytes] = set()  # requirements (JSON bytes) that passed _REQUIREMENT
# The same bytes objects by length: a requirement met again is found by comparing bytes (memcmp)
# with the few of its length, and the object found (its hash kept) stands for it from there on:
# hashing each item's kilobyte in every file cost more than the rest of the judgement. At most
# _PEERS per length (a fleet's requirements rarely share one): more are looked up by hash.
_CHECKED_BY_LENGTH: dict[int, list[bytes]] = {}
_PEERS = 8
_MAX_CHECKED = 4096  # bounds its memory whatever the files hold; past it, each is checked every time
# A file's requirements in order, all checked, by their lengths (-> as msgspec.Raw, and as the
# bytes objects found for them): the next file with the same lengths is compared with it whole
# in C (most of a fleet's files hold one of a few such runs), without a copy or a look-up of
# each. At most _MAX_RUNS lengths, each run at most _MAX_RUN_BYTES long (kept as copies, not as
# views that would keep their whole file alive): their memory stays bounded whatever the files hold.
_CHECKED_RUNS: dict[tuple[int, ...], tuple[tuple[msgspec.Raw, ...], tuple[bytes, ...]]] = {}
_MAX_RUNS = 64
_MAX_RUN_BYTES = 256 * 1024
_REQUIREMENT_OF = operator.attrgetter("requirement")
UNTYPED_DECODER = msgspec.json.Decoder()  # plain JSON values (here, and the fleet reader's requirements)
_PROFILE_TEXT = {"name": 200, "title": 500, "origin": 2000}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DESK_TEXT = ("name", "phone", "email", "web", "hours")
_REQUIREMENT_KEYS = frozenset(_Requirement.__struct_fields__)
_ITEM_KEYS = frozenset(_Item.__struct_fields__)
_JUDGEMENT_KEYS = frozenset(("overall", "ready", "items", "verdict", "coverage"))  # profile: walked


def _typed(raw: bytes) -> _Document | None:
    """The document's structure checked in one typed decode; None when it does not pass (or
    may hold what only the full path tells apart: an unpaired surrogate)."""
    if may_hold_surrogate(raw):
        return None
    try:
        return _TYPED.decode(raw)
    except msgspec.DecodeError:
        return None


def _typed_clean(doc: _Document) -> bool:
    """The rules the types do not hold: a failed, timed-out or skipped check's error is text;
    the host's named keys; the profile's named keys (its other keys are free-form)."""
    for check in doc.checks.values():
        if check.status != "ok" and type(check.error) is not str:
            return False
    host = doc.host
    if type(host.get("hostname")) is not str or len(host["hostname"]) > 255:
        return False
    if "os" in host and (type(host["os"]) is not str or len(host["os"]) > 200):
        return False
    if "measured_by" in host and host["measured_by"] not in ("agent", "browser"):
        return False
    profile = doc.profile
    for key, limit in _PROFILE_TEXT.items():
        if key in profile and (type(profile[key]) is not str or len(profile[key]) > limit):
            return False
    if "sha256" in profile and (type(profile["sha256"]) is not str or not _SHA256.search(profile["sha256"])):
        return False
    if "support" in profile:
        support = profile["support"]
        if type(support) is not dict:
            return False
        for key, value in support.items():
            if key in _DESK_TEXT:
                if type(value) is not str or len(value) > 500:
                    return False
            else:
                try:
                    msgspec.convert(value, _Desk)
                except msgspec.ValidationError:
                    return False
    return True


def _free_parts_clean(data: dict[str, Any]) -> bool:
    """The parts the types leave free (details, the profile, the judgement's profile and any
    key the schema leaves open): nested at most MAX_DEPTH levels where they stand, and every
    number finite. Anything else: the full path decides (and names it)."""
    parts: list[tuple[Any, int]] = [(data["profile"], 1)]
    for record in data["checks"].values():
        parts.append((record["details"], 3))
    judgement = data.get("judgement")
    if judgement is not None:
        parts.extend((v, 2) for k, v in judgement.items() if k not in _JUDGEMENT_KEYS)
        for item in judgement["items"]:
            parts.extend((v, 4) for k, v in item.items() if k not in _ITEM_KEYS)
            parts.extend((v, 5) for k, v in item["requirement"].items() if k not in _REQUIREMENT_KEYS)
    return _parts_clean(parts)


def _parts_clean(parts: list[tuple[Any, int]]) -> bool:
    """Each (free part, the depth it stands at): nested at most MAX_DEPTH levels, numbers finite."""
    stack = [(node, depth) for node, depth in parts if type(node) is dict or type(node) is list]
    for node, depth in parts:
        if type(node) is float and not math.isfinite(node):
            return False
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif kind is float and not math.isfinite(value):
                return False
    return True


def clean_document(raw: bytes, data: Any) -> dict[str, Any] | None:
    """``data`` (parsed from ``raw``; None: parse it here) when the typed decode and the walk of
    the free-form parts pass; None: the full path decides."""
    doc = _typed(raw)
    if doc is None or not _typed_clean(doc):
        return None
    if data is None:
        try:
            data = UNTYPED_DECODER.decode(raw)
        except msgspec.DecodeError:
            return None
    if type(data) is not dict or not _free_parts_clean(data):
        return None
    return data


def clean_struct(raw: bytes) -> tuple[_RawDocument, list[bytes]] | None:
    """The document as the typed structure itself, in ONE decode, for a reader that needs only
    a few of its fields (the fleet), and each judgement item's requirement as its JSON bytes
    (checked: decode them for their data); None: not clean by the closed types, the rules they
    do not hold or the walk of the free parts (the profile, the judgement's profile, each
    check's details, unless the first decode's shallow type held them: ``_ShallowDocument``).
    The caller then takes the border's usual path (``result.load_result_bytes``), which reads
    or refuses the document in its words."""
    if may_hold_surrogate(raw):
        return None
    if not _TYPED_SHALLOW:
        _TYPED_SHALLOW.append(msgspec.json.Decoder(_ShallowDocument))
    try:
        doc: _RawDocument = _TYPED_SHALLOW[0].decode(raw)
        shallow = True
    except msgspec.DecodeError:
        try:
            doc = _TYPED_RAW.decode(raw)
        except msgspec.DecodeError:
            return None
        shallow = False
    if not _typed_clean(doc):
        return None
    parts: list[tuple[Any, int]] = []
    if not shallow:  # (the shallow type held the free parts within MAX_DEPTH)
        parts.append((doc.profile, 1))
        parts.extend((record.details, 3) for record in doc.checks.values())
    judgement = doc.judgement
    requirements: list[bytes] = []
    if judgement is not None and judgement is not _UNSET:
        if not shallow:
            parts.append((judgement.profile, 2))
        raws = tuple(map(_REQUIREMENT_OF, judgement.items))  # msgspec.Raw: views of ``raw``, not copies
        lengths = tuple(map(len, raws))
        same = _CHECKED_RUNS.get(lengths)
        if same is not None and same[0] == raws:  # compared in C, byte for byte
            requirements = list(same[1])
        else:
            checked, by_length = _CHECKED_REQUIREMENTS, _CHECKED_BY_LENGTH
            all_checked = True
            for req in map(bytes, raws):
                for known in by_length.get(len(req), ()):
                    if known == req:
                        req = known
                        break
                else:
                    if req not in checked:
                        try:
                            _REQUIREMENT.decode(req)
                        except msgspec.DecodeError:
                            return None
                        if len(checked) < _MAX_CHECKED:
                            checked.add(req)
                            peers = by_length.setdefault(len(req), [])
                            if len(peers) < _PEERS:
                                peers.append(req)
                        else:
                            all_checked = False
                requirements.append(req)
            if all_checked and (lengths in _CHECKED_RUNS or len(_CHECKED_RUNS) < _MAX_RUNS) and \
                    sum(lengths) <= _MAX_RUN_BYTES:
                _CHECKED_RUNS[lengths] = (tuple(r.copy() for r in raws), tuple(requirements))
    return (doc, requirements) if shallow or _nested_within(parts) else None


_CONTAINERS = frozenset((dict, list))


def _nested_within(parts: list[tuple[Any, int]]) -> bool:
    """``_parts_clean`` for what msgspec decoded from bytes, which holds no number that is not
    finite (it refuses NaN, Infinity and a number out of range: tests/test_border_onepass.py):
    only the nesting is looked at, and a container holding no container is passed over in C."""
    stack = [(node, depth) for node, depth in parts if type(node) is dict or type(node) is list]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        values = node.values() if type(node) is dict else node
        kinds = set(map(type, values))
        if kinds.isdisjoint(_CONTAINERS):
            continue
        if len(kinds) == 1 and depth < MAX_DEPTH:  # all lists, or all objects (a chart's points)
            inner = chain.from_iterable(values if list in kinds else map(dict.values, values))
            if _CONTAINERS.isdisjoint(map(type, inner)):
                continue  # none holds a container: all looked at in one go
        stack.extend((value, depth + 1) for value in values if type(value) is dict or type(value) is list)
    return True
