"""The relation-networks head: a learned module scores a window against each word's prototype.

Prototypes are made here in numpy (normalised mean of a word's unit takes, as in training); the
relation module ``heads/relation.onnx`` scores every (window, word) pair in one onnxruntime call,
for any number of windows and words. A score is an absolute match score in [0, 1] (trained by
regression to 1/0 per pair), so it is thresholded per word.
"""

from __future__ import annotations

import numpy as np

from edge_meta.device.backends import Graph, onnx_session
from edge_meta.device.heads.prototype import PrototypeHead


class RelationHead(PrototypeHead):
    """Relation-module scores against the prototype head's per-word prototypes."""

    kind = "relation"
    open_set = True

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.session = onnx_session(graph)

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], graphs: dict[str, Graph]) -> "RelationHead":
        return cls(graphs["relation"])

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """(B, words) relation scores in [0, 1] of unit-length embeddings."""
        if not self.labels:
            return np.zeros((len(emb), 0), dtype=np.float32)
        query = np.ascontiguousarray(emb, dtype=np.float32)
        return self.session.run(["scores"], {"query": query, "prototypes": self.prototypes})[0]
