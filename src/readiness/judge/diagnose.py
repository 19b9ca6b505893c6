"""Diagnoses: why what was judged is not met — one cause, the requirements it explains, the
advice for that cause.

Sits between the judge (``verdicts.py``) and the renderers (``render/report.py``, the terminal
summary, the self-test page, the fleet's action list). A check reports facts and findings
(``details.findings``: ``{"code", "args"}``, or the finding of a failure it raised); the judge
gives verdicts; this module says *why*. Renderers lay diagnoses out and never invent a cause.

The API (everything a renderer needs):

- :func:`diagnose` ``(result, judgement) -> list[Diagnosis]``: every requirement that is not
  PASS sits in exactly one diagnosis; most important first (FAIL, unknown required, WARN,
  unknown recommended; a cause before a plain missed bound).
- :class:`Diagnosis`: ``cause`` (a cause code, see :data:`CAUSES`; ``"requirement"`` for a
  bound missed with no cause found beyond the figure itself), ``status`` (the worst verdict it
  explains), ``checks`` (the checks it touches), ``items`` (its verdicts), ``findings`` (the
  facts that named it), ``lead`` (the requirement the headline names: a device's "works" FAIL,
  a missed bound; None when the cause left everything unmeasured), ``folded`` (the rest).
- :func:`describe` ``(diagnosis, result, lang) -> Words``: the headline's words from the
  catalogs — ``title`` (the checks' names, or the lead requirement's label), ``cause`` (the
  cause in plain words), ``advice`` (keyed to the cause: catalog ``advice.<cause>``; a plain
  missed bound gets its requirement's ``fix``).
- :func:`cause_of` ``(finding_code) -> Cause | None``: the cause a finding names.

Rules, by construction: one cause behind several checks (PortAudio missing: microphone *and*
speakers; no network: three network checks; UDP blocked: connectivity *and* latency) is one
diagnosis naming them all. A requirement whose measurement depends on something that failed
is UNKNOWN with that cause (the judge never saw a figure for it), never a FAIL of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from readiness.i18n.format import word
from readiness.judge.verdicts import FAIL, PASS, UNKNOWN, WARN, Judgement, Verdict, overall
from readiness.result import CheckRecord, Result

ALL = "*"  # a cause that explains every requirement of the check reporting it


@dataclass(frozen=True)
class Cause:
    """A cause: the finding codes that name it and the requirements it explains.

    ``explains``: metrics (``check.metric``) it explains whatever their verdict, wherever they
    are judged; :data:`ALL` stands for every requirement of the check whose finding names it
    (a missing camera explains its whole area). ``unknowns``: the same, for requirements it
    explains only when they are UNKNOWN (UDP blocked leaves jitter unmeasured; a jitter measured
    over UDP elsewhere is not its doing). ``services``: it explains every service's own figure
    left unknown (``--server`` measures the site's server, not the services). ``shared``: one
    cause for the whole computer, so the findings of several checks become one diagnosis.
    """

    code: str
    findings: tuple[str, ...]
    explains: tuple[str, ...] = (ALL,)
    unknowns: tuple[str, ...] = ()
    shared: bool = False
    services: bool = False
    overrules: bool = False  # its finding outranks the figure: a metric it explains measured PASS is a fault

    def named(self) -> tuple[str, ...]:
        """The metrics it explains by name (not :data:`ALL`)."""
        return tuple(m for m in self.explains if m != ALL)

    def covers(self, check: str, v: Verdict) -> bool:
        """Does this cause, named by a finding of ``check``, explain verdict ``v``?"""
        def among(metrics: tuple[str, ...]) -> bool:
            return (ALL in metrics and v.requirement.check == check) or v.requirement.metric in metrics

        if among(self.explains):
            return True
        if v.status != UNKNOWN:
            return False
        return among(self.unknowns) or (self.services and v.requirement.service is not None)


_LATENCY_FIGURES = ("latency.rtt_median_ms", "latency.jitter_ms", "latency.loss_pct", "latency.burst_loss_pct",
                    "latency.mos")

# The cause model. Advice words: catalog ``advice.<code>``; the headline's cause: ``cause.<code>``
# when the catalog has one, else the first finding's words (``finding.<code>``).
CAUSES: tuple[Cause, ...] = (
    Cause("audio_library_missing", ("no_portaudio",), shared=True),
    Cause("no_network", ("no_network_route",), shared=True),
    Cause("dns_fails", ("dns_fails", "services_unresolved", "speed_server_unresolved"), explains=(),
          unknowns=(ALL,), shared=True),
    Cause("services_blocked", ("services_unreachable", "latency_no_answer"), shared=True),
    Cause("proxy_blocks", ("services_unreachable_via_proxy", "services_refused_by_proxy"), shared=True),
    Cause("udp_blocked", ("udp_media_silent", "latency_udp_silent", "latency_tcp_only"),
          explains=("connectivity.udp_media_reachable", "latency.udp_reachable"),
          unknowns=_LATENCY_FIGURES, shared=True),
    Cause("own_server_udp_blocked", ("udp_own_server_silent",), explains=("connectivity.udp_server_reachable",),
          overrules=True),
    Cause("own_server_only", ("measured_own_server",), explains=(), services=True, shared=True),
    Cause("speed_server_silent", ("speed_server_silent",), shared=True),
    Cause("speed_test_failed", ("speed_test_failed", "speedtest_forbidden", "speedtest_no_config",
                                "speedtest_server_unlisted", "speedtest_no_server_list", "speedtest_no_ping",
                                "speedtest_bad_config", "speedtest_failed", "speedtest_over_budget")),
    Cause("no_camera", ("no_camera_found", "camera_named_not_found", "browser_not_found_camera")),
    Cause("no_microphone", ("no_microphone_found", "browser_not_found_microphone")),
    Cause("no_speaker", ("no_speaker_found",)),
    Cause("camera_permission", ("camera_permission_macos", "camera_permission_windows")),
    Cause("camera_permission_browser", ("browser_denied_camera",)),  # the page's site permission
    Cause("camera_permission_group", ("camera_permission_device",)),  # Linux: the "video" group
    Cause("microphone_permission", ("browser_denied_microphone",)),
    Cause("camera_busy", ("camera_may_be_in_use", "browser_in_use_camera")),
    Cause("microphone_busy", ("browser_in_use_microphone",)),
    Cause("camera_failed", ("camera_open_failed", "camera_open_hangs", "stream_open_failed", "stream_no_picture",
                            "file_unreadable", "no_picture", "camera_stopped", "browser_no_picture")),
    Cause("microphone_gone", ("microphone_gone", "microphone_open_failed", "microphone_stopped")),
    Cause("speaker_gone", ("speaker_gone", "speaker_open_failed", "speaker_stopped")),
    Cause("microphone_silent", ("digital_silence",), explains=("microphone.silent", "microphone.working"),
          unknowns=(ALL,), overrules=True),
    Cause("speakers_not_heard", ("person_did_not_hear",),
          explains=("speakers.playback_ok", "speakers.heard", "speakers.heard_by_person"), unknowns=(ALL,),
          overrules=True),  # a person who heard nothing outranks a stream that opened
    Cause("speakers_silent", ("loopback_not_heard",), explains=("speakers.heard",), unknowns=(ALL,), overrules=True),
    Cause("loopback_no_microphone", ("loopback_no_microphone",), explains=(),
          unknowns=("speakers.heard", "speakers.speech_mos", "speakers.loopback_latency_ms")),
    Cause("speech_model_missing", ("speech_model_missing",), explains=(), unknowns=("speakers.speech_mos",)),
    Cause("udp_not_tested", ("udp_not_tested",), explains=(), unknowns=("connectivity.udp_media_reachable",)),
    Cause("tls_not_tested", ("tls_not_tested",), explains=(), unknowns=("connectivity.tls_intercepted",)),
    Cause("software_not_listed", ("no_software_inventory",), explains=(), unknowns=(ALL,)),
    Cause("os_support_unknown", ("os_support_table_stale", "os_not_in_support_table"), explains=(),
          unknowns=("software.os_supported",)),
    Cause("not_told_without_admin", ("firewall_not_told", "encryption_not_told"), explains=(), unknowns=(ALL,),
          shared=True),
)
_BY_FINDING = {f: c for c in CAUSES for f in c.findings}

# Status-based causes (a check that could not run to the end without saying why in a finding)
DID_NOT_RUN, TIMED_OUT, SKIPPED, CHECK_FAILED, NOT_MEASURED, SERVICE_NOT_MEASURED = (
    "check_did_not_run", "check_timed_out", "check_skipped", "check_failed", "not_measured", "service_not_measured")
# a figure the self-test page cannot measure (the services themselves, responsiveness): it measures
# the organisation's own server; the readiness agent on the computer measures the rest
BROWSER_NOT_MEASURED = "browser_not_measured"
REQUIREMENT = "requirement"
_RANK = {FAIL: 0, WARN: 2, UNKNOWN: 3, PASS: 4}


def cause_of(finding_code: str) -> Cause | None:
    """The cause a finding names (None for a fact that is no cause, e.g. a measured delay)."""
    return _BY_FINDING.get(finding_code)


@dataclass
class Diagnosis:
    """One cause and what it explains. See the module docstring for the fields."""

    cause: str
    status: str
    checks: list[str]
    items: list[Verdict]
    findings: list[dict] = field(default_factory=list)
    lead: Verdict | None = None
    error: str | None = None  # the check's own message (status-based causes), for the appendix

    @property
    def folded(self) -> list[Verdict]:
        """The requirements it explains besides the lead (the consequences shown under it)."""
        return [v for v in self.items if v is not self.lead]

    @property
    def unknown(self) -> int:
        return sum(1 for v in self.folded if v.status == UNKNOWN)

    @property
    def required(self) -> bool:
        return any(v.requirement.severity == "required" for v in self.items)

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: FAIL, unknown required, WARN, unknown recommended; causes before bounds."""
        r = _RANK[self.status]
        if self.status == UNKNOWN and self.required:
            r = 1
        return (r, self.cause == REQUIREMENT)

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "status": self.status, "checks": list(self.checks),
                "requirements": [_req_key(v) for v in self.items],
                "lead": _req_key(self.lead) if self.lead is not None else None,
                "findings": [dict(f) for f in self.findings]}


def _req_key(v: Verdict) -> dict[str, Any]:
    r = v.requirement
    out = {"metric": r.metric, "severity": r.severity, "status": v.status}
    if r.service:
        out["service"] = r.service
    return out


def _findings(record: CheckRecord | None) -> list[dict]:
    if record is None or not isinstance(record.details, dict):
        return []
    return [f for f in record.details.get("findings") or []
            if isinstance(f, dict) and isinstance(f.get("code"), str)]


def _status_cause(record: CheckRecord | None) -> str:
    if record is None:
        return DID_NOT_RUN
    return {"timeout": TIMED_OUT, "skipped": SKIPPED}.get(record.status, CHECK_FAILED)


def _named_causes(result: Result) -> list[tuple[str, Cause, dict]]:
    """(check, cause, finding) for every finding that names a cause, in checks that measured."""
    named: list[tuple[str, Cause, dict]] = []
    for check, record in result.checks.items():
        if record.status != "ok":
            continue
        for f in _findings(record):
            cause = cause_of(f["code"])
            if cause is not None:
                named.append((check, cause, f))
    return named


def reconcile(result: Result, judgement: Judgement) -> Judgement:
    """The judgement with no PASS beside a cause that explains the same metric: a finding that
    outranks its figure (:attr:`Cause.overrules`: a person who did not hear the tone, digital
    silence) makes that metric FAIL (WARN when recommended). Returns ``judgement`` itself when
    nothing changes; every judgement is reconciled before it is stored, counted or shown."""
    named = {m for _, cause, _ in _named_causes(result) if cause.overrules for m in cause.named()}
    if not any(v.status == PASS and v.requirement.metric in named for v in judgement.items):
        return judgement
    items = [Verdict(v.requirement, FAIL if v.requirement.severity == "required" else WARN, v.value, v.unit)
             if v.status == PASS and v.requirement.metric in named else v for v in judgement.items]
    return Judgement(profile=judgement.profile, overall=overall(items), items=items, coverage=judgement.coverage)


def diagnose(result: Result, judgement: Judgement) -> list[Diagnosis]:
    """Every requirement that is not PASS, in exactly one diagnosis, most important first.
    ``judgement`` as :func:`reconcile` leaves it (a PASS a finding overrules is not placed)."""
    bad = [v for v in judgement.items if v.status != PASS]
    passed = {v.requirement.metric for v in judgement.items if v.status == PASS}
    out: dict[tuple, Diagnosis] = {}
    placed: set[int] = set()

    def put(key: tuple, cause: str, check: str, v: Verdict, finding: dict | None = None,
            error: str | None = None) -> None:
        d = out.get(key)
        if d is None:
            d = out[key] = Diagnosis(cause, v.status, [], [], error=error)
        if check not in d.checks:
            d.checks.append(check)
        d.items.append(v)
        if finding is not None and finding not in d.findings:
            d.findings.append(finding)
        placed.add(id(v))

    def key_of(cause: Cause | None, code: str, check: str, finding: dict | None) -> tuple:
        if cause is not None:
            return (cause.code,) if cause.shared else (cause.code, check)
        # a plugin's own finding: identical facts behind several checks are one cause
        args = finding.get("args") if finding and isinstance(finding.get("args"), dict) else {}
        return (code, tuple(sorted((str(k), str(a)) for k, a in args.items())))

    # 1. Checks that did not measure: every requirement of theirs is unknown, for their cause.
    for v in bad:
        record = result.checks.get(v.requirement.check)
        if record is not None and record.status == "ok":
            continue
        check = v.requirement.check
        found = [f for f in _findings(record)  # a cause its own PASS refutes names nothing (see 2.)
                 if not passed & set(getattr(cause_of(f["code"]), "explains", ()))]
        if record is not None and record.status == "error" and found:
            f = found[0]
            cause = cause_of(f["code"])
            code = cause.code if cause else f["code"]
            put(key_of(cause, code, check, f), code, check, v, f, record.error)
        else:
            code = _status_cause(record)
            put((code, check), code, check, v, None, record.error if record is not None else None)

    # 2. Checks that measured: a finding that names a cause explains what it covers, wherever
    #    that is judged (UDP blocked: connectivity's and latency's requirements alike).
    #    A cause whose own metric measured PASS is refuted (one service's UDP silent while another
    #    answers is no "UDP blocked"): no advice beside a PASS saying the same thing is fine.
    named = [(check, cause, f) for check, cause, f in _named_causes(result) if not passed & set(cause.named())]
    for v in bad:
        if id(v) in placed:
            continue
        for check, cause, f in named:
            if cause.covers(check, v):
                put(key_of(cause, cause.code, check, f), cause.code, v.requirement.check, v, f)
                break
    for d in out.values():  # every finding of a cause, also from checks whose items it did not take
        for check, cause, f in named:
            if cause.code == d.cause and (cause.shared or check in d.checks) and f not in d.findings:
                d.findings.append(f)

    # 3. The rest: a missed bound is its own diagnosis (the tiers of one metric together); an
    #    unknown in a check that measured, without a cause, says that plainly.
    for v in bad:
        if id(v) in placed:
            continue
        check = v.requirement.check
        if v.status == UNKNOWN and result.host.get("measured_by") == "browser":
            put((BROWSER_NOT_MEASURED,), BROWSER_NOT_MEASURED, check, v)
        elif v.status == UNKNOWN and v.requirement.service and not _measures_service(result.checks.get(check),
                                                                                   v.requirement.service):
            # the list names a service the check was not set to measure: a setting, not a fault
            put((SERVICE_NOT_MEASURED, check, v.requirement.service), SERVICE_NOT_MEASURED, check, v,
                {"code": SERVICE_NOT_MEASURED, "args": {"service": v.requirement.service, "check": check}})
        elif v.status == UNKNOWN:
            put((NOT_MEASURED, check), NOT_MEASURED, check, v)
        else:  # one figure, one line: a service's own requirement on the same figure joins it
            put((REQUIREMENT, v.requirement.metric, repr(v.value)), REQUIREMENT, check, v)
    # a requirement line carries its metric's other tiers (even PASS) for "≥ 1.2 required; ≥ 4 recommended"
    for d in out.values():
        worst = min(d.items, key=lambda v: _RANK[v.status])
        d.status = worst.status
        if d.cause == REQUIREMENT or worst.status in (FAIL, WARN):
            d.lead = _lead(d.items)
    return sorted(out.values(), key=lambda d: d.rank)


def checked_areas(result: Result, j: Judgement, found: list[Diagnosis] | None = None) -> list[str]:
    """The areas (checks the requirement list needs) that measured something they were asked, in
    the list's order: the one count of "areas checked" for the report, its partial line and the page.

    A check that crashed measured nothing; an area whose only figure is the headline of a cause
    that left its other requirements unknown ("Camera works: no" when no camera was found) measured
    nothing either. ``found``: :func:`diagnose`'s answer, when the caller already has it."""
    found = diagnose(result, j) if found is None else found
    hollow = {id(d.lead) for d in found
              if d.lead is not None and d.cause != REQUIREMENT
              and any(v.status == UNKNOWN and v.requirement.check == d.lead.requirement.check for v in d.items)}
    return [c for c in needed_areas(j)
            if any(v.requirement.check == c and v.status != UNKNOWN and id(v) not in hollow for v in j.items)]


def needed_areas(j: Judgement) -> list[str]:
    """The areas the requirement list needs (the judgement's coverage, else its requirements' checks)."""
    return list(j.coverage.needed) if j.coverage is not None else list(dict.fromkeys(v.requirement.check
                                                                                     for v in j.items))


def _measures_service(record: CheckRecord | None, service: str) -> bool:
    services = record.details.get("services") if record is not None and isinstance(record.details, dict) else None
    if isinstance(services, dict):
        return service in services
    if isinstance(services, list):
        return any(isinstance(e, dict) and e.get("name") == service for e in services)
    return True  # the check keeps no list of services: nothing to tell


def _lead(items: list[Verdict]) -> Verdict:
    """The requirement the headline names: a device's "works" first, else the worst, required first."""
    bad = [v for v in items if v.status in (FAIL, WARN)] or items
    works = [v for v in bad if v.requirement.metric.endswith((".working", ".playback_ok"))]
    return (works or sorted(bad, key=lambda v: (_RANK[v.status], v.requirement.severity != "required")))[0]


# --- words -------------------------------------------------------------------------------------


@dataclass
class Words:
    """A diagnosis in a reader's language, from the catalogs."""

    title: str  # what it is about: the checks' names ("Microphone, Speakers") or the lead's label
    cause: str  # the cause in plain words ("" for a plain missed bound: the figure says it)
    advice: str  # what to do about that cause


def check_title(name: str, lang: str, fallback: str = "") -> str:
    """A check's name in ``lang`` (catalog ``check.<name>``), else the title it reported, else its id."""
    text = word(lang, f"check.{name}")
    return text if text != f"check.{name}" else (fallback or name)


def finding_text(f: dict, lang: str) -> str:
    """One finding in words (``finding.<code>``); a plugin's code without words: its facts."""
    args = f.get("args") if isinstance(f.get("args"), dict) else {}
    if isinstance(args.get("source"), str) and word(lang, f"fact.{args['source']}") != f"fact.{args['source']}":
        args = {**args, "source": word(lang, f"fact.{args['source']}")}  # where a proxy came from, in words
    if isinstance(args.get("check"), str) and word(lang, f"check.{args['check']}") != f"check.{args['check']}":
        args = {**args, "check": word(lang, f"check.{args['check']}")}  # a check by its name in the reader's words
    key = f"finding.{f['code']}"
    text = word(lang, key, **args)
    if text == key:
        text = f["code"].replace("_", " ") + "".join(f"; {k} {v}" for k, v in args.items())
    return text


def _ports(result: Result) -> str:
    """The UDP ports the meeting services' relays use (from the connectivity check's details)."""
    ports: list[str] = []
    record = result.checks.get("connectivity")
    services = record.details.get("services") if record is not None and isinstance(record.details, dict) else None
    for entry in services if isinstance(services, list) else []:
        for hp in (entry.get("stun") or {}) if isinstance(entry, dict) else {}:
            port = str(hp).rpartition(":")[2]
            if port.isdigit() and port not in ports and not str(entry.get("name", "")).startswith("readiness server"):
                ports.append(port)
    return ", ".join(ports) or "3478–3481"


def _services(d: Diagnosis) -> str:
    names: list[str] = []
    for f in d.findings:
        args = f.get("args") if isinstance(f.get("args"), dict) else {}
        for part in str(args.get("service") or args.get("services") or "").split(", "):
            if part and part not in names:
                names.append(part)
    return ", ".join(names)


def describe(d: Diagnosis, result: Result, lang: str = "en") -> Words:
    """The words of one diagnosis: what it is about, its cause, the advice for that cause."""
    titles = ", ".join(check_title(c, lang, result.checks[c].title if c in result.checks else "") for c in d.checks)
    if d.lead is not None and d.cause == REQUIREMENT:
        label = d.lead.requirement.text("label", lang) or d.lead.requirement.metric
        return Words(label, "", d.lead.requirement.text("fix", lang))
    facts = {"services": _services(d), "ports": _ports(result),
             "url": next((f["args"].get("url") for f in d.findings
                          if isinstance(f.get("args"), dict) and f["args"].get("url")), "")}
    cause = word(lang, f"cause.{d.cause}", **facts)
    if d.cause == CHECK_FAILED and not d.findings:
        rec = result.checks.get(d.checks[0]) if d.checks else None
        if rec is not None and rec.error and not (isinstance(rec.details, dict) and rec.details.get("traceback")):
            cause = rec.error  # the check's own sentence (a CheckError); an unexpected exception keeps the catalog's
    if cause == f"cause.{d.cause}":
        if d.findings:
            cause = finding_text(d.findings[0], lang)
        else:
            cause = word(lang, "cause.not_measured")
    advice = word(lang, f"advice.{d.cause}", **facts)
    if advice == f"advice.{d.cause}":  # a plugin's cause, or a check that failed without a finding
        first = d.checks[0] if d.checks else ""
        advice = word(lang, f"unmeasured.{first}")
        if advice == f"unmeasured.{first}":
            advice = word(lang, "unmeasured_other")
    title = titles
    if d.lead is not None:
        title = d.lead.requirement.text("label", lang) or d.lead.requirement.metric
    return Words(title, cause, advice)
