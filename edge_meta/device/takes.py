"""What a keyword take becomes before it is embedded or made a template: levelled, and its word found in it.

A take from a file or the microphone holds the word somewhere, at some level, with silence, breath or a
click around it. Two things about that must not change what is enrolled:
- its level: the energy VAD (`edge_meta.audio.active_speech`) keeps only frames above -55 dBFS, so a take
  peaking at -45 dBFS kept just its loudest 10 dB (the vowel) and lost the consonants around it. Each take is
  first scaled so its loudest 20 ms frame sits at ``REFERENCE_DBFS``; the VAD's 30 dB below the loudest frame
  then decides alone, as it does for any take recorded louder than -25 dBFS (those are unchanged);
- what surrounds the word: the model window is centred on the middle of the take's speech frames, not
  taken as the loudest second of the whole file, which a click or the sound after the word could win. The
  take's own sound around the word stays in the window, as a stream has it.
"""

from __future__ import annotations

import numpy as np

from edge_meta.audio import SAMPLE_RATE, active_speech, speech_region
from edge_meta.device.quality import FRAME_S, loudest_frame_dbfs

REFERENCE_DBFS = -20.0  # loudest frame of a normalised take: far from clipping, and > 30 dB above the VAD's -55


def level_normalised(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``x`` scaled so that its loudest 20 ms frame is at ``REFERENCE_DBFS`` (digital silence is left as is)."""
    level = loudest_frame_dbfs(x, sample_rate)
    if level <= -100.0:
        return x.astype(np.float32, copy=False)
    return (x * np.float32(10.0 ** ((REFERENCE_DBFS - level) / 20.0))).astype(np.float32)


def spoken_part(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The level-normalised take from its first to its last frame of speech (with the VAD's margin)."""
    return speech_region(level_normalised(x, sample_rate), sample_rate)


def word_window(x: np.ndarray, n: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The ``n``-sample model window of a take, centred on the middle of its speech frames (their median, which
    a click or a breath barely moves), with the take's own sound around the word, as a stream has it
    (zero-padded only past the take's ends)."""
    active = np.flatnonzero(active_speech(level_normalised(x, sample_rate), sample_rate))
    frame = int(FRAME_S * sample_rate)
    centre = int((np.median(active) + 0.5) * frame) if len(active) else len(x) // 2
    start = n + centre - n // 2  # in the take padded by n either side
    return np.pad(x, (n, n))[start : start + n].astype(np.float32)
