"""The example alerting rules (contrib/prometheus/readiness-rules.yml): Prometheus's own promtool
checks them and runs their unit tests (readiness-rules.test.yml: series fed, the alerts expected
to fire, and not before their time); and every series they name is one the collector's
/metrics really exposes, read from a scrape of a real database. Also: the per-room labels of
/metrics come back as they went in, whatever characters a room's name holds."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import collector_docs as docs
from readiness.collector.fleetdb import FleetView
from readiness.collector.ingest import ingest
from readiness.collector.metrics import Health, exposition
from readiness.collector.store import Store
from support import need

RULES = Path(__file__).resolve().parent.parent / "contrib" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    need(path is not None, "promtool is not installed (Debian package prometheus; tests/run.sh installs it)")
    return path


def test_promtool_checks_the_rules_and_their_unit_tests_fire(promtool):
    checked = subprocess.run([promtool, "check", "rules", "readiness-rules.yml"], cwd=RULES, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS: 3 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "readiness-rules.test.yml"], cwd=RULES, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_a_unit_test_that_expects_the_wrong_alert_fails(promtool, tmp_path):
    """The unit tests can fail: the same file expecting the silent room to alert before its time."""
    text = (RULES / "readiness-rules.test.yml").read_text(encoding="utf-8")
    shutil.copy(RULES / "readiness-rules.yml", tmp_path / "readiness-rules.yml")
    early = text.replace("      - eval_time: 30m\n        alertname: ReadinessRoomNotReporting",
                         "      - eval_time: 21m\n        alertname: ReadinessRoomNotReporting", 1)
    assert early != text
    (tmp_path / "early.test.yml").write_text(early, encoding="utf-8")
    tested = subprocess.run([promtool, "test", "rules", "early.test.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr


def test_every_series_the_rules_name_is_on_metrics_and_room_labels_round_trip(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'readiness.db'}")
    store.migrate()
    odd = 'Rum "4" \\ öst{}=,'  # quotes, a backslash, braces, equals and commas in a room's name
    for d in (docs.document(room=odd, hostname="a"), docs.document(room="2", hostname="b", age=timedelta(days=4)),
              docs.document(room="", hostname="ws1", cores=1)):
        ingest(store, docs.body(d), "Stockholm")
    scraped = exposition(FleetView(store), {"new": 3, "unavailable": 0}, Health(store)).decode()
    store.close()
    fams = {f.name: f for f in text_string_to_metric_families(scraped)}
    names = {s.name for f in fams.values() for s in f.samples}
    rules = (RULES / "readiness-rules.yml").read_text(encoding="utf-8")
    wanted = set(re.findall(r"\b(readiness_[a-z_]+)\b", rules))
    assert wanted and wanted <= names, wanted - names
    state = {(s.labels["room"], s.labels["host"]): (s.value, r.value)
             for s, r in zip(fams["readiness_room_not_reporting"].samples, fams["readiness_room_ready"].samples)}
    assert state == {(odd, ""): (0.0, 1.0), ("2", ""): (1.0, 0.0), ("", "ws1"): (0.0, 0.0)}
