"""What a keyword take becomes before it is embedded or made a template: levelled, and its word found in it.

A take from a file or the microphone holds the word somewhere, at some level, with silence, breath or a
click around it. Two things about that must not change what is enrolled:
- its level: the energy VAD (`edge_meta.audio.active_speech`) keeps only frames above -55 dBFS, so a take
  peaking at -45 dBFS kept just its loudest 10 dB (the vowel) and lost the consonants around it. Each take is
  first scaled so its loudest 20 ms frame sits at ``REFERENCE_DBFS``; the VAD's 30 dB below the loudest frame
  then decides alone, as it does for any take recorded louder than -25 dBFS (those are unchanged);
- what surrounds the word: the model window is centred on the word, found as the take's power above its own
  noise floor (`word_window`), not taken as the loudest second of the whole file. The take's own sound
  around the word stays in the window, as a stream has it.
"""

from __future__ import annotations

import numpy as np

from edge_meta.audio import SAMPLE_RATE, fix_length, speech_region
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
    """The ``n``-sample model window of a take, centred on its word, with the take's own sound around it, as a
    stream has it (zero-padded only past the take's ends).

    The word is where the take's power stands above its own floor (its quietest tenth of 20 ms frames): the
    ``n``-sample stretch holding the most of that excess power, re-centred on the excess power's centroid
    inside it. In quiet takes that is the middle of the word; in noise, where every frame is within 30 dB of
    the loudest and a level VAD calls it all speech, the word still holds most of the excess (FSDD household
    5-shot with 2 s takes at 10 dB SNR: 74.9%, against 69.9% for the loudest window and 40.3% for the median
    of VAD frames; clean 82.9%, benchmarks/RESULTS.md)."""
    frame = int(FRAME_S * sample_rate)
    if len(x) < frame:
        return fix_length(x.astype(np.float32), n)
    start = n + word_start(x, n, sample_rate)  # in the take padded by n either side
    return np.pad(x, (n, n))[start : start + n].astype(np.float32)


def word_start(x: np.ndarray, n: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Where `word_window`'s window starts in ``x`` (negative, or past ``len(x) - n``, where it overhangs)."""
    frame = int(FRAME_S * sample_rate)
    k = len(x) // frame
    power = np.mean(np.square(x[: k * frame].reshape(k, frame), dtype=np.float64), axis=1)
    excess = np.maximum(power - np.percentile(power, 10), 0.0)
    span = max(1, n // frame)
    first = int(np.argmax(np.convolve(excess, np.ones(span), "valid"))) if k > span else 0
    inside = excess[first : first + span]
    centroid = first + float(np.dot(inside, np.arange(len(inside))) / inside.sum()) if inside.sum() > 0 else k / 2
    return int((centroid + 0.5) * frame) - n // 2
