"""What a keyword take becomes before it is embedded or made a template: levelled, and its word found in it.

A take from a file or the microphone holds the word somewhere, at some level, with silence, breath or a
click around it. Two things about that must not change what is enrolled:
- its level: the energy VAD (`edge_meta.audio.active_speech`) keeps only frames above -55 dBFS, so a take
  peaking at -45 dBFS kept just its loudest 10 dB (the vowel) and lost the consonants around it. Each take is
  first scaled so its loudest 20 ms frame sits at ``REFERENCE_DBFS``; the VAD's 30 dB below the loudest frame
  then decides alone, as it does for any take recorded louder than -25 dBFS (those are unchanged);
- what surrounds the word: the model window is centred on the word (`word_start`: where the take's mel bands
  stand over their own noise floors, or, for a take no longer than the window, its power centroid), not taken
  as the loudest second of the whole file. The take's own sound around the word stays in the window, as a
  stream has it.
"""

from __future__ import annotations

import functools

import numpy as np

from edge_meta.audio import SAMPLE_RATE, fix_length, speech_region
from edge_meta.device.quality import FRAME_S, loudest_frame_dbfs
from edge_meta.frontend import FrontendSpec, LogMel

REFERENCE_DBFS = -20.0  # loudest frame of a normalised take: far from clipping, and > 30 dB above the VAD's -55
BAND_EXCESS = 16.0  # a mel band holds the word where its power is 12 dB over its median across the take


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
    stream has it (zero-padded only past the take's ends). Where the word is: `word_start`."""
    frame = int(FRAME_S * sample_rate)
    if len(x) < frame:
        return fix_length(x.astype(np.float32), n)
    start = n + word_start(x, n, sample_rate)  # in the take padded by n either side
    return np.pad(x, (n, n))[start : start + n].astype(np.float32)


def word_start(x: np.ndarray, n: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Where `word_window`'s window starts in ``x`` (negative, or past ``len(x) - n``, where it overhangs).

    A take longer than the window is searched band by band (`_band_floor_start`). A take no longer than the
    window has no room around its word for the bands' floors, whose medians are then the word itself; it is
    centred on the centroid of its power over its quietest frames (`_power_centroid_start`). On FSDD's tightly
    cut clips (99% of them under 1 s) that keeps the clean rows the band floors lost 0.3-0.9 points on, while
    2 s takes in noise keep the band floors' gains (benchmarks/RESULTS.md, "FSDD in real noise")."""
    if len(x) <= n:
        return _power_centroid_start(x, n, sample_rate)
    return _band_floor_start(x, n, sample_rate)


def _power_centroid_start(x: np.ndarray, n: int, sample_rate: int) -> int:
    """The window centred on the centroid of the 20 ms frames' power beyond their 10th percentile."""
    frame = int(FRAME_S * sample_rate)
    k = len(x) // frame
    if k == 0:
        return (len(x) - n) // 2
    power = np.mean(np.square(x[: k * frame].reshape(k, frame), dtype=np.float64), axis=1)
    return _window_on(np.maximum(power - np.percentile(power, 10), 0.0), frame, frame / 2, n)


def _band_floor_start(x: np.ndarray, n: int, sample_rate: int) -> int:
    """The word is where the take's mel bands stand well above their own floors: per band, the power beyond
    ``BAND_EXCESS`` times the band's median over the take, summed over bands; the window is the ``n``-sample
    stretch holding the most of that excess, re-centred on the excess's centroid inside it. A steady noise
    (a boiler, a fan) fills some bands at every frame; against the take's broadband power it hid the word at
    5 dB SNR, while band by band the word still stands out where the noise is weak. On training-side words
    padded to 2 s in training-share noise, the window started more than 0.1 s from where it does on the clean
    take (chosen by broadband power) in 55% of takes at 5 dB with broadband power, 17% with band floors (22% and
    3% at 10 dB); clean, with quiet around the word, the two agree."""
    frontend = _band_frontend(sample_rate)
    bands = np.exp(frontend.log_mel_frames(x).astype(np.float64))  # (frames, bands): 25 ms frames every 10 ms
    if len(bands) == 0:
        return (len(x) - n) // 2
    excess = np.maximum(bands - BAND_EXCESS * np.median(bands, axis=0), 0.0).sum(axis=1)
    return _window_on(excess, frontend.spec.hop_length, frontend.spec.win_length / 2, n)


def _window_on(excess: np.ndarray, hop: int, centre_offset: float, n: int) -> int:
    """Where an ``n``-sample window starts that holds the most of a take's per-frame ``excess`` (frames every
    ``hop`` samples, each centred ``centre_offset`` samples after its start), re-centred on the excess's centroid
    inside it; with no excess at all, centred on the take."""
    span = max(1, n // hop)
    first = int(np.argmax(np.convolve(excess, np.ones(span), "valid"))) if len(excess) > span else 0
    inside = excess[first : first + span]
    if inside.sum() > 0:
        centre = (first + float(np.dot(inside, np.arange(len(inside))) / inside.sum())) * hop
    else:
        centre = (len(excess) / 2) * hop
    return int(centre + centre_offset) - n // 2


@functools.lru_cache(maxsize=4)
def _band_frontend(sample_rate: int) -> LogMel:
    """The default frontend's mel bands at ``sample_rate``, built once (the filterbank is the costly part)."""
    return LogMel(FrontendSpec(sample_rate=sample_rate))
