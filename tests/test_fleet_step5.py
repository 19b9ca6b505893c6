"""The step-5 analysis in the fleet report, through ``readiness aggregate`` on result files on disk:
the sections of the guide, the action list ("what to fix first"), site-level root causes and
partner organisations, the same in the JSON, the CSV and the HTML."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from readiness.result import CheckRecord, Result, write_result

NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)

PROFILE = """name = "org-rooms"
[[requirement]]
metric = "camera.height_px"
min = 720
severity = "required"
label = "Picture height"
why = "HD."
fix = "Replace the camera with a 720p one."
source = "https://example.invalid/camera"
[[requirement]]
metric = "connectivity.udp_media_reachable"
expect = true
severity = "required"
label = "UDP media"
why = "Calls over TCP stutter."
fix = "Open UDP 3478-3481 in the firewall."
source = "https://learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges"
[[requirement]]
metric = "software.teams_installed"
expect = true
severity = "required"
label = "Teams installed"
why = "Our meetings are in Teams."
fix = "Install Teams."
source = "https://example.invalid/policy"
[[requirement]]
metric = "software.teams_version"
min_version = "24295.605"
severity = "required"
label = "Teams up to date"
why = "Older builds lack media fixes."
fix = "Update Teams."
source = "https://example.invalid/policy"
[support]
name = "IT service desk"
phone = "+46 8 123 456 00"
[support.sv]
name = "IT-servicedesken"
"""


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result(host: str, site: str, room: str, *, height: int = 1080, udp: bool = True, teams: str | None = "25031.805",
           browser: bool = False, minutes: int = 0) -> Result:
    t = _iso(NOW - timedelta(minutes=minutes))
    checks = {
        "camera": CheckRecord(name="camera", status="ok", started_utc=t, duration_s=2.0,
                              metrics={"height_px": {"value": height, "unit": "px"}}),
        "connectivity": CheckRecord(name="connectivity", status="ok", started_utc=t, duration_s=1.0, metrics={
            "udp_media_reachable": {"value": udp, "unit": ""}},
            details={"services": [{"name": "Microsoft Teams", "reachable": True, "udp_media": udp},
                                  {"name": "Zoom", "reachable": True}]}),
    }
    if not browser:
        soft = {"teams_installed": {"value": teams is not None, "unit": ""},
                "zoom_installed": {"value": False, "unit": ""}}
        if teams:
            soft["teams_version"] = {"value": teams, "unit": ""}
        checks["software"] = CheckRecord(name="software", status="ok", started_utc=t, duration_s=0.1, metrics=soft)
    hostinfo = {"hostname": host, "os": "Windows"}
    if browser:
        hostinfo["measured_by"] = "browser"
    return Result(run_id=hashlib.md5(f"{host}-{minutes}".encode()).hexdigest(), started_utc=t, finished_utc=t, host=hostinfo,
                  labels={k: v for k, v in (("site", site), ("room", room)) if v},
                  profile={"name": "org-rooms", "sha256": "0" * 64}, checks=checks, tool_version="0.2.0")


def fleet(tmp_path: Path) -> Path:
    share = tmp_path / "share"
    share.mkdir()
    rs = [result(f"gbg-r{i}", "Göteborg", f"G{i}", udp=False) for i in range(4)]           # all of a site: UDP
    rs += [result(f"sth-r{i}", "Stockholm", f"S{i}", height=480) for i in range(6)]        # 6 cameras
    rs += [result(f"sth-ok{i}", "Stockholm", f"OK{i}") for i in range(2)]
    rs += [result("sth-udp", "Stockholm", "S9", udp=False)]                                # one room only
    rs += [result(f"sth-ws{i}", "Stockholm", "", teams="1.6.00.4472") for i in range(3)]   # old Teams
    rs += [result("sth-ws9", "Stockholm", "", teams=None)]                                 # no Teams
    rs += [result("partner-1", "Partner AB", "", browser=True, height=480),                 # partner org
           result("partner-2", "Partner AB", "", browser=True)]
    for r in rs:
        write_result(r, share)
    return share


def test_actions_sections_and_partners(cli, tmp_path: Path) -> None:
    share = fleet(tmp_path)
    prof = tmp_path / "org.toml"
    prof.write_text(PROFILE, encoding="utf-8")
    r = cli("aggregate", str(share), "--requirements", str(prof), "-o", str(tmp_path / "fleet.html"),
            "--json", str(tmp_path / "fleet.json"), "--sections-csv", str(tmp_path / "step5.csv"),
            "--csv", str(tmp_path / "fleet.csv"))
    assert r.returncode == 0, r.stderr
    figs = json.loads((tmp_path / "fleet.json").read_text(encoding="utf-8"))
    s5 = figs["step5"]
    got = [(a["kind"], a["subject"], a["site"], a["units"], a["makes_ready"]) for a in s5["actions"]]
    assert got == [
        ("camera", "", None, 6, 6),
        ("udp_ports", "", "Göteborg", 4, 4),       # the site's root cause: all 4 rooms fail it
        ("update", "teams", None, 3, 3),
        ("install", "teams", None, 1, 1),
        ("udp_ports", "", None, 1, 1),             # one Stockholm room: not the site's cause
    ]
    assert s5["actions"][1]["labels"] == ["UDP media"] and s5["actions"][1]["fix"] == "Open UDP 3478-3481 in the firewall."
    assert sorted(s5["actions"][0]["where"]) == [f"S{i}" for i in range(6)]
    # partners: in their own section, not in the actions or the organisation's sections
    assert s5["partners"]["units"] == 2 and s5["units"] == 17
    partner = s5["partners"]["sites"][0]
    # a browser cannot see installed software, so the partners are partial at best under this list
    assert (partner["site"], partner["units"], partner["not_ready"], partner["ready"]) == ("Partner AB", 2, 1, 0)
    assert partner["failing"] == [{"label": "Picture height", "units": 1}]
    sec = s5["sections"]
    assert [row["metric"] for row in sec["equipment"]["requirements"]] == ["camera.height_px"]
    assert sec["equipment"]["requirements"][0]["FAIL"] == 6  # the partner's failing camera is not counted here
    assert [row["metric"] for row in sec["subscriptions"]["requirements"]] == ["software.teams_installed"]
    assert [row["metric"] for row in sec["security"]["requirements"]] == ["software.teams_version"]  # outdated client
    clients = {c["client"]: c for c in sec["subscriptions"]["clients"]}
    assert (clients["teams"]["installed"], clients["teams"]["looked"]) == (16, 17)
    assert (clients["teams"]["oldest"], clients["teams"]["newest"]) == ("1.6.00.4472", "25031.805")
    services = {(s["site"], s["service"]): s for s in sec["subscriptions"]["services"]}
    assert services[("Göteborg", "Microsoft Teams")] | {} == {"site": "Göteborg", "service": "Microsoft Teams", "units": 4,
                                                              "reachable": 4, "udp_ok": 0, "udp_tested": 4}
    assert services[("Stockholm", "Microsoft Teams")]["udp_ok"] == 12
    assert sec["support"]["contacts"][0]["phone"] == "+46 8 123 456 00"

    rows = list(csv.reader((tmp_path / "step5.csv").open(encoding="utf-8-sig")))
    header, body = rows[0], rows[1:]
    actions = [dict(zip(header, row)) for row in body if row[0] == "action"]
    assert [(a["rank"], a["item"], a["site"], a["units"], a["ready_gained"]) for a in actions][:2] == [
        ("1", "camera", "", "6", "6"), ("2", "udp_ports", "Göteborg", "4", "4")]
    assert {row[0] for row in body} >= {"action", "equipment", "network", "subscriptions", "service", "client",
                                        "security_fact", "support", "partner"}

    units = list(csv.DictReader((tmp_path / "fleet.csv").open(encoding="utf-8-sig")))
    ws = next(u for u in units if u["hostname"] == "sth-ws0")
    assert ws["software.teams_version"] == "1.6.00.4472" and ws["software.teams_installed"] == "true"

    html = (tmp_path / "fleet.html").read_text(encoding="utf-8")
    for words in ("What to fix first", "Göteborg", "Partner AB", "IT service desk"):
        assert words in html


def test_swedish_fleet_report_and_support_name(cli, tmp_path: Path) -> None:
    share = fleet(tmp_path)
    prof = tmp_path / "org.toml"
    prof.write_text(PROFILE, encoding="utf-8")
    r = cli("aggregate", str(share), "--requirements", str(prof), "-o", str(tmp_path / "f.html"), "--lang", "sv")
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "f.html").read_text(encoding="utf-8")
    assert "Vad ska åtgärdas först" in html and "IT-servicedesken" in html and "Partnerorganisationer" in html


def test_partner_named_on_the_command_line(cli, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    for r in (result("a1", "Ours", "R1", height=480), result("p1", "Their Office", "R1", height=480)):
        write_result(r, share)
    prof = tmp_path / "org.toml"
    prof.write_text(PROFILE, encoding="utf-8")
    r = cli("aggregate", str(share), "--requirements", str(prof), "-o", str(tmp_path / "f.html"),
            "--json", "-", "--partner", "Their Office")
    assert r.returncode == 0, r.stderr
    s5 = json.loads(r.stdout)["step5"]
    assert [a["units"] for a in s5["actions"]] == [1] and s5["partners"]["sites"][0]["site"] == "Their Office"


def test_hostile_support_contact_in_stored_results(cli, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    r = result("h1", "Ours", "R1")
    r.judgement = {"profile": {"name": "x", "sha256": "0" * 64,
                               "support": {"name": "<script>alert(1)</script>", "phone": "=cmd|' /C calc'!A0",
                                           "web": "javascript:alert(2)", "hours": {"nested": ["junk"]},
                                           "sv": {"name": 5}}},
                   "overall": "PASS", "ready": True, "items": []}
    write_result(r, share)
    out = tmp_path / "f.html"
    run = cli("aggregate", str(share), "-o", str(out), "--sections-csv", str(tmp_path / "s.csv"), "--json", "-")
    assert run.returncode == 0, run.stderr
    page = out.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert 'href="javascript:' not in page
    support = json.loads(run.stdout)["step5"]["sections"]["support"]["contacts"][0]
    assert support == {"name": "<script>alert(1)</script>", "phone": "=cmd|' /C calc'!A0", "web": "javascript:alert(2)"}
    rows = list(csv.reader((tmp_path / "s.csv").open(encoding="utf-8-sig")))
    cell = next(row for row in rows if row[0] == "support")[-1]
    assert cell.startswith("'=")  # a spreadsheet shows it, never runs it
