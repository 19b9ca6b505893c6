"""readiness.measure.audio: the analysis on signals with known answers, device choice on device lists
shaped like PortAudio's on Windows and Linux, and PortAudio errors in plain words."""

from __future__ import annotations

import math

import numpy as np
import pytest

from readiness.measure import audio, audio_devices

RATE = 48000


def sine(freq: float, amplitude: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def test_levels_of_a_known_sine():
    stats = audio.level_stats(sine(440.0, 0.5), RATE)
    assert stats["level_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)
    assert stats["peak_dbfs"] == pytest.approx(-6.02, abs=0.05)
    assert stats["dominant_frequency_hz"] == pytest.approx(440.0, abs=0.5)
    assert stats["clipping_runs"] == 0
    assert stats["digital_silence"] is False


def test_digital_silence_is_floored_not_infinite():
    stats = audio.level_stats(np.zeros(RATE), RATE)
    assert stats["digital_silence"] is True
    assert stats["level_dbfs"] == audio.DB_FLOOR
    assert stats["dominant_frequency_hz"] is None


def test_clipping_counts_runs_not_single_peaks():
    clipped = np.clip(sine(100.0, 2.0), -1.0, 1.0)  # flat tops: 100 Hz at 48 kHz, many samples each
    assert audio.clipping_runs(clipped, RATE) == 200  # one top and one bottom per period
    assert audio.clipping_runs(sine(100.0, 1.0), RATE) == 0  # touches full scale once per peak


def test_noise_floor_finds_the_quiet_stretch():
    rng = np.random.default_rng(1)
    quiet = rng.normal(0, 0.001, RATE)  # -60 dBFS
    loud = rng.normal(0, 0.1, RATE)  # -20 dBFS
    assert audio.noise_floor_dbfs(np.concatenate([quiet, loud]), RATE) == pytest.approx(-60, abs=1.5)


def test_dc_offset_in_percent():
    assert audio.level_stats(sine(440.0, 0.3) + 0.02, RATE)["dc_offset_pct"] == pytest.approx(2.0, abs=0.01)


def test_burst_and_chirp_stay_in_band():
    for signal in (audio.band_limited_burst(RATE), audio.chirp(RATE)):
        spectrum = np.abs(np.fft.rfft(signal)) ** 2
        freqs = np.fft.rfftfreq(signal.size, 1 / RATE)
        inside = spectrum[(freqs >= 400) & (freqs <= 4200)].sum()
        assert inside / spectrum.sum() > 0.99
        assert np.max(np.abs(signal)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("make", [audio.chirp, audio.band_limited_burst])
def test_gcc_phat_finds_a_delay_in_noise_and_echo(make):
    rng = np.random.default_rng(3)
    ref = make(RATE)
    recording = rng.normal(0, 0.01, RATE)
    delay = 12345
    recording[delay : delay + ref.size] += 0.05 * ref  # about -30 dBFS under -40 dBFS noise
    recording[delay + 2400 : delay + 2400 + ref.size] += 0.02 * ref  # an echo 50 ms later
    lag, ratio = audio.gcc_phat(recording, ref, RATE)
    assert lag == delay
    assert ratio > 50


def test_gcc_phat_on_noise_alone_is_not_heard():
    rng = np.random.default_rng(4)
    lag, ratio = audio.gcc_phat(rng.normal(0, 0.1, RATE), audio.chirp(RATE), RATE)
    assert ratio < audio.HEARD_PEAK_TO_MEDIAN
    assert audio.gcc_phat(np.zeros(RATE), audio.chirp(RATE), RATE) == (0, 0.0)


# Device lists shaped like PortAudio's: one physical headset under four Windows host APIs.
WIN_APIS = [
    {"name": "MME", "default_input_device": 0, "default_output_device": -1},
    {"name": "Windows DirectSound", "default_input_device": 2, "default_output_device": -1},
    {"name": "Windows WASAPI", "default_input_device": 3, "default_output_device": 5},
    {"name": "Windows WDM-KS", "default_input_device": 4, "default_output_device": -1},
]
WIN_DEVICES = [
    {"name": "Microsoft Sound Mapper - Input", "hostapi": 0, "max_input_channels": 2, "max_output_channels": 0, "default_samplerate": 44100.0},
    {"name": "Microphone (Jabra SPEAK 510 USB", "hostapi": 0, "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 44100.0},
    {"name": "Microphone (Jabra SPEAK 510 USB)", "hostapi": 1, "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 44100.0},
    {"name": "Microphone (Jabra SPEAK 510 USB)", "hostapi": 2, "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 16000.0},
    {"name": "Microphone (Jabra SPEAK 510 USB)", "hostapi": 3, "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 16000.0},
    {"name": "Speakers (Jabra SPEAK 510 USB)", "hostapi": 2, "max_input_channels": 0, "max_output_channels": 2, "default_samplerate": 48000.0},
]
LINUX_APIS = [{"name": "ALSA"}]
LINUX_DEVICES = [
    {"name": "HDA Intel PCH: ALC257 Analog (hw:0,0)", "hostapi": 0, "max_input_channels": 2, "max_output_channels": 2, "default_samplerate": 44100.0},
    {"name": "Jabra SPEAK 510 USB: Audio (hw:1,0)", "hostapi": 0, "max_input_channels": 1, "max_output_channels": 2, "default_samplerate": 16000.0},
    {"name": "pulse", "hostapi": 0, "max_input_channels": 32, "max_output_channels": 32, "default_samplerate": 44100.0},
    {"name": "default", "hostapi": 0, "max_input_channels": 32, "max_output_channels": 32, "default_samplerate": 44100.0},
]


def test_windows_lists_a_device_once_preferring_wasapi():
    mics = audio_devices.usable_devices(WIN_DEVICES, WIN_APIS, "input", platform="win32")
    jabra = [d for d in mics if "Jabra" in d["name"]]
    assert len(jabra) == 1
    assert jabra[0]["hostapi"] == "Windows WASAPI"
    assert jabra[0]["default_samplerate"] == 16000.0  # the device's own rate, as WASAPI needs
    chosen = audio_devices.select_device(WIN_DEVICES, WIN_APIS, "input", "jabra", platform="win32")
    assert chosen["index"] == 3


def test_windows_default_under_mme_maps_to_its_wasapi_twin():
    chosen = audio_devices.select_device(WIN_DEVICES, WIN_APIS, "input", None, default_index=1, platform="win32")
    assert (chosen["index"], chosen["hostapi"]) == (3, "Windows WASAPI")


def test_linux_prefers_the_sound_server_over_raw_hw():
    mics = audio_devices.usable_devices(LINUX_DEVICES, LINUX_APIS, "input", platform="linux")
    assert [d["name"] for d in mics][:2] == ["pulse", "default"]
    assert "(hw:" in mics[-1]["name"]
    assert audio_devices.select_device(LINUX_DEVICES, LINUX_APIS, "output", "jabra", platform="linux")["index"] == 1


def test_unknown_name_lists_the_real_devices():
    with pytest.raises(audio_devices.DeviceNotFound) as err:
        audio_devices.select_device(LINUX_DEVICES, LINUX_APIS, "input", "Polycom", platform="linux")
    message = str(err.value)
    assert "Polycom" in message and "pulse" in message and "Jabra SPEAK 510 USB" in message


def test_no_device_at_all():
    with pytest.raises(audio_devices.DeviceNotFound, match="no speaker found"):
        audio_devices.select_device(WIN_DEVICES[:5], WIN_APIS, "output", None, platform="win32")


def test_portaudio_codes_become_plain_messages():
    class FakePortAudioError(Exception):  # the shape sounddevice raises: (text, code)
        pass

    busy = audio_devices.portaudio_message(FakePortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]", -9985))
    assert "in use by another program" in busy and "Privacy" in busy
    assert "sample rate" in audio_devices.portaudio_message(FakePortAudioError("Invalid device [PaErrorCode -9996]"))
    assert "together" in audio_devices.portaudio_message(FakePortAudioError("x", -9993))


def test_sound_server_lists_in_both_pactl_forms():
    as_json = '[{"index":0,"name":"alsa_input.usb-Jabra_SPEAK_510","description":"Jabra SPEAK 510 Mono"},{"index":1,"name":"spk.monitor","description":"Monitor of Null Output"}]'
    short = "0\talsa_input.usb-Jabra_SPEAK_510\tmodule-alsa-card.c\ts16le 1ch 16000Hz\tSUSPENDED\n1\tspk.monitor\tmodule-null-sink.c\ts16le 2ch 48000Hz\tIDLE\n"
    full = audio_devices.parse_pactl(as_json)
    assert full[0] == {"name": "alsa_input.usb-Jabra_SPEAK_510", "description": "Jabra SPEAK 510 Mono"}
    assert [e["name"] for e in audio_devices.parse_pactl(short)] == [e["name"] for e in full]
    assert audio_devices.match_by_name(full, "speak 510")["name"] == "alsa_input.usb-Jabra_SPEAK_510"
    assert audio_devices.match_by_name(full, "monitor")["name"] == "spk.monitor"
    assert audio_devices.match_by_name(full, "Polycom") is None
    assert audio_devices.parse_pactl("not json [") == [] and audio_devices.parse_pactl("") == []


def test_windows_default_is_taken_from_wasapi_not_the_mme_sound_mapper():
    default = audio_devices.preferred_default(WIN_APIS, "input", fallback=0, platform="win32")
    chosen = audio_devices.select_device(WIN_DEVICES, WIN_APIS, "input", None, default_index=default, platform="win32")
    assert (chosen["name"], chosen["hostapi"]) == ("Microphone (Jabra SPEAK 510 USB)", "Windows WASAPI")
    assert audio_devices.preferred_default(LINUX_APIS, "input", fallback=3, platform="linux") == 3
