"""microphone: record a few seconds from the chosen microphone and describe the signal.

Records at the device's own sample rate (default 2 s) and reports level, peak, noise floor,
clipping runs and DC offset, plus plain-language findings (digital silence, very low level,
clipping) as codes with numbers in ``details["findings"]`` (the words are in the catalogs).
``silent`` is the metric's definition (exact zeros, or a peak below -70 dBFS: nothing a meeting
could use); whether any level is too low or too high is the profile's word alone. With ``--interactive`` it asks the person to speak,
shows a live level meter and reports the speech level (target about -22 dBFS, RFC 7874).

Runs isolated (a killable child process): PortAudio calls can block forever. Nothing heavy is
imported at module level; the analysis lives in ``readiness.measure.audio``, the device I/O in
``readiness.measure.audio_io``. No audio leaves the process unless ``--keep-audio`` is given.
"""

from __future__ import annotations

import os
import socket
import time

from readiness.check import Check, CheckContext, Measurement, Metric, Setting
from readiness.result import safe_file_part
from readiness.measure import audio_devices

SETTLE_S = 0.1  # start of the recording left out of the analysis: converters and drivers settle
SILENT_PEAK_DBFS = -70.0  # below this peak the capture holds nothing a meeting could use
SPEECH_TARGET_DBFS = -22.0  # RFC 7874 section 4: -19 dBm0, about -22 dBFS


class MicrophoneCheck(Check):
    name = "microphone"
    title = "Microphone"
    description = "Records a short stretch from the microphone and measures level, noise, clipping and silence."
    section = "equipment"
    fix = "microphone"
    isolated = True
    resource = "audio"
    order = 0
    budget_s = 15.0
    metrics = (
        Metric("working", "", "The microphone opened and delivered audio", kind="bool"),
        Metric("silent", "", "The recording held no usable signal (exact zeros or nearly so)", kind="bool"),
        Metric("level_dbfs", "dBFS", "RMS level of the recording"),
        Metric("peak_dbfs", "dBFS", "Highest sample of the recording"),
        Metric("noise_floor_dbfs", "dBFS", "Level of the quietest stretches (10th percentile of 20 ms windows)"),
        Metric("clipping_runs", "", "Runs of consecutive full-scale samples (gain too high)"),
        Metric("dc_offset_pct", "%", "Mean of the samples, percent of full scale"),
        Metric("speech_level_dbfs", "dBFS", "Level while the person spoke (--interactive only)"),
    )
    settings = {
        "duration_s": Setting(2.0, "Length of the recording, seconds", float),
        "device": Setting("", "Microphone to use: part of its name or its number; empty = system default", str),
    }

    def run(self, ctx: CheckContext) -> Measurement:
        import numpy as np

        from readiness.measure import audio  # lazy: numpy (plugins load fast)
        from readiness.measure import audio_io  # lazy: numpy, sounddevice

        sd = audio_io.load_sounddevice()
        name = audio_devices.chosen_name(ctx.options, "microphone", ctx.settings.get("device"))
        device = audio_devices.pick_device(sd, "input", name)
        duration = max(0.2, float(ctx.settings.get("duration_s", 2.0)))
        rate = audio_io.device_rate(device)
        details: dict = {
            "device": device["name"],
            "hostapi": device["hostapi"],
            "sound_server_device": device.get("sound_server_device"),  # what "default" routes to
            "sample_rate_hz": rate,
        }

        from readiness.i18n.format import word

        lang = ctx.options.get("lang") or "en"
        terminal = audio_io.Terminal.open() if ctx.options.get("interactive") else None
        if ctx.options.get("interactive") and terminal is None:
            details["interactive"] = "skipped: no terminal to talk to"
        on_block = None
        if terminal is not None:
            terminal.say(word(lang, "interactive.say_sentence", device=device["name"], seconds=duration))

            def on_block(capture) -> None:  # live meter over the latest blocks
                recent = capture.blocks[-5:]
                level = audio.dbfs(audio.rms(np.concatenate(recent))) if recent else audio.DB_FLOOR
                terminal.say("\r  " + audio_io.meter(level), end="")

        ctx.say(f"recording {duration:g} s from {device['name']!r}", step="microphone_recording", seconds=duration,
                device=device["name"])
        try:
            capture = audio_io.record(sd, device, duration, on_block=on_block)
        except BaseException:
            if terminal is not None:
                terminal.close()
            raise
        samples = capture.samples()[int(rate * min(SETTLE_S, duration / 4)):]

        stats = audio.level_stats(samples, rate)
        silent = stats["digital_silence"] or stats["peak_dbfs"] < SILENT_PEAK_DBFS
        metrics = {
            "working": samples.size >= int(rate * (duration - SETTLE_S) * 0.9),
            "silent": bool(silent),
            "level_dbfs": stats["level_dbfs"],
            "peak_dbfs": stats["peak_dbfs"],
            "noise_floor_dbfs": stats["noise_floor_dbfs"],
            "clipping_runs": stats["clipping_runs"],
            "dc_offset_pct": stats["dc_offset_pct"],
        }
        if terminal is not None:
            on_block(capture)  # the meter's last word, also when the driver delivered in one go
            if not silent:
                metrics["speech_level_dbfs"] = speech_level(audio, samples, rate)
                details["speech_target_dbfs"] = SPEECH_TARGET_DBFS
                terminal.say("\n" + word(lang, "interactive.speech_level", level=round(metrics["speech_level_dbfs"], 1),
                                         target=SPEECH_TARGET_DBFS))
            else:
                terminal.say("\n" + word(lang, "interactive.nothing_heard"))
            terminal.close()
        series = audio.level_series(samples, rate, 0.1)
        details.update(
            {
                "duration_s": round(samples.size / rate, 3),
                "digital_silence": stats["digital_silence"],
                "dominant_frequency_hz": stats["dominant_frequency_hz"],
                "overflows": capture.overflows,
                "charts": [{"code": "microphone_level", "title": "Microphone level over the recording", "y_unit": "dBFS", "x_label": "s",
                            "points": [[round(i * 0.1, 1), v] for i, v in enumerate(series)]}],
                "findings": findings(stats, silent),
            }
        )
        if ctx.options.get("keep_audio"):
            folder = ctx.options.get("output_dir") or "."
            # Unique per host and time: many PCs may share one output folder.
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            path = os.path.join(folder, f"readiness-{safe_file_part(socket.gethostname())}-{stamp}-microphone.wav")
            try:
                os.makedirs(folder, exist_ok=True)
                audio_io.write_wav(path, samples, rate)
                details["recording"] = path
            except OSError as exc:
                details["recording_error"] = f"could not save the recording: {exc}"
        return Measurement(metrics=metrics, details=details)


def speech_level(audio, samples, rate: int) -> float:
    """RMS over the 100 ms windows that hold speech (within 20 dB of the loudest window)."""
    import numpy as np

    windows = audio.window_rms(samples, rate, 0.1)
    if not windows.size or windows.max() <= 0:
        return audio.DB_FLOOR
    active = windows[windows >= windows.max() * 0.1]
    return round(audio.dbfs(float(np.sqrt(np.mean(active**2)))), 2)


def findings(stats: dict, silent: bool) -> list[dict]:
    """Facts about the capture that its metrics do not already say (no thresholds of its own)."""
    if stats["digital_silence"]:
        return [{"code": "digital_silence", "args": {}}]
    if silent:
        return [{"code": "mic_peak", "args": {"peak_dbfs": stats["peak_dbfs"]}}]
    return []
