"""speakers: play a short, quiet test signal and, where a microphone exists, hear it back.

Opens the chosen output at its own sample rate and plays a 500-4000 Hz chirp, reporting
whether the stream opened, underruns and the device's reported latency. With a microphone,
the acoustic loopback: the chirp is recorded through a *separate* input stream, found by
GCC-PHAT cross-correlation, and reported as heard (with the correlation's peak-to-median
ratio), the round-trip latency and the received level. Not heard: one retry 12 dB louder,
then the finding in plain words. ``--no-sound`` plays silence only (a room in use);
``--interactive`` also asks whether the person heard the tone.

Speech quality through the room: once the chirp is heard, a short synthesised sentence
(``readiness/sounds/speech_en.wav``) is played at the same level, recorded the same way and
scored against the original with ViSQOL's speech mode as MOS-LQO (1-5; see
``audio.speech_mos`` for why ViSQOL and not PESQ). Needs the ``speech`` extra
(visqol-python); without it the details say the score was not taken. The recording is
scored in memory and never kept.

Runs isolated (a killable child process); heavy imports only inside :meth:`run`.
"""

from __future__ import annotations

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric, Repeatability, Setting
from readiness.measure import audio_devices

CHIRP_S = 0.3
RETRY_GAIN_DB = 12.0
MAX_PEAK_DBFS = -3.0


class SpeakersCheck(Check):
    name = "speakers"
    title = "Speakers"
    description = "Plays a short test signal and listens for it with the microphone (acoustic loopback)."
    section = "equipment"
    fix = "speakers"
    isolated = True
    resource = "audio"
    order = 1
    budget_s = 25.0
    metrics = (
        Metric("playback_ok", "", "The output opened and played the test signal without error, and a person "
                                  "asked (--interactive) did not say they heard nothing", kind="bool"),
        Metric("underruns", "", "Times the output ran dry while playing"),
        Metric("output_latency_ms", "ms", "Output latency reported by the driver"),
        Metric("heard", "", "The microphone picked up the test signal", kind="bool"),
        Metric("loopback_latency_ms", "ms", "Round trip: signal handed to the speaker until the microphone delivered it"),
        Metric("loopback_peak_ratio", "", "Cross-correlation peak over its median (how clearly it was heard)"),
        Metric("received_level_dbfs", "dBFS", "Level of the test signal as recorded by the microphone"),
        Metric("heard_by_person", "", "The person said they heard the tone (--interactive only)", kind="bool"),
        Metric("speech_mos", "", "Speech quality through the room: MOS-LQO, ViSQOL speech mode (1-5)",
               repeatability=Repeatability(0.0, 0.1, "bench/audio.py section 4: the room's score beside the same degradation in numbers")),
    )
    settings = {
        "device": Setting("", "Speaker to use: part of its name or its number; empty = system default", str),
        "microphone": Setting("", "Microphone for the loopback (part of its name or its number); empty = --microphone or the system default", str),
        "level_dbfs": Setting(-20.0, "Peak level of the test signal (quiet by default)", float),
        "loopback": Setting(True, "Listen for the test signal with the microphone", bool),
        "speech_quality": Setting(True, "After the loopback, play a short sentence and score how well the "
                                        "microphone heard it (ViSQOL; needs readiness[speech])", bool),
    }

    def run(self, ctx: CheckContext) -> Measurement:
        from readiness.measure import audio  # lazy: numpy (plugins load fast)
        from readiness.measure import audio_io  # lazy: numpy, sounddevice

        sd = audio_io.load_sounddevice()
        name = audio_devices.chosen_name(ctx.options, "speaker", ctx.settings.get("device"))
        out_dev = audio_devices.pick_device(sd, "output", name)
        out_rate = audio_io.device_rate(out_dev)
        details: dict = {
            "device": out_dev["name"],
            "hostapi": out_dev["hostapi"],
            "sound_server_device": out_dev.get("sound_server_device"),  # what "default" routes to
            "sample_rate_hz": out_rate,
        }
        metrics: dict = {}
        findings: list[dict] = []
        details["findings"] = findings
        level = min(MAX_PEAK_DBFS, float(ctx.settings.get("level_dbfs", -20.0)))
        signal = audio.chirp(out_rate, CHIRP_S)

        if ctx.options.get("no_sound"):
            ctx.say(f"opening {out_dev['name']!r} without sound (--no-sound)", step="speakers_no_sound",
                    device=out_dev["name"])
            playback = audio_io.play(sd, out_dev, signal * 0.0, out_rate)
            _playback_metrics(metrics, playback)
            details["sound"] = "none played (--no-sound); loopback skipped"
            return Measurement(metrics=metrics, details=details)

        in_dev = None
        if ctx.settings.get("loopback", True):
            mic_name = audio_devices.chosen_name(ctx.options, "microphone", ctx.settings.get("microphone"))
            try:
                in_dev = audio_devices.pick_device(sd, "input", mic_name)
            except CheckError as exc:
                details["loopback"] = f"skipped: {exc}"
                findings.append({"code": "loopback_no_microphone", "args": {}})

        if in_dev is None:
            ctx.say(f"playing a test tone on {out_dev['name']!r}", step="speakers_tone", device=out_dev["name"])
            playback = audio_io.play(sd, out_dev, signal * _gain(level), out_rate)
            _playback_metrics(metrics, playback)
        else:
            details["microphone"] = in_dev["name"]
            attempts = []
            for attempt_level in (level, min(MAX_PEAK_DBFS, level + RETRY_GAIN_DB)):
                ctx.say(f"loopback: {out_dev['name']!r} -> {in_dev['name']!r} at {attempt_level:g} dBFS",
                        step="speakers_loopback", speaker=out_dev["name"], microphone=in_dev["name"], level=attempt_level)
                result = listen(sd, audio, audio_io, out_dev, in_dev, signal, out_rate, attempt_level)
                attempts.append(result)
                if result["heard"]:
                    break
            details["attempts"] = [{k: v for k, v in a.items() if k != "playback"} for a in attempts]
            final = attempts[-1]
            _playback_metrics(metrics, final["playback"])
            metrics["heard"] = final["heard"]
            metrics["loopback_peak_ratio"] = final["peak_ratio"]
            if final["heard"]:
                metrics["loopback_latency_ms"] = final["latency_ms"]
                metrics["received_level_dbfs"] = final["received_level_dbfs"]
                if ctx.settings.get("speech_quality", True):
                    ctx.say("speech quality: playing a short sentence", step="speakers_speech")
                    _speech_quality(sd, audio, audio_io, out_dev, in_dev, out_rate, final["level_dbfs"],
                                    metrics, details)
            else:
                findings.append({"code": "loopback_not_heard", "args": {"microphone": in_dev["name"], "db": f"{RETRY_GAIN_DB:g}"}})
        if metrics.get("underruns"):
            findings.append({"code": "speaker_underruns", "args": {"count": metrics["underruns"]}})

        if ctx.options.get("interactive"):
            _ask_person(audio, audio_io, sd, out_dev, out_rate, level, metrics, details, ctx.options.get("lang") or "en")
        return Measurement(metrics=metrics, details=details)


def _gain(level_dbfs: float) -> float:
    return 10 ** (level_dbfs / 20.0)


def _playback_metrics(metrics: dict, playback) -> None:
    metrics["playback_ok"] = bool(playback.opened and playback.start_time is not None)
    metrics["underruns"] = playback.underruns
    if playback.latency_s is not None:
        metrics["output_latency_ms"] = round(playback.latency_s * 1000.0, 1)


def listen(sd, audio, audio_io, out_dev: dict, in_dev: dict, signal, out_rate: int, level_dbfs: float) -> dict:
    """One loopback attempt: play the chirp at ``level_dbfs`` peak and look for it."""
    lb = audio_io.loopback(sd, out_dev, in_dev, signal * _gain(level_dbfs), out_rate)
    reference = audio.chirp(lb.input_rate, CHIRP_S)  # same sweep, at the microphone's rate
    lag, ratio = audio.gcc_phat(lb.recording, reference, lb.input_rate)
    heard = ratio >= audio.HEARD_PEAK_TO_MEDIAN
    result = {
        "level_dbfs": level_dbfs,
        "heard": bool(heard),
        "peak_ratio": round(ratio, 1),
        "playback": lb.playback,
        "underruns": lb.playback.underruns,
    }
    if heard:
        segment = lb.recording[lag : lag + reference.size]
        result["received_level_dbfs"] = round(audio.dbfs(audio.rms(segment)), 2)
        if lb.mark_index is not None:
            result["latency_ms"] = round((lag - lb.mark_index) / lb.input_rate * 1000.0, 1)
    return result


def _speech_quality(sd, audio, audio_io, out_dev: dict, in_dev: dict, out_rate: int, level_dbfs: float,
                    metrics: dict, details: dict) -> None:
    """Play the speech sample through the loopback and score the recording (MOS-LQO)."""
    import importlib.util

    if importlib.util.find_spec("visqol") is None:
        details["speech_quality"] = {"not_scored": "the speech-quality model is not installed "
                                                   "(pip install 'readiness[speech]')"}
        details["findings"].append({"code": "speech_model_missing", "args": {}})
        return
    ref, ref_rate = audio.speech_reference()
    played = audio.resample(ref, ref_rate, out_rate)
    played = played / max(1e-9, float(abs(played).max())) * _gain(level_dbfs)
    lb = audio_io.loopback(sd, out_dev, in_dev, played, out_rate)
    reference = audio.resample(ref, ref_rate, lb.input_rate)
    scored = audio.speech_mos(reference, lb.recording, lb.input_rate)
    metrics["speech_mos"] = scored["mos_lqo"]
    details["speech_quality"] = scored | {"sample": "speech_en.wav, synthesised English sentence, 2.7 s",
                                          "level_dbfs": level_dbfs}


def _ask_person(audio, audio_io, sd, out_dev: dict, out_rate: int, level: float, metrics: dict, details: dict,
                lang: str = "en") -> None:
    from readiness.i18n.format import word

    terminal = audio_io.Terminal.open()
    if terminal is None:
        details["interactive"] = "skipped: no terminal to talk to"
        return
    try:
        terminal.say(word(lang, "interactive.tone_now", device=out_dev["name"]))
        audio_io.play(sd, out_dev, audio.tone(out_rate, 1000.0, 1.0, _gain(level)), out_rate)
        answer = terminal.ask(word(lang, "interactive.heard_question"))
    finally:
        terminal.close()
    if answer is None or answer[:1].lower() not in ("y", "n", "j"):
        details["interactive"] = "no answer"
        return
    metrics["heard_by_person"] = answer[:1].lower() in ("y", "j")
    if not metrics["heard_by_person"]:
        # A person who heard nothing outranks a stream that opened: no sound came out that anyone
        # heard, so the speakers did not play sound. The finding names the cause for the report.
        metrics["playback_ok"] = False
        details["findings"].append({"code": "person_did_not_hear", "args": {"device": out_dev["name"]}})
