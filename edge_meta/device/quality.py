"""Is a take usable? The checks behind both enrollment from files (an error) and the prompts (a retake).

Each check raises `AudioError` naming the take, what is wrong and what to do about it. Levels are
those of the loudest 20 ms frame, so silence around the word does not count against it.
"""

from __future__ import annotations

import numpy as np

from edge_meta.audio import SAMPLE_RATE, active_speech, require_speech
from edge_meta.errors import AudioError

FRAME_S = 0.02  # the energy VAD's frame (`edge_meta.audio.active_speech`)
QUIET_DBFS = -50.0  # loudest frame below this: too quiet (FSDD's quietest recordings peak near -47 dBFS)
MIN_WORD_S = 0.08  # shorter is a click or a tap (the shortest of all 3000 FSDD takes spans 0.10 s)
MIN_VOICE_S = 0.4  # speech needed in a voice take
MAX_VOICE_S = 15.0
SLACK_S = 0.25  # a word may overrun the model window by this much (its edges are quiet)
SAME_RECORDING = 0.97  # waveform correlation from which two takes are one recording (distinct FSDD takes of a
# digit by one speaker reach at most 0.90 over all 600 pairs; a copy at another gain, offset or with noise ~1.0)


def loudest_frame_dbfs(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    n = max(1, int(FRAME_S * sample_rate))
    frames = len(x) // n
    if frames == 0:
        return -100.0
    power = np.mean(np.square(x[: frames * n].reshape(frames, n), dtype=np.float64), axis=1)
    return float(10.0 * np.log10(power.max() + 1e-10))


def speech_span_s(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """(from the first to the last active frame, active frames only) in seconds."""
    active = np.flatnonzero(active_speech(x, sample_rate))
    if not len(active):
        return 0.0, 0.0
    return (active[-1] - active[0] + 1) * FRAME_S, len(active) * FRAME_S


def _common(x: np.ndarray, name: str) -> None:
    require_speech(x, name)  # silent, clipped
    level = loudest_frame_dbfs(x)
    if level < QUIET_DBFS:
        raise AudioError(f"{name}: is too quiet (loudest {level:.0f} dBFS)",
                         "speak closer to the microphone or raise its gain (alsamixer)")


def check_word_take(x: np.ndarray, name: str, window_s: float) -> None:
    """A keyword take: speech, not clipped, loud enough, and neither a click nor longer than the model window."""
    _common(x, name)
    span, _ = speech_span_s(x)
    if span < MIN_WORD_S:
        raise AudioError(f"{name}: is too short ({span:.2f} s of sound)", "say the whole word, clearly")
    if span > window_s + SLACK_S:
        raise AudioError(f"{name}: holds {span:.1f} s of sound; a keyword must fit in {window_s:.1f} s",
                         "record only the word, with little silence around it")


def check_voice_take(x: np.ndarray, name: str) -> None:
    """A voice take: any words, but enough speech to tell a voice by, and not a whole recording."""
    _common(x, name)
    span, active = speech_span_s(x)
    if active < MIN_VOICE_S:
        raise AudioError(f"{name}: holds only {active:.2f} s of speech", "say a whole sentence")
    if span > MAX_VOICE_S:
        raise AudioError(f"{name}: holds {span:.0f} s of sound; voice takes are at most {MAX_VOICE_S:.0f} s",
                         "record one sentence per take")


def waveform_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Peak normalised cross-correlation of two clips over every offset (1.0: one is a scaled, shifted copy)."""
    size = 1 << (len(a) + len(b) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    return float(np.abs(corr).max() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def check_distinct(takes: list[np.ndarray], names: list[str]) -> None:
    """Refuse two takes that are one recording: a word enrolled from copies matches only that recording (its
    takes agree perfectly, so they set no useful spread for the threshold or the template check)."""
    for i in range(len(takes)):
        for j in range(i + 1, len(takes)):
            corr = waveform_correlation(takes[i], takes[j])
            if corr >= SAME_RECORDING:
                raise AudioError(f"{names[j]}: is the same recording as {names[i]} (waveform correlation {corr:.3f})",
                                 "give separate recordings of the word: say it again for each take")
