"""The matching-networks head: a window attends over every enrolled take.

A word's score is its *soft cosine*, ``(1/t) log mean_{takes of the word} exp(t * cosine)`` with the
learned temperature ``t``: between the mean and the max cosine of the word's takes, not inflated
by extra takes and independent of the other enrolled words, so it is thresholded per word like
the prototype head's cosine; ``softmax(t * scores)`` over the words is the network's attention
mass per word. With full-context embeddings (``fce`` = 1 in the bundle) takes and window are first
refined by the ``heads/fce.onnx`` graph (onnxruntime, any number of takes and windows).
"""

from __future__ import annotations

import numpy as np

from edge_meta.device.backends import Graph, onnx_session


class MatchingHead:
    """Soft cosine over each word's takes; `fit` takes {word: (takes, D)}."""

    kind = "matching"
    open_set = True

    def __init__(self, temperature: float, fce_graph: Graph | None = None) -> None:
        self.temperature = float(temperature)
        self.fce = onnx_session(fce_graph) if fce_graph is not None else None
        self.labels: list[str] = []
        self.takes = np.zeros((0, 0), dtype=np.float32)
        self.word_of_take = np.zeros(0, dtype=np.int64)

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], graphs: dict[str, Graph]) -> "MatchingHead":
        fce = bool(arrays.get("fce", np.int8(0)))
        return cls(float(arrays["temperature"]), graphs["fce"] if fce else None)

    def fit(self, takes: dict[str, np.ndarray]) -> "MatchingHead":
        self.labels = list(takes)
        if takes:
            self.takes = np.concatenate(list(takes.values())).astype(np.float32)
            self.word_of_take = np.repeat(np.arange(len(takes)), [len(t) for t in takes.values()])
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """(B, words) soft cosines of unit-length embeddings."""
        if not self.labels:
            return np.zeros((len(emb), 0), dtype=np.float32)
        support, query = self.takes, np.asarray(emb, dtype=np.float32)
        if self.fce is not None:
            support, query = self.fce.run(None, {"support_emb": support, "query_emb": query})
        t = self.temperature
        sim = t * (query @ support.T)  # (B, S)
        out = np.empty((len(query), len(self.labels)), dtype=np.float32)
        for w in range(len(self.labels)):
            s = sim[:, self.word_of_take == w]
            peak = s.max(axis=1)
            out[:, w] = (peak + np.log(np.exp(s - peak[:, None]).mean(axis=1))) / t
        return out
