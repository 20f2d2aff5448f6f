"""Where audio comes from: anything that yields float32 mono chunks at 16 kHz.

Capture sits behind this small interface so the detector and the daemon run the same way on a
microphone, a WAV file or raw PCM on stdin, and tests feed them recorded audio.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from edge_meta.audio import SAMPLE_RATE, read_audio


class AudioSource(Protocol):
    sample_rate: int

    def chunks(self) -> Iterator[np.ndarray]: ...


class WavSource:
    """A recorded file, as fast as possible or paced like a live microphone (``realtime=True``)."""

    def __init__(self, path: str | Path, chunk_s: float = 0.1, realtime: bool = False) -> None:
        self.path = Path(path)
        self.sample_rate = SAMPLE_RATE
        self.audio = read_audio(self.path)
        self.chunk = int(chunk_s * SAMPLE_RATE)
        self.realtime = realtime

    def chunks(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        for i in range(0, len(self.audio), self.chunk):
            if self.realtime:
                time.sleep(max(0.0, start + i / SAMPLE_RATE - time.monotonic()))
            yield self.audio[i : i + self.chunk]


class ArraySource:
    """Samples already in memory (16 kHz float32 mono)."""

    def __init__(self, audio: np.ndarray, chunk_s: float = 0.1) -> None:
        self.sample_rate = SAMPLE_RATE
        self.audio = np.asarray(audio, dtype=np.float32)
        self.chunk = int(chunk_s * SAMPLE_RATE)

    def chunks(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.audio), self.chunk):
            yield self.audio[i : i + self.chunk]
