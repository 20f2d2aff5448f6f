"""Where audio comes from: anything that yields float32 mono chunks at 16 kHz.

Capture sits behind this small interface so the detector, the enrollment prompts and the daemon run
the same way on a microphone, a WAV file or raw PCM on stdin, and tests feed them recorded audio.
Live sources may yield an *empty* chunk when nothing arrived for a moment: it lets the consumer
check for a shutdown request while the microphone is silent or unplugged.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import select
import sys
import time
import warnings
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol

import numpy as np

from edge_meta.audio import (READ_ERRORS, SAMPLE_RATE, AudioConversionWarning, open_audio, prepare,
                             resampled_blocks, unreadable)
from edge_meta.errors import AudioError

log = logging.getLogger("edge_meta.device")
EMPTY = np.zeros(0, dtype=np.float32)
MAX_BACKLOG_S = 5.0  # audio a microphone holds for a consumer that fell behind; older blocks are dropped
MIC_FIX = "plug in a microphone and check that `arecord -l` lists it (see firmware_notes/ for ALSA set-up)"


class AudioSource(Protocol):
    sample_rate: int

    def chunks(self) -> Iterator[np.ndarray]: ...


class WavSource:
    """A recorded file, as fast as possible or paced like a live microphone (``realtime=True``).

    It is decoded (and, at another rate, resampled) one block at a time, so a day-long recording costs the
    daemon no more memory than a microphone."""

    def __init__(self, path: str | Path, chunk_s: float = 0.1, realtime: bool = False) -> None:
        self.path = Path(path)
        self.sample_rate = SAMPLE_RATE
        self.chunk = int(chunk_s * SAMPLE_RATE)
        self.realtime = realtime
        with open_audio(self.path) as f:  # a missing or unreadable file is refused here, before any model loads
            frames, self.rate, channels = f.frames, f.samplerate, f.channels
        if frames == 0:
            raise AudioError(f"{self.path}: holds no audio samples", "record it again")
        self.duration_s = frames / self.rate
        if channels > 1:
            warnings.warn(f"{self.path}: {channels} channels down-mixed to mono", AudioConversionWarning, 2)
        if self.rate != SAMPLE_RATE:
            warnings.warn(f"{self.path}: resampled from {self.rate} Hz to {SAMPLE_RATE} Hz", AudioConversionWarning, 2)

    def chunks(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        for i, chunk in enumerate(self._decoded()):
            if self.realtime:
                time.sleep(max(0.0, start + i * self.chunk / SAMPLE_RATE - time.monotonic()))
            yield chunk

    def _decoded(self) -> Iterator[np.ndarray]:
        with open_audio(self.path) as f:
            try:  # a decoding error (a truncated or damaged file) is named like one found at open
                if self.rate != SAMPLE_RATE:
                    yield from resampled_blocks(f, self.chunk, source=str(self.path))
                    return
                for i, block in enumerate(f.blocks(blocksize=self.chunk, dtype="float32", always_2d=True)):
                    yield prepare(block, SAMPLE_RATE, source=f"{self.path} (at {i * self.chunk / SAMPLE_RATE:.1f} s)",
                                  announce=False)
            except READ_ERRORS as exc:
                raise unreadable(self.path, exc) from None


class ArraySource:
    """Samples already in memory (16 kHz float32 mono)."""

    def __init__(self, audio: np.ndarray, chunk_s: float = 0.1) -> None:
        self.sample_rate = SAMPLE_RATE
        self.audio = np.asarray(audio, dtype=np.float32)
        self.chunk = int(chunk_s * SAMPLE_RATE)

    def chunks(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.audio), self.chunk):
            yield self.audio[i : i + self.chunk]


class StdinSource:
    """Raw signed 16-bit little-endian mono PCM at 16 kHz on a pipe, e.g. ``arecord -f S16_LE -r 16000 -c 1 -t raw``."""

    def __init__(self, stream: BinaryIO | None = None, chunk_s: float = 0.1, poll_s: float = 0.25) -> None:
        self.sample_rate = SAMPLE_RATE
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.chunk_bytes = 2 * int(chunk_s * SAMPLE_RATE)
        self.poll_s = poll_s

    def chunks(self) -> Iterator[np.ndarray]:
        fd = self.stream.fileno()
        rest = b""
        while True:
            ready, _, _ = select.select([fd], [], [], self.poll_s)
            if not ready:
                yield EMPTY
                continue
            data = os.read(fd, self.chunk_bytes)
            if not data:
                return  # end of input; an odd trailing byte is not a sample
            data = rest + data
            whole = len(data) // 2 * 2
            rest = data[whole:]
            if whole:
                yield np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0


class _Decimator:
    """Integer-ratio down-sampling that keeps its filter state across chunks (for 32/48 kHz-only microphones)."""

    def __init__(self, factor: int) -> None:
        from scipy.signal import firwin, lfilter  # only 32/48 kHz microphones pay for scipy.signal (~75 MB resident)

        self.lfilter = lfilter
        self.factor = factor
        self.taps = firwin(16 * factor + 1, 0.9 / factor).astype(np.float64)
        self.state = np.zeros(len(self.taps) - 1)
        self.phase = 0  # index in the next chunk of the first sample to keep

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, self.state = self.lfilter(self.taps, 1.0, x.astype(np.float64), zi=self.state)
        out = y[self.phase :: self.factor]
        self.phase = (self.phase - len(x)) % self.factor
        return out.astype(np.float32)


def _import_sounddevice():
    try:
        import sounddevice
    except OSError:  # sounddevice imports, then fails to find the PortAudio library
        raise AudioError("PortAudio (the audio library behind the microphone input) is not installed",
                         "sudo apt-get install libportaudio2") from None
    except ImportError:
        raise AudioError("sounddevice is not installed", "pip install 'edge-meta[device]'") from None
    return sounddevice


class Microphone:
    """A PortAudio input device (the system default, or one named by ``device``) as 16 kHz mono chunks.

    When the device stops delivering audio (unplugged, driver reset), the stream is closed and reopened
    every ``retry_s`` until the device is back; meanwhile the source yields empty chunks and logs
    "microphone_lost" / "microphone_back". ``sd`` is the sounddevice module (tests pass a fake one).
    """

    def __init__(self, device: str | int | None = None, chunk_s: float = 0.1, stall_s: float = 2.0,
                 retry_s: float = 1.0, sd=None) -> None:
        self.sample_rate = SAMPLE_RATE
        self.sd = sd if sd is not None else _import_sounddevice()
        self.device = device
        self.chunk_s, self.stall_s, self.retry_s = chunk_s, stall_s, retry_s
        # bounded: a consumer that falls behind loses the oldest audio, not the device's memory
        self.queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(1, math.ceil(MAX_BACKLOG_S / chunk_s)))
        self.reconnects = 0
        self.dropped = 0  # blocks dropped because the consumer fell MAX_BACKLOG_S behind

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio's thread: never blocks
        block = np.array(indata[:, 0], dtype=np.float32)
        while True:
            try:
                self.queue.put_nowait(block)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _open(self):
        """An started input stream and the resampler its rate needs; AudioError naming the fix if none."""
        sd = self.sd
        try:
            info = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            what = f"no input device {self.device!r}" if self.device is not None else "no audio input device"
            raise AudioError(f"{what} ({exc}); PortAudio sees: {self._inputs()}", MIC_FIX) from None
        for rate in (SAMPLE_RATE, int(info["default_samplerate"])):
            if rate % SAMPLE_RATE:
                continue
            try:
                stream = sd.InputStream(device=self.device, channels=1, samplerate=rate, dtype="float32",
                                        blocksize=int(self.chunk_s * rate), callback=self._callback)
                stream.start()
            except sd.PortAudioError:
                continue
            return stream, (_Decimator(rate // SAMPLE_RATE) if rate != SAMPLE_RATE else None)
        raise AudioError(f"the input device {info['name']!r} records neither 16 kHz nor a multiple of it",
                         "use the ALSA 'default' or a 'plughw:' device, which resample (see firmware_notes/)")

    def _inputs(self) -> str:
        try:
            names = [d["name"] for d in self.sd.query_devices() if d["max_input_channels"] > 0]
        except Exception:  # noqa: BLE001 - only for the error message
            names = []
        return ", ".join(names) or "none"

    def _rescan(self) -> None:
        """PortAudio lists devices once per initialisation: re-initialise so a replugged device is found."""
        for step in ("_terminate", "_initialize"):
            fn = getattr(self.sd, step, None)
            if fn is not None:
                try:
                    fn()
                except Exception:  # noqa: BLE001 - best effort; the next open reports real problems
                    pass

    def chunks(self) -> Iterator[np.ndarray]:
        """Opens the device now (a missing one raises here, before any prompt), then yields its audio."""
        return self._stream(*self._open())

    def _stream(self, stream, resample) -> Iterator[np.ndarray]:
        logged = 0
        while True:
            last = time.monotonic()
            try:
                while True:
                    try:
                        block = self.queue.get(timeout=min(0.25, self.stall_s))
                    except queue.Empty:
                        if time.monotonic() - last > self.stall_s or not stream.active:
                            break  # blocks that arrive late stay queued and are yielded after the reconnect
                        yield EMPTY
                        continue
                    last = time.monotonic()
                    if self.dropped and (not logged or self.dropped - logged >= 100):  # 1st, then every 100
                        logged = self.dropped
                        log.warning("audio_overrun", extra={"fields": {"dropped_blocks": logged,
                                                                       "backlog_s": MAX_BACKLOG_S}})
                    yield resample(block) if resample else block
            finally:
                self._close(stream)
            log.warning("microphone_lost", extra={"fields": {"device": self.device, "stalled_s": self.stall_s}})
            stream = None
            while stream is None:
                yield EMPTY
                time.sleep(self.retry_s)
                self._rescan()
                try:
                    stream, resample = self._open()
                except AudioError:
                    continue
            self.reconnects += 1
            log.warning("microphone_back", extra={"fields": {"device": self.device, "reconnects": self.reconnects}})

    def _close(self, stream) -> None:
        try:
            stream.stop()
            stream.close()
        except Exception:  # noqa: BLE001 - a vanished device may refuse to stop; it is being dropped anyway
            pass

    def beep(self, seconds: float = 0.15, hz: float = 880.0) -> None:
        """A short tone on the default output ("say it after the tone"); silent when there is no speaker."""
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = (0.2 * np.sin(2 * np.pi * hz * t) * np.hanning(len(t))).astype(np.float32)
        try:
            self.sd.play(tone, SAMPLE_RATE, blocking=True)
        except Exception:  # noqa: BLE001 - no output device: the printed prompt is the cue
            sys.stderr.write("\a")
            sys.stderr.flush()
