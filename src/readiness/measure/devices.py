"""The device inventory behind ``readiness devices``: microphones, speakers and cameras.

PortAudio reads the device list once, when it initializes, so a headset plugged in after
start would be missed by a long-running process. The inventory therefore enumerates in fresh
child processes (``python -m readiness.measure.devices --audio`` / ``--cameras``), each killed at the
time limit: a driver that hangs costs a line in ``errors``, never a hung command. Audio and
cameras are listed by separate children, so one hanging does not hide the other.

Cheap to import: the CLI imports it lazily, and nothing heavy is imported in the parent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from readiness.measure import audio_devices


def inventory(timeout_s: float = 10) -> dict[str, Any]:
    """Microphones, speakers and cameras of this machine, as JSON-safe dicts.

    Keys: ``microphones`` and ``speakers`` (index, name, hostapi, channels,
    default_samplerate, default), ``cameras`` (as :func:`readiness.measure.cameras.list_cameras`),
    and ``errors`` (plain messages for what could not be listed). On Linux with a sound
    server, ``sound_server_microphones`` / ``sound_server_speakers`` list its sources and
    sinks (name, description, default): PortAudio shows the server as one device, and
    ``--microphone`` / ``--speaker`` also pick these by (part of) their name.
    """
    inv: dict[str, Any] = {"microphones": [], "speakers": [], "cameras": [], "errors": []}
    children = {part: _start(part) for part in ("audio", "cameras")}
    for part, proc in children.items():
        data, error = _collect(proc, timeout_s, part)
        if error:
            inv["errors"].append(error)
            continue
        for key in ("microphones", "speakers", "cameras", "sound_server_microphones", "sound_server_speakers"):
            if key in data:
                inv[key] = data[key]
        inv["errors"].extend(data.get("errors", []))
    return inv


def _start(part: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "readiness.measure.devices", f"--{part}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # ALSA and OpenCV chatter on stderr while probing
    )


def _collect(proc: subprocess.Popen, timeout_s: float, part: str) -> tuple[dict, str | None]:
    what = "audio devices" if part == "audio" else "cameras"
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {}, f"listing {what} took longer than {timeout_s:g} s (a driver is not answering); gave up"
    try:
        return json.loads(out.decode("utf-8", "replace")), None
    except ValueError:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return {}, f"could not list {what}: {last[0]}"


# --------------------------------------------------------------------------- in the child


def list_audio() -> dict[str, Any]:
    """Audio inputs and outputs as PortAudio sees them now (call in a fresh process)."""
    result: dict[str, Any] = {"microphones": [], "speakers": [], "errors": []}
    try:
        import sounddevice as sd
    except (OSError, ImportError) as exc:
        result["errors"].append(f"audio devices cannot be listed: PortAudio/sounddevice is missing ({exc})")
        return result

    try:
        devices = [dict(d) for d in sd.query_devices()]
        hostapis = [dict(h) for h in sd.query_hostapis()]
        default_in, default_out = (
            audio_devices.preferred_default(hostapis, kind, int(x) if x is not None else -1)
            for kind, x in zip(("input", "output"), sd.default.device)
        )
    except Exception as exc:  # PortAudioError and friends: report, do not crash the listing
        result["errors"].append(f"audio devices cannot be listed: {audio_devices.portaudio_message(exc)}")
        return result
    for kind, key, default in (("input", "microphones", default_in), ("output", "speakers", default_out)):
        usable = audio_devices.usable_devices(devices, hostapis, kind)
        chosen = None
        try:
            chosen = audio_devices.select_device(devices, hostapis, kind, None, default)["index"]
        except audio_devices.DeviceNotFound:
            pass
        for entry in usable:
            entry["default"] = entry["index"] == chosen
        result[key] = usable
        result[f"sound_server_{key}"] = _sound_server_entries(kind)
    return result


def _sound_server_entries(kind: str) -> list[dict[str, Any]]:
    """Linux: the PulseAudio/PipeWire sources or sinks behind PortAudio's ``pulse`` device."""

    try:
        return [
            {"name": e["name"], "description": e["description"], "default": bool(e.get("default"))}
            for e in audio_devices.sound_server_devices(kind)
        ]
    except Exception:  # an odd pactl must not hide the PortAudio list
        return []


def list_camera_entries() -> dict[str, Any]:
    """Cameras from :mod:`readiness.measure.cameras` where that module exists."""
    try:
        from readiness.measure import cameras  # lazy: OpenCV
    except ImportError:
        return {"cameras": []}
    try:
        return {"cameras": cameras.list_cameras()}
    except Exception as exc:  # a camera backend failing must not hide the audio devices
        return {"cameras": [], "errors": [f"cameras cannot be listed: {exc}"]}


# --------------------------------------------------------------------------- text


def format_text(inv: dict[str, Any]) -> str:
    """The inventory as the terminal shows it: one line per device, defaults marked."""
    lines: list[str] = []
    for key, title in (("microphones", "Microphones"), ("speakers", "Speakers")):
        lines.append(f"{title}:")
        entries = inv.get(key) or []
        if not entries:
            lines.append("  (none found)")
        for d in entries:
            mark = "*" if d.get("default") else " "
            rate = d.get("default_samplerate")
            rate_text = f", {rate / 1000:g} kHz" if rate else ""
            lines.append(
                f" {mark} [{d.get('index')}] {d.get('name')} ({d.get('hostapi')}, {d.get('channels')} ch{rate_text})"
            )
        server = inv.get(f"sound_server_{key}") or []
        if server:
            lines.append("   through the sound server (choose by name):")
        for e in server:
            lines.append(f"     {e.get('description')} ({e.get('name')})" + ("  [sound server default]" if e.get("default") else ""))
        lines.append("")
    lines.append("Cameras:")
    cams = inv.get("cameras") or []
    if not cams:
        lines.append("  (none found)")
    for c in cams:
        mark = "*" if c.get("default") else " "
        extra = ", ".join(str(c[k]) for k in ("backend", "path") if c.get(k))
        lines.append(f" {mark} [{c.get('index')}] {c.get('name') or 'camera'}" + (f" ({extra})" if extra else ""))
    lines.append("")
    lines.append("* = used unless --microphone / --speaker / --camera names another (part of a name or the number)")
    for err in inv.get("errors") or []:
        lines.append(f"note: {err}")
    return "\n".join(lines)


def _child_main(argv: list[str]) -> int:
    if "--audio" in argv:
        data = list_audio()
    elif "--cameras" in argv:
        data = list_camera_entries()
    else:
        print("usage: python -m readiness.measure.devices --audio | --cameras", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(data, ensure_ascii=False))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
