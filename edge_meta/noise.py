"""Real background noise: which recordings training may use, and how benchmarks mix the rest in.

The corpora's noise recordings (Speech Commands' ``_silence_`` room clips, the Arabic set's boiler
and washing machine) serve two masters: augmentation in training and the noisy benchmark protocol.
A benchmark that mixed in the very audio training learned to ignore would flatter the encoder, so
every recording is split once, here: a long recording's last 30% and 30% of the short clips (by a
stable hash of their names) are for evaluation only; the rest is for training.

The noisy protocol (DESIGN.md, evaluation): each clip is padded to a fixed length at a seeded
offset, and an evaluation noise segment is added so that the *active* speech (frames within 30 dB
of the clip's loudest) sits the given number of dB above the noise. The same seed gives the same
audio to every system.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from edge_meta.audio import read_audio

EVAL_SHARE = 0.3
LONG_S = 10.0  # recordings at least this long are split in time, shorter ones as whole clips
Part = Literal["train", "eval"]


def noise_part(name: str, audio: np.ndarray, part: Part, sample_rate: int = 16000) -> np.ndarray | None:
    """The share of one recording that ``part`` may use (None when it is all the other part's)."""
    if len(audio) >= LONG_S * sample_rate:
        cut = int(len(audio) * (1.0 - EVAL_SHARE))
        return audio[:cut] if part == "train" else audio[cut:]
    is_eval = zlib.crc32(Path(name).name.encode()) % 100 < 100 * EVAL_SHARE
    return audio if is_eval == (part == "eval") else None


def load_noise_part(paths: list[Path], part: Part) -> list[np.ndarray]:
    """The ``part`` share of each noise recording (empty recordings and shares left out)."""
    out = []
    for p in paths:
        x = read_audio(p, announce=False)
        share = noise_part(str(p), x, part) if len(x) else None
        if share is not None and len(share):
            out.append(share.astype(np.float32))
    return out


def active_power(x: np.ndarray, frame: int = 400, range_db: float = 30.0) -> float:
    """Mean power of the frames within ``range_db`` of the loudest (the speech, not the pauses)."""
    n = max(1, len(x) // frame)
    power = np.square(x[: n * frame].astype(np.float64)).reshape(n, -1).mean(axis=1) if len(x) >= frame \
        else np.array([np.square(x.astype(np.float64)).mean()])
    active = power >= power.max() * 10 ** (-range_db / 10)
    return float(power[active].mean())


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` (same length) scaled so active speech power / noise power = snr_db."""
    p_noise = max(float(np.square(noise.astype(np.float64)).mean()), 1e-12)
    gain = np.sqrt(active_power(speech) / (p_noise * 10 ** (snr_db / 10)))
    return (speech + gain * noise).astype(np.float32)


def noisy_clips(clips: list[np.ndarray], pool: list[np.ndarray], snr_db: float | None, seed: int,
                length: int = 32000) -> list[np.ndarray]:
    """Each clip padded to ``length`` at a seeded offset, with a seeded noise segment mixed in at
    ``snr_db`` (None: padded only, the clean condition on the same clips)."""
    rng = np.random.default_rng(seed)
    pieces = np.concatenate(pool) if pool else np.zeros(0, np.float32)
    if snr_db is not None and len(pieces) < length:
        raise ValueError(f"the noise pool holds {len(pieces)} samples, fewer than one {length}-sample clip")
    out = []
    for clip in clips:
        clip = clip[:length]
        x = np.zeros(length, np.float32)
        at = int(rng.integers(0, length - len(clip) + 1))
        x[at : at + len(clip)] = clip
        start = int(rng.integers(0, len(pieces) - length + 1)) if len(pieces) >= length else 0
        if snr_db is not None:
            x = mix(x, pieces[start : start + length], snr_db)
        out.append(x)
    return out
