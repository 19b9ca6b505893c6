"""readiness.measure.devices: the inventory from fresh child processes (a device added after start is
seen), defaults marked, the time limit, the text form, and `readiness devices` itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pulse import pulse  # noqa: F401 - fixture
from readiness.measure import devices

pytestmark = pytest.mark.audio

HEADSET_ASOUNDRC = """
pcm.readiness_headset {
    type null
    hint { show on description "Readiness test headset" }
}
"""


def test_inventory_lists_the_sound_server_devices_with_defaults(pulse):
    pulse.route(source="sine", sink="spk")
    inv = devices.inventory(timeout_s=20)
    assert set(inv) >= {"microphones", "speakers", "cameras", "errors"}
    for key in ("microphones", "speakers"):
        names = [d["name"] for d in inv[key]]
        assert "default" in names and "pulse" in names
        defaults = [d for d in inv[key] if d["default"]]
        assert len(defaults) == 1 and defaults[0]["name"] == "default"
        assert all(d["channels"] > 0 and d["default_samplerate"] for d in inv[key])
    assert not [e for e in inv["errors"] if "audio" in e]
    sources = {e["name"]: e for e in inv["sound_server_microphones"]}
    assert sources["sine"]["description"] == "Sine source at 1000 Hz"
    assert [e["name"] for e in inv["sound_server_speakers"] if e["default"]] == ["spk"]
    assert "through the sound server" in devices.format_text(inv)
    json.dumps(inv)


def test_a_device_added_after_start_is_seen(pulse, monkeypatch, tmp_path):
    # ALSA reads ~/.asoundrc when PortAudio initializes: a new PCM there is a device "plugged in".
    monkeypatch.setenv("HOME", str(tmp_path))
    before = devices.inventory(timeout_s=20)
    assert "readiness_headset" not in [d["name"] for d in before["microphones"]]
    (tmp_path / ".asoundrc").write_text(HEADSET_ASOUNDRC)
    after = devices.inventory(timeout_s=20)
    assert "readiness_headset" in [d["name"] for d in after["microphones"]]
    assert "readiness_headset" in [d["name"] for d in after["speakers"]]


def test_a_listing_that_takes_too_long_is_given_up():
    inv = devices.inventory(timeout_s=0.01)  # no child starts Python that fast
    assert inv["microphones"] == [] and inv["speakers"] == []
    assert any("took longer" in e for e in inv["errors"])


def test_text_form_marks_defaults_and_shows_cameras():
    inv = {
        "microphones": [{"index": 3, "name": "Jabra SPEAK 510", "hostapi": "Windows WASAPI", "channels": 1, "default_samplerate": 16000.0, "default": True}],
        "speakers": [],
        "cameras": [{"index": 0, "name": "Logitech BRIO", "backend": "MSMF", "default": True}],
        "errors": ["cameras cannot be listed: example"],
    }
    text = devices.format_text(inv)
    assert " * [3] Jabra SPEAK 510 (Windows WASAPI, 1 ch, 16 kHz)" in text
    assert "Speakers:\n  (none found)" in text
    assert " * [0] Logitech BRIO (MSMF)" in text
    assert "note: cameras cannot be listed: example" in text


def test_cli_devices_json_and_text(pulse):
    out = subprocess.run(
        [sys.executable, "-m", "readiness.cli", "devices", "--json"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-500:]
    inv = json.loads(out.stdout)
    assert any(d["name"] == "default" and d["default"] for d in inv["microphones"])
    text = subprocess.run(
        [sys.executable, "-m", "readiness.cli", "devices"], capture_output=True, text=True, timeout=60
    )
    assert text.returncode == 0 and "Microphones:" in text.stdout and "Traceback" not in text.stderr
