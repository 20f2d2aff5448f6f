"""Audio sources behind one interface: raw PCM on a pipe, files (paced or not), and the microphone adapter
driven by a fake PortAudio (sounddevice) that plays recorded speech, loses its device and gets it back."""

import builtins
import logging
import os
import threading

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from edge_meta.audio import read_audio
from edge_meta.device.sources import Microphone, StdinSource, WavSource, _Decimator
from edge_meta.errors import AudioError


def test_stdin_pcm_is_read_whatever_the_pipe_delivers(fsdd_dir):
    x = read_audio(fsdd_dir / "recordings" / "3_theo_0.wav", announce=False)
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2").tobytes()
    r, w = os.pipe()
    with os.fdopen(r, "rb", buffering=0) as reader:
        source = StdinSource(reader, poll_s=0.01)
        chunks = source.chunks()
        assert len(next(chunks)) == 0  # nothing written yet: an empty chunk, so a daemon can check for SIGTERM
        with os.fdopen(w, "wb", buffering=0) as writer:
            writer.write(pcm[:3])  # half a sample
            writer.write(pcm[3:] + b"\x01")  # a stray odd byte at the end is not a sample
        got = np.concatenate([c for c in chunks if len(c)])
    np.testing.assert_array_equal(got, np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0)


def test_paced_and_fast_file_sources_yield_the_same_audio(tmp_path):
    path = tmp_path / "a.wav"
    audio = np.sin(np.arange(4800) / 9.0).astype(np.float32) * 0.3
    sf.write(path, audio, 16000)
    fast = np.concatenate(list(WavSource(path, chunk_s=0.05).chunks()))
    paced = np.concatenate(list(WavSource(path, chunk_s=0.05, realtime=True).chunks()))
    np.testing.assert_array_equal(fast, paced)
    np.testing.assert_allclose(fast, audio, atol=1e-4)


def test_a_16khz_file_is_decoded_chunk_by_chunk_not_held_whole(tmp_path):
    """A minute of 16 kHz stereo speech-like audio comes out as read_audio gives it (down-mixed, said once), while
    the source never holds more than a few chunks: peak allocation well under the file's 3.8 MB of samples."""
    import tracemalloc
    import warnings

    from edge_meta.audio import AudioConversionWarning

    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((60 * 16000, 2))).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, stereo, 16000, subtype="PCM_16")
    with pytest.warns(AudioConversionWarning, match="down-mixed"):
        want = read_audio(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracemalloc.start()
        total, last = 0, None
        for chunk in WavSource(path).chunks():
            total, last = total + len(chunk), chunk
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert total == len(want) and np.array_equal(last, want[-len(last):])
    np.testing.assert_array_equal(np.concatenate(list(WavSource(path).chunks())), want)
    assert sum(issubclass(w.category, AudioConversionWarning) for w in caught) == 1
    assert peak < 0.25 * want.nbytes


def test_a_44khz_stereo_file_is_resampled_block_by_block_as_if_whole(tmp_path, fsdd_dir):
    """Nearly a minute of real speech at 44.1 kHz stereo (a 2 h one was read whole: a MemoryError traceback in detect and
    run): the blocks give the samples one whole-file resampling gives, to float32 rounding of the filter's sums,
    while the source holds only a block's worth (peak allocation a twentieth of the 19 MB the file decodes to)."""
    import tracemalloc

    speech = np.concatenate([read_audio(p, announce=False, sample_rate=8000)
                             for p in sorted((fsdd_dir / "recordings").glob("*_theo_*.wav"))[:150]])[: 60 * 8000]
    mono = resample_poly(speech, 441, 80).astype(np.float32)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    path = tmp_path / "long44k.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    with pytest.warns(Warning):
        want = read_audio(path)
        source = WavSource(path)
    got = np.concatenate(list(source.chunks()))
    assert len(got) == len(want)
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))
    tracemalloc.start()
    for _ in WavSource(path).chunks():
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.05 * stereo.nbytes


def test_a_file_damaged_midway_is_refused_naming_where(tmp_path):
    """Non-finite samples half-way through a float WAV: the chunks before it play, then an AudioError names the
    file and the second it is at (the daemon stops with that message instead of scoring garbage)."""
    audio = np.zeros(32000, np.float32)
    audio[20000] = np.nan
    path = tmp_path / "bad.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    chunks = WavSource(path).chunks()
    assert len(next(chunks)) == 1600
    with pytest.raises(AudioError, match=r"bad.wav \(at 1.2 s\): contains NaN"):
        list(chunks)


def test_the_decimator_keeps_speech_band_and_stops_aliases():
    t = np.arange(48000 * 2) / 48000
    tone = np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 11000 * t)  # 11 kHz would alias to 5 kHz at 16 kHz
    dec = _Decimator(3)
    out = np.concatenate([dec(c) for c in np.array_split(tone, 37)])  # odd chunk sizes
    assert len(out) == len(tone) // 3
    spectrum = np.abs(np.fft.rfft(out[4000:20000]))
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    assert abs(freqs[np.argmax(spectrum)] - 440) < 2
    assert spectrum[np.abs(freqs - 5000).argmin()] < 0.01 * spectrum.max()
    ref = resample_poly(np.sin(2 * np.pi * 440 * t), 1, 3)
    np.testing.assert_allclose(out[2000:-2000], ref[2000 - 8 : -2000 - 8], atol=0.05)  # 16-tap group delay / 3 -> 8


class FakePortAudioError(Exception):
    pass


class FakeSoundDevice:
    """Enough of sounddevice for `Microphone`: one device that plays ``tape`` through the callback in blocks;
    it is "unplugged" after ``unplug_after`` blocks (the stream goes inactive and the next 3 opens fail)."""

    PortAudioError = FakePortAudioError

    def __init__(self, tape: np.ndarray, rates=(16000,), default_rate=16000, unplug_after=None, present=True):
        self.tape, self.rates, self.default_rate = tape, rates, default_rate
        self.unplug_after, self.present = unplug_after, present
        self.position = 0  # next sample of the tape
        self.opens, self.rescans, self.unplugged, self.failures_left = 0, 0, False, 0

    def query_devices(self, device=None, kind=None):
        if not self.present:
            if kind is None:
                return []
            raise ValueError("No input device matching")
        info = {"name": "Fake USB mic", "max_input_channels": 1, "default_samplerate": self.default_rate}
        return info if kind else [info]

    def _terminate(self):
        self.rescans += 1

    def _initialize(self):
        pass

    def InputStream(self, device, channels, samplerate, dtype, blocksize, callback):
        if samplerate not in self.rates:
            raise FakePortAudioError("Invalid sample rate")
        if self.failures_left:
            self.failures_left -= 1
            raise FakePortAudioError("Device unavailable")
        self.opens += 1
        return FakeStream(self, samplerate, blocksize, callback)


class FakeStream:
    def __init__(self, sd, rate, blocksize, callback):
        self.sd, self.rate, self.blocksize, self.callback = sd, rate, blocksize, callback
        self.active = False

    def start(self):
        self.active = True
        threading.Thread(target=self._play, daemon=True).start()

    def _play(self):
        sd, blocks = self.sd, 0
        while sd.position < len(sd.tape):
            if blocks == sd.unplug_after and not sd.unplugged:
                sd.unplugged, sd.failures_left = True, 3
                break
            block = sd.tape[sd.position : sd.position + self.blocksize]
            blocks += 1
            self.callback(block[:, None].astype(np.float32), len(block), None, None)
            sd.position += len(block)  # after the callback: a reader seeing the tape's end sees every block delivered
        self.active = False

    def stop(self):
        pass

    def close(self):
        pass


def _record(mic: Microphone, n: int) -> np.ndarray:
    got, total = [], 0
    for chunk in mic.chunks():
        got.append(chunk)
        total += len(chunk)
        if total >= n:
            return np.concatenate(got)
    raise AssertionError("the microphone stopped")


def test_microphone_plays_speech_and_survives_being_unplugged(fsdd_dir, caplog):
    tape = np.concatenate([read_audio(fsdd_dir / "recordings" / f"{d}_lucas_0.wav", announce=False) for d in range(4)])
    sd = FakeSoundDevice(tape, unplug_after=5)
    mic = Microphone(sd=sd, retry_s=0.01)
    with caplog.at_level(logging.WARNING, logger="edge_meta.device"):
        got = _record(mic, len(tape))
    np.testing.assert_array_equal(got, tape)  # every sample, in order, across the reconnect
    assert mic.reconnects == 1 and sd.opens == 2 and sd.rescans >= 2
    assert [r.getMessage() for r in caplog.records] == ["microphone_lost", "microphone_back"]


def test_a_48k_only_microphone_is_decimated_to_16k(fsdd_dir):
    speech = read_audio(fsdd_dir / "recordings" / "2_lucas_0.wav", announce=False)
    tape = resample_poly(speech, 3, 1).astype(np.float32)
    mic = Microphone(sd=FakeSoundDevice(tape, rates=(48000,), default_rate=48000), retry_s=0.01)
    got = _record(mic, len(speech) - 16)
    assert len(got) == len(speech)
    np.testing.assert_allclose(got[200:-200], speech[192:-208], atol=0.02)  # 8-sample filter delay


def test_no_input_device_names_the_fix():
    mic = Microphone(sd=FakeSoundDevice(np.zeros(10, np.float32), present=False))
    with pytest.raises(AudioError, match="no audio input device") as err:
        mic.chunks()  # raises at once, before anything is prompted or played
    assert "arecord -l" in err.value.hint and "PortAudio sees: none" in err.value.message


def test_missing_portaudio_names_the_package(monkeypatch):
    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(AudioError, match="PortAudio") as err:
        Microphone()
    assert "libportaudio2" in err.value.hint


class VanishingSoundDevice(FakeSoundDevice):
    """A USB microphone yanked mid-stream, more than once: at each tape position in ``unplugs`` its stream stops
    calling back but still claims to be active (nothing closes it), and PortAudio's device list lacks it for
    ``absent`` rescans before it returns."""

    def __init__(self, tape: np.ndarray, unplugs: list[int], absent: int = 4):
        super().__init__(tape)
        self.unplugs, self.absent, self.absent_left = list(unplugs), absent, 0

    def query_devices(self, device=None, kind=None):
        if self.absent_left:
            if kind is None:
                return []
            raise ValueError("No input device matching")
        return super().query_devices(device, kind)

    def _terminate(self):
        super()._terminate()
        self.absent_left = max(0, self.absent_left - 1)

    def InputStream(self, device, channels, samplerate, dtype, blocksize, callback):
        self.opens += 1
        return StallingStream(self, samplerate, blocksize, callback)


class StallingStream(FakeStream):
    def _play(self):
        sd = self.sd
        while sd.position < len(sd.tape):
            if sd.unplugs and sd.position >= sd.unplugs[0]:
                sd.unplugs.pop(0)
                sd.absent_left = sd.absent
                return  # silence from an "active" stream: only the stall timer can notice
            block = sd.tape[sd.position : sd.position + self.blocksize]
            sd.position += len(block)
            self.callback(block[:, None].astype(np.float32), len(block), None, None)


def test_microphone_survives_vanishing_from_the_device_list_twice(fsdd_dir, caplog):
    tape = np.concatenate([read_audio(fsdd_dir / "recordings" / f"{d}_theo_0.wav", announce=False) for d in range(5)])
    sd = VanishingSoundDevice(tape, unplugs=[len(tape) // 4, len(tape) // 2])
    mic = Microphone(sd=sd, stall_s=0.2, retry_s=0.01)
    chunks = []
    with caplog.at_level(logging.WARNING, logger="edge_meta.device"):
        for chunk in mic.chunks():
            chunks.append(chunk)
            if sum(map(len, chunks)) >= len(tape):
                break
    np.testing.assert_array_equal(np.concatenate(chunks), tape)  # every sample, in order, across both outages
    assert mic.reconnects == 2 and sd.opens == 3 and sd.rescans >= 2 * sd.absent
    assert sum(len(c) == 0 for c in chunks) >= 2 * sd.absent  # empty chunks while away: a daemon can still stop
    assert [r.getMessage() for r in caplog.records] == ["microphone_lost", "microphone_back"] * 2


def test_a_microphone_whose_reader_stops_keeps_only_the_newest_audio(fsdd_dir, caplog):
    """The microphone's queue grew ~2.9 MB a minute without bound while the daemon was stuck; now it holds
    MAX_BACKLOG_S of audio and drops the oldest blocks."""
    from edge_meta.device.sources import MAX_BACKLOG_S

    speech = np.concatenate([read_audio(fsdd_dir / "recordings" / f"{d}_lucas_{t}.wav", announce=False)
                             for t in range(8) for d in range(10)])  # ~30 s, more than the backlog
    sd = FakeSoundDevice(speech)
    mic = Microphone(sd=sd, chunk_s=0.1)
    chunks = mic.chunks()  # the device opens and plays on while nobody takes its audio
    while sd.position < len(speech):
        threading.Event().wait(0.01)
    held = mic.queue.qsize()
    assert held == mic.queue.maxsize and held * 0.1 == pytest.approx(MAX_BACKLOG_S)
    with caplog.at_level(logging.WARNING, logger="edge_meta.device"):
        rest = np.concatenate([next(chunks) for _ in range(held)])
    np.testing.assert_array_equal(rest, speech[-len(rest):])  # the newest audio, in order
    assert held + mic.dropped == -(-len(speech) // 1600)  # every block held or dropped: none waits
    assert mic.dropped > 0 and [r.getMessage() for r in caplog.records] == ["audio_overrun"]
