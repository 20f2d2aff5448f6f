"""The prototype head (Prototypical networks): one unit-length prototype per enrolled word, the
normalised mean of its takes; a window's score for a word is the cosine to its prototype.

It also serves as the speaker head (one prototype per enrolled voice) and as the open-set gate of
the heads whose scores are probabilities (see `edge_meta.device.scorer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_meta.metrics import unit

if TYPE_CHECKING:  # numpy-only heads: the graph type is named, not imported
    from edge_meta.device.backends import Graph


class PrototypeHead:
    """Cosine to per-word prototypes; `fit` takes {word: (takes, D)}."""

    kind = "prototype"
    open_set = True  # a score alone can reject an unknown window

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.prototypes = np.zeros((0, 0), dtype=np.float32)

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], graphs: dict[str, Graph]) -> "PrototypeHead":
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
