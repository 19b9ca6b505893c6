"""Which audio device: the system's list (PortAudio's plain dicts), the default, a device named
by (part of) its name or number, the sound server's sources and sinks (PulseAudio/PipeWire), and
what PortAudio's errors mean in plain words.

One home for device choice: the microphone and speakers checks (through ``audio_io``), and the
inventory ``readiness devices`` (``devices``), choose here. Nothing here opens a stream or needs
numpy, so all of it is testable without sound hardware.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

from readiness.check import CheckError


_HOSTAPI_PREFERENCE = {
    "win32": ("Windows WASAPI", "Windows DirectSound", "MME", "Windows WDM-KS", "ASIO"),
    "darwin": ("Core Audio",),
    "linux": ("ALSA", "JACK Audio Connection Kit", "OSS"),
}
# On Linux the sound server's devices mix and route; raw hw: devices are often busy.
_SOUND_SERVER_NAMES = ("pipewire", "pulse", "default", "sysdefault")


def platform_key(platform: str | None = None) -> str:
    p = platform or sys.platform
    if p.startswith("win"):
        return "win32"
    if p == "darwin":
        return "darwin"
    return "linux"


def _channels_key(kind: str) -> str:
    if kind not in ("input", "output"):
        raise ValueError("kind must be 'input' or 'output'")
    return "max_input_channels" if kind == "input" else "max_output_channels"


def _rank(device: dict, hostapi_name: str, platform: str) -> tuple[int, int]:
    """Sort key: lower is preferred (host API first, then sound server over raw hw:)."""
    order = _HOSTAPI_PREFERENCE.get(platform, ())
    api_rank = order.index(hostapi_name) if hostapi_name in order else len(order)
    name = str(device.get("name", "")).lower()
    if platform == "linux":
        if name in _SOUND_SERVER_NAMES or name.startswith(("pipewire", "pulse")):
            server_rank = 0
        elif "(hw:" in name or name.startswith("hw:"):
            server_rank = 2
        else:
            server_rank = 1
    else:
        server_rank = 0
    return api_rank, server_rank


def _same_device(a: str, b: str) -> bool:
    """Names of one physical device under two host APIs (MME cuts names at ~31 characters)."""
    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 28 and long_.startswith(short)


def usable_devices(
    devices: Iterable[dict], hostapis: list[dict], kind: str, platform: str | None = None
) -> list[dict]:
    """Devices of ``kind`` ("input"/"output"), one entry per physical device, best first.

    Each entry is a JSON-safe dict: index, name, hostapi, channels, default_samplerate.
    On Windows a device listed by several host APIs is kept once, under the preferred API.
    """
    plat = platform_key(platform)
    key = _channels_key(kind)
    candidates = []
    for index, dev in enumerate(devices):
        if int(dev.get(key, 0) or 0) <= 0:
            continue
        api = hostapis[dev["hostapi"]]["name"] if 0 <= dev.get("hostapi", -1) < len(hostapis) else "?"
        idx = int(dev.get("index", index))
        candidates.append((_rank(dev, api, plat), idx, dev, api))
    candidates.sort(key=lambda c: (c[0], c[1]))
    kept: list[dict] = []
    for _, idx, dev, api in candidates:
        name = str(dev.get("name", ""))
        if plat == "win32" and any(_same_device(name, k["name"]) for k in kept):
            continue
        kept.append(
            {
                "index": idx,
                "name": name,
                "hostapi": api,
                "channels": int(dev.get(key, 0)),
                "default_samplerate": float(dev.get("default_samplerate") or 0) or None,
            }
        )
    return kept


def preferred_default(hostapis: list[dict], kind: str, fallback: int = -1, platform: str | None = None) -> int:
    """The system default device as seen through the preferred host API (WASAPI on Windows).

    PortAudio's own default is the default host API's (MME on Windows), whose "Sound Mapper"
    hides which device it is and truncates names.
    """
    key = "default_input_device" if kind == "input" else "default_output_device"
    by_name = {str(h.get("name")): h for h in hostapis}
    for api_name in _HOSTAPI_PREFERENCE.get(platform_key(platform), ()):
        api = by_name.get(api_name)
        if api is not None and int(api.get(key, -1)) >= 0:
            return int(api[key])
    if fallback >= 0:
        return fallback
    for api in hostapis:
        if int(api.get(key, -1)) >= 0:
            return int(api[key])
    return -1


class DeviceNotFound(LookupError):
    """No device of the wanted kind, or none matching the name given; message is plain.
    ``code`` names the fact for the catalogs when there is no device at all."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def select_device(
    devices: list[dict],
    hostapis: list[dict],
    kind: str,
    name_part: str | int | None = None,
    default_index: int | None = None,
    platform: str | None = None,
) -> dict:
    """Pick a device by (part of) its name, by index, or the system default.

    Raises :class:`DeviceNotFound` with a message listing the devices that do exist.
    """
    usable = usable_devices(devices, hostapis, kind, platform)
    word = "microphone" if kind == "input" else "speaker"
    if not usable:
        raise DeviceNotFound(f"no {word} found: the system lists no audio {kind} device", f"no_{word}_found")
    listing = "; ".join(f"{d['name']} ({d['hostapi']})" for d in usable)
    if name_part is None or str(name_part).strip() == "":
        if default_index is not None and default_index >= 0:
            for d in usable:
                if d["index"] == default_index:
                    return d
            # The default may have been dropped as a duplicate: take its preferred twin.
            dev = devices[default_index] if default_index < len(devices) else {}
            for d in usable:
                if _same_device(d["name"], str(dev.get("name", ""))):
                    return d
        return usable[0]
    text = str(name_part).strip()
    if text.isdigit():
        for d in usable:
            if d["index"] == int(text):
                return d
        raise DeviceNotFound(f"no {word} with number {text}; the {word}s are: {listing}")
    matches = [d for d in usable if text.lower() in d["name"].lower()]
    if not matches:
        raise DeviceNotFound(f"no {word} named like {text!r}; the {word}s are: {listing}")
    return matches[0]  # usable is sorted best first


def parse_pactl(text: str) -> list[dict]:
    """Sources or sinks from ``pactl -f json list sources|sinks`` (or ``pactl list short ...``).

    On Linux desktops PortAudio sees only the sound server as one device (``pulse``,
    ``default``); the real microphones and speakers behind it are PulseAudio's (or
    PipeWire's) sources and sinks. Returns dicts with ``name`` and ``description``.
    """
    import json

    text = text.strip()
    if text.startswith("["):
        try:
            rows = json.loads(text)
        except ValueError:
            return []
        return [
            {"name": str(r.get("name", "")), "description": str(r.get("description") or r.get("name", ""))}
            for r in rows
            if isinstance(r, dict) and r.get("name")
        ]
    found = []
    for line in text.splitlines():  # short form: index, name, driver, sample spec, state
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1]:
            found.append({"name": parts[1], "description": parts[1]})
    return found


def match_by_name(entries: list[dict], name_part: str) -> dict | None:
    """The first entry whose name or description contains ``name_part`` (case-insensitive)."""
    text = name_part.strip().lower()
    for entry in entries:
        if text in entry["name"].lower() or text in entry.get("description", "").lower():
            return entry
    return None


# --------------------------------------------------------------------------- errors

_PORTAUDIO_MESSAGES = {
    -9999: "the audio driver reported an error",
    -9998: "the device does not support that number of channels",
    -9997: "the device does not support its sample rate in this mode (try another host API)",
    -9996: "the audio device is not available (unplugged, or the sample rate does not match the device's own)",
    -9993: "input and output devices cannot be used together in one stream (different drivers)",
    -9987: "the audio driver timed out",
    -9986: "internal error in the audio driver",
    -9985: (
        "the audio device is unavailable: it is in use by another program, or access is blocked "
        "(Windows: Settings > Privacy > Microphone; macOS: System Settings > Privacy & Security > Microphone)"
    ),
    -9981: "input overflowed (the computer was too busy to collect the audio in time)",
    -9980: "output underflowed (the computer was too busy to feed the speaker in time)",
    -10000: "the audio system is not initialized",
}


def portaudio_message(exc: BaseException) -> str:
    """A plain-language message for a PortAudio (sounddevice) error."""
    code = None
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, int):
            code = arg
    text = str(exc.args[0]) if getattr(exc, "args", None) else str(exc)
    if code is None:
        for known in _PORTAUDIO_MESSAGES:
            if f"[PaErrorCode {known}]" in text:
                code = known
    plain = _PORTAUDIO_MESSAGES.get(code) if code is not None else None
    if plain:
        return f"{plain} (PortAudio {code}: {text})"
    return f"audio error: {text}"


def pick_device(sd: Any, kind: str, name: str | int | None) -> dict:
    """The device to use: by (part of) name or number, else the system default.

    On Linux a name that no PortAudio device carries is looked up among the sound server's
    sources/sinks (``pactl``); the stream then opens PortAudio's ``pulse`` device routed to it.
    """
    try:
        devices = [dict(d) for d in sd.query_devices()]
        hostapis = [dict(h) for h in sd.query_hostapis()]
    except sd.PortAudioError as exc:
        raise CheckError(portaudio_message(exc)) from None
    default = sd.default.device[0 if kind == "input" else 1]
    try:
        default_index = int(default) if default is not None else -1
    except (TypeError, ValueError):
        default_index = -1
    default_index = preferred_default(hostapis, kind, default_index)
    try:
        chosen = select_device(devices, hostapis, kind, name, default_index)
        if chosen["name"].lower() in ("default", "pulse", "pipewire", "sysdefault"):
            # Say which real device the sound server routes to (the report names it).
            target = next((e for e in sound_server_devices(kind) if e.get("default")), None)
            if target is not None:
                chosen["sound_server_device"] = f"{target['description']} ({target['name']})"
        return chosen
    except DeviceNotFound as exc:
        routed = _sound_server_device(devices, hostapis, kind, name)
        if routed is not None:
            return routed
        server = sound_server_devices(kind) if name is not None else []
        extra = ""
        if server:
            what = "sources" if kind == "input" else "sinks"
            extra = f"; sound server {what}: " + "; ".join(f"{e['description']} ({e['name']})" for e in server)
        raise CheckError(str(exc) + extra, code=None if extra else exc.code) from None


def sound_server_devices(kind: str) -> list[dict]:
    """PulseAudio/PipeWire sources (``input``) or sinks (``output``); [] where there is none."""
    import shutil
    import subprocess
    import sys

    if not sys.platform.startswith("linux") or not shutil.which("pactl"):
        return []
    import os

    what = "sources" if kind == "input" else "sinks"
    env = dict(os.environ, LC_ALL="C")  # pactl translates its text output
    entries: list[dict] = []
    for args in (["pactl", "-f", "json", "list", what], ["pactl", "list", "short", what]):
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=3, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return []
        if out.returncode == 0:
            entries = parse_pactl(out.stdout)
            break
    if not entries:
        return []
    try:
        info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=3, env=env).stdout
    except (OSError, subprocess.TimeoutExpired):
        info = ""
    label = "Default Source: " if kind == "input" else "Default Sink: "
    default = next((line[len(label):].strip() for line in info.splitlines() if line.startswith(label)), None)
    for entry in entries:
        entry["default"] = entry["name"] == default
    if kind == "input":  # a monitor hears what a sink plays: not a microphone by default
        entries.sort(key=lambda e: e["name"].endswith(".monitor"))
    return entries


def _sound_server_device(devices: list[dict], hostapis: list[dict], kind: str, name: Any) -> dict | None:
    if name is None or str(name).strip().isdigit():
        return None
    entry = match_by_name(sound_server_devices(kind), str(name))
    if entry is None:
        return None
    try:
        base = select_device(devices, hostapis, kind, "pulse")
    except DeviceNotFound:
        return None
    return dict(base, name=f"{entry['description']} ({entry['name']})", pulse_name=entry["name"])


class routed:
    """While a stream opens, point ALSA's pulse plugin at the chosen source/sink by name."""

    def __init__(self, device: dict, kind: str) -> None:
        self.name = device.get("pulse_name")
        self.var = "PULSE_SOURCE" if kind == "input" else "PULSE_SINK"

    def __enter__(self) -> None:
        import os

        if self.name:
            self.saved = os.environ.get(self.var)
            os.environ[self.var] = self.name

    def __exit__(self, *exc: Any) -> None:
        import os

        if self.name:
            if self.saved is None:
                os.environ.pop(self.var, None)
            else:
                os.environ[self.var] = self.saved


def chosen_name(ctx_options: dict, option: str, setting_value: Any) -> str | None:
    """``--microphone``/``--speaker`` wins over the profile's ``device`` setting."""
    for value in (ctx_options.get(option), setting_value):
        if value is not None and str(value).strip() != "":
            return str(value).strip()
    return None
