"""The step-5 analysis in the fleet report, through ``readiness aggregate`` on result files on disk:
the sections of the guide, the action list ("what to fix first"), site-level root causes and
partner organisations, the same in the JSON, the CSV and the HTML."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from readiness.result import CheckRecord, Result, write_result

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


# --- a fleet of meeting rooms with known faults (tests/fleet_rooms.py), judged by meeting-room ----

def rooms_fleet(tmp_path: Path, extra: list[Result] = ()) -> Path:
    """Three rooms: one camera too small, one with UDP blocked and a jittery link, one fine."""
    from fleet_rooms import room

    share = tmp_path / "rooms"
    share.mkdir(parents=True)
    for r in [room("gbg-r1", "Göteborg", "Stora salen", {"camera.height_px": 480, "camera.width_px": 640}),
              room("gbg-r2", "Göteborg", "Lilla rummet", {"connectivity.udp_media_reachable": False,
                                                         "latency.jitter_ms": 80}),
              room("sth-r1", "Stockholm", "4.12"), *extra]:
        write_result(r, share)
    return share


def aggregate_rooms(cli, share: Path, out: Path, *extra: str) -> dict:
    r = cli("aggregate", str(share), "--profile", "meeting-room", "-o", str(out), "--json", "-", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_known_faults_per_room_give_the_action_order_and_the_readiness_column(cli, tmp_path: Path) -> None:
    share = rooms_fleet(tmp_path)
    figs = aggregate_rooms(cli, share, tmp_path / "f.html")
    s5 = figs["step5"]
    got = [(a["rank"], a["kind"], a["units"], a["makes_ready"], a["ready_after"], a["together_with"]) for a in s5["actions"]]
    # 4.12 is ready before anything; the camera readies Stora salen; Lilla rummet needs both network fixes
    assert got == [(1, "camera", 1, 1, 2, []), (2, "network_path", 1, 0, 2, []), (3, "udp_ports", 1, 1, 3, [2])]
    assert (s5["ready_before"], s5["units"], s5["combination"]) == (1, 3, None)
    html = (tmp_path / "f.html").read_text(encoding="utf-8")
    assert "Rooms and computers ready after this step" in html and "Made ready" not in html
    cells = re.findall(r'<td class="num[^"]*">(\d+ of 3)(?:<div class="muted">([^<]*)</div>)?</td>', html)
    assert cells == [("2 of 3", ""), ("2 of 3", ""), ("3 of 3", "with step 2")]
    sv = aggregate_rooms(cli, share, tmp_path / "sv.html", "--lang", "sv")
    assert sv["step5"]["actions"][2]["ready_after"] == 3
    html = (tmp_path / "sv.html").read_text(encoding="utf-8")
    assert "Rum och datorer redo efter detta steg" in html and "3 av 3" in html and "tillsammans med steg 2" in html


def test_no_single_fix_readying_any_room_is_said_in_words(cli, tmp_path: Path) -> None:
    from fleet_rooms import room

    share = tmp_path / "two"
    share.mkdir()
    for r in [room("a", "Lund", "A", {"camera.height_px": 480, "connectivity.udp_media_reachable": False}),
              room("b", "Lund", "B", {"camera.height_px": 480, "latency.jitter_ms": 80})]:
        write_result(r, share)
    for lang, words in (("en", "No single fix makes a room or computer ready: each needs more than one. "
                               "Steps 1 and 2 together make 1 ready."),
                        ("sv", "Ingen enskild åtgärd gör något rum eller någon dator redo: var och en behöver fler "
                               "än en. Stegen 1 och 2 tillsammans gör 1 redo.")):
        figs = aggregate_rooms(cli, share, tmp_path / f"{lang}.html", "--lang", lang)
        s5 = figs["step5"]
        assert [a["kind"] for a in s5["actions"]] == ["camera", "network_path", "udp_ports"]
        assert s5["combination"] == {"steps": [1, 2], "ready": 1}
        assert words in (tmp_path / f"{lang}.html").read_text(encoding="utf-8")


def test_fails_most_counts_fail_apart_from_unknown_and_browser_and_partner_rows_stay_apart(cli, tmp_path: Path) -> None:
    from fleet_rooms import room

    no_camera = {m: None for m in ("camera.working", "camera.width_px", "camera.height_px", "camera.fps",
                                   "camera.black_pct", "camera.frozen", "camera.overexposed_pct", "camera.sharpness")}
    extra = [room("lund-r1", "Lund", "L1", no_camera | {"latency.jitter_ms": 80}),
             room("lund-r2", "Lund", "L2", {"microphone.silent": True}),
             room("lund-r3", "Lund", "L3", no_camera),
             room("sth-b1", "Stockholm", "4.12", {"camera.height_px": 240}, browser=True),   # a room's browser row
             room("p-1", "Partner AB", "", {"camera.height_px": 240, "camera.fps": None}, browser=True)]  # a partner
    share = rooms_fleet(tmp_path, extra)
    figs = aggregate_rooms(cli, share, tmp_path / "f.html")
    lund = next(s for s in figs["sites"] if s["site"] == "Lund")
    l1 = next(r for r in lund["rooms"] if r["room"] == "L1")
    # one real failure, eight camera items never measured: the failure comes first
    assert l1["failing"][0] == {"label": "Jitter (≤ 30 ms)", "status": "FAIL", "units": 1}
    assert [x["status"] for x in l1["failing"]] == ["FAIL", "UNKNOWN", "UNKNOWN"]
    # the tiles and the distributions are the organisation's rooms as its agents measured them
    assert figs["tiles"]["total"] == 6 and figs["counts"]["total"] == 8
    assert figs["apart"]["browser"]["total"] == 1 and figs["apart"]["partners"]["total"] == 1
    height = next(h for h in figs["histograms"] if h["metric"] == "camera.height_px")
    assert height["n"] == 4 and height["min"] == 480  # L1 measured no picture; 240 is a browser's and a partner's
    html = (tmp_path / "f.html").read_text(encoding="utf-8")
    assert re.search(r'<div class="tile PASS"><span class="n">\d+</span>', html)
    assert "Not in these figures: browser self-tests 1 (0 ready), results from partner organisations 1 (0 ready)" in html
    assert "Jitter (≤ 30 ms)</span>, <span class=\"st UNKNOWN\">" in html and "(not measured)" in html
    # the step-5 sections too: a requirement one room fails above one two rooms could not measure
    for name, section in figs["step5"]["sections"].items():
        failed = [r["FAIL"] + r["WARN"] > 0 for r in section.get("requirements", [])]
        assert failed == sorted(failed, reverse=True), name
    equipment = [r["metric"] for r in figs["step5"]["sections"]["equipment"]["requirements"]]
    assert equipment.index("microphone.silent") < equipment.index("camera.fps")
    partner = figs["step5"]["partners"]["sites"][0]
    assert partner["failing"] == [{"label": "Camera resolution (1080p, height)", "units": 1}]
    assert partner["not_measured"] == [{"label": "Camera frame rate", "units": 1}]  # not measured: not a failure


def test_charts_say_what_was_measured_and_nothing_measured_only_when_nothing_was(cli, tmp_path: Path) -> None:
    share = rooms_fleet(tmp_path)
    figs = aggregate_rooms(cli, share, tmp_path / "f.html")
    hists = {h["metric"]: h for h in figs["histograms"]}
    rtt = hists["latency.rtt_median_ms"]
    # the round trip plotted is the check's own (to the site's server here), not Microsoft Teams' figure
    assert rtt["label"] == "Round-trip time" and not any(h["label"].startswith("Microsoft Teams") for h in hists.values())
    assert rtt["measured_to"] == [{"target": "stun.göteborg.example:3478", "units": 2},
                                  {"target": "stun.stockholm.example:3478", "units": 1}]
    assert [b["severity"] for b in rtt["bounds"]] == ["required"]  # Teams' own bound judges another figure
    html = (tmp_path / "f.html").read_text(encoding="utf-8")
    assert "round trips measured to: <span class=\"name\">stun.göteborg.example:3478</span> (2)" in html
    # meeting-room asks nothing under "Subscriptions", yet its services table is filled: not "nothing measured"
    subs = html.split("<h3>Subscriptions: services and clients</h3>")[1].split("<h4>")[0]
    assert "Nothing measured here" not in subs and "The requirement list asks nothing under this heading." in subs
    services = html.split("<h4>Which services work from each site</h4>")[1].split("<h4>")[0]
    assert "Nothing measured here" not in services and "Microsoft Teams" in services


def _print_checks(page_html: Path) -> dict:
    """The report printed (print media, A4 width): every name on one line, and its CSS."""
    from browser import Chromium

    with Chromium() as b:
        b.navigate(page_html.resolve().as_uri())
        b.call("Emulation.setEmulatedMedia", {"media": "print"})
        b.call("Emulation.setDeviceMetricsOverride", {"width": 703, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        return b.evaluate("""(() => {
            const cells = [...document.querySelectorAll('table.hosts td:nth-child(-n+2), table.sites th, table.sites td:nth-child(2), .name')]
                .filter(e => e.offsetParent !== null && e.textContent.trim());
            const lines = (e) => { const r = document.createRange(); r.selectNodeContents(e);
                return new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top))).size; };
            return {
              styles: [...new Set(cells.map(e => { const s = getComputedStyle(e); return [s.overflowWrap, s.wordBreak, s.hyphens].join(' '); }))],
              // a name of one word (Göteborg, Stockholm) printed on more than one line is broken mid-word
              broken: cells.filter(e => !/\\s/.test(e.textContent.trim()) && lines(e) > 1).map(e => e.textContent.trim()),
              checked: cells.length,
              wide: document.documentElement.scrollWidth,
            };
        })()""")


def test_the_fleet_of_three_rooms_prints_on_at_most_four_a4_pages_with_no_word_broken(cli, tmp_path: Path) -> None:
    from browser import chromium_path, load_page
    from support import need

    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    share = rooms_fleet(tmp_path)
    for lang in ("en", "sv"):
        out = tmp_path / f"fleet-{lang}.html"
        aggregate_rooms(cli, share, out, "--lang", lang)
        page = load_page(out, print_pdf=tmp_path / f"fleet-{lang}.pdf")
        assert page.loaded and page.other_requests == []
        assert page.pdf_pages is not None and 1 <= page.pdf_pages <= 4, (lang, page.pdf_pages)
        seen = _print_checks(out)
        assert seen["checked"] >= 8 and seen["broken"] == [], seen
        assert seen["styles"] == ["normal normal manual"], seen
        assert seen["wide"] <= 703  # nothing wider than the printed page


def test_five_hundred_rooms_print_within_the_page_width_with_headers_on_every_page(cli, tmp_path: Path) -> None:
    from browser import chromium_path, load_page
    from fleet_rooms import room
    from support import need

    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    share = tmp_path / "big"
    share.mkdir()
    sites = ["Göteborg", "Stockholm", "Malmö", "Kiruna", "Umeå"]
    for i in range(500):
        faults = ({"camera.height_px": 480} if i % 5 == 0 else {}) | ({"latency.jitter_ms": 80} if i % 7 == 0 else {})
        write_result(room(f"host-{i:03d}", sites[i % 5], f"Rum {i:03d} vid trappan", faults), share)
    out = tmp_path / "big.html"
    figs = aggregate_rooms(cli, share, out)
    assert figs["tiles"]["total"] == 500
    page = load_page(out, print_pdf=tmp_path / "big.pdf")
    # every one of the 500 rows is printed, about 40 to a page, none wider than the paper
    assert page.pdf_pages is not None and page.pdf_pages <= 25, page.pdf_pages
    seen = _print_checks(out)
    assert seen["broken"] == [] and seen["wide"] <= 703
    html = out.read_text(encoding="utf-8")
    assert len(re.findall(r"<tr>\n    <td>[^<]+</td><td>Rum ", html)) == 500 and "<thead><tr><th>Site</th><th>Room</th><th>Computer" in html


def test_an_actions_advice_stays_when_browser_rows_arrive(cli, tmp_path: Path) -> None:
    from fleet_rooms import room

    before = aggregate_rooms(cli, rooms_fleet(tmp_path / "a"), tmp_path / "a.html")
    browsers = [room(f"b{i}", "Göteborg", f"B{i}", {"camera.fps": 5}, browser=True) for i in range(3)]
    after = aggregate_rooms(cli, rooms_fleet(tmp_path / "b", browsers), tmp_path / "b.html")
    camera = [next(a for a in f["step5"]["actions"] if a["kind"] == "camera") for f in (before, after)]
    assert camera[1]["units"] == 4  # the browser rows are in the action, more of them than agent rows
    fix = "Use a camera that delivers 1920x1080 (1080p); plug it straight into the computer, not through a hub."
    assert camera[0]["fix"] == camera[1]["fix"] == fix
    assert camera[1]["labels"][0].startswith("Camera resolution (1080p")
