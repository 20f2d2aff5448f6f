"""The prototype head (Prototypical networks) and per-word threshold calibration.

`PrototypeHead` (Prototypical networks' head): one unit-length prototype per enrolled word, the
normalised mean of its takes; a window's score for a word is the cosine to its prototype.
`calibrate_threshold` sets a word's threshold at enrollment from the bundle's background bank
(embeddings of other words and noise): the score that only ``false_accept`` of them reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_meta.metrics import unit


@dataclass
class Calibration:
    threshold: float
    consistency: float  # lowest leave-one-out cosine of a take to the others' prototype (1.0 for one take)
    background_score: float  # the background bank's score at the false-accept target


def calibrate_threshold(takes: np.ndarray, background: np.ndarray, default: float,
                        false_accept: float = 0.01) -> Calibration:
    """Threshold for a new word: at least the bundle default, and above all but ``false_accept`` of the
    background bank; never above what the word's own takes score against each other."""
    proto = unit(takes.mean(0))
    bg = float(np.quantile(unit(background) @ proto, 1.0 - false_accept)) if len(background) else default
    if len(takes) > 1:
        loo = [float(unit(np.delete(takes, i, 0).mean(0)) @ unit(takes[i])) for i in range(len(takes))]
        consistency = min(loo)
    else:
        consistency = 1.0
    threshold = max(default, bg)
    if len(takes) > 1:
        threshold = min(threshold, float(np.median(loo)) - 0.02)
    return Calibration(threshold=float(threshold), consistency=consistency, background_score=bg)


class PrototypeHead:
    """Cosine to per-word prototypes; `fit` takes {word: (takes, D)}."""

    kind = "prototype"

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.prototypes = np.zeros((0, 0), dtype=np.float32)

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], graphs: dict[str, Path]) -> "PrototypeHead":
        """Built from the bundle's ``word.*`` arrays and ``heads/*.onnx`` files (none needed here)."""
        return cls()

    def fit(self, takes: dict[str, np.ndarray]) -> "PrototypeHead":
        self.labels = list(takes)
        self.prototypes = (np.stack([unit(unit(t).mean(0)) for t in takes.values()]).astype(np.float32)
                           if takes else np.zeros((0, 0), np.float32))
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """(B, words) cosine scores of unit-length embeddings."""
        if not self.labels:
            return np.zeros((len(emb), 0), dtype=np.float32)
        return emb @ self.prototypes.T
