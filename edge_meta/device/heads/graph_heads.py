"""Heads of the model-based learners: a learned ONNX graph turns the enrolled takes into word scores.

- `MemoryHead` (MANN): the takes are written into the memory; a window reads it (``heads/memory.onnx``).
- `SnailHead` (SNAIL): the takes and the window form one sequence (``heads/snail.onnx``).
- `MetaNetHead` (Meta Networks): at enrollment ``heads/generator.onnx`` turns each word's take
  statistics into fast weights once; windows are then scored with numpy.

A window's scores are softmax probabilities over the enrolled words: comparable to a threshold, but
relative to the other words (with a single word enrolled every window scores 1). The memory and SNAIL
graphs have a fixed number of label slots (``max_way`` in the bundle): enrolling more words is refused.
"""

from __future__ import annotations

import numpy as np

from edge_meta.device.backends import Graph, onnx_session
from edge_meta.metrics import unit


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class _SupportSequenceHead:
    """Shared by the memory and SNAIL heads: graph(support, support_labels, query) -> logits (Q, max_way)."""

    kind = ""
    graph = ""  # the ONNX graph's name in the bundle
    open_set = False  # probabilities over the enrolled words: gated by the prototype cosine on the device

    def __init__(self, graph: Graph, max_way: int) -> None:
        self.session = onnx_session(graph)
        self.max_way = int(max_way)
        self.labels: list[str] = []
        self.support = np.zeros((0, 0), dtype=np.float32)
        self.support_labels = np.zeros((0, self.max_way), dtype=np.float32)

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], graphs: dict[str, Graph]):
        return cls(graphs[cls.graph], int(arrays["max_way"]))

    def fit(self, takes: dict[str, np.ndarray]):
        """Store every take with its word's one-hot label slot (slots in the order of ``takes``)."""
        if len(takes) > self.max_way:
            raise ValueError(f"the {self.kind} head holds at most {self.max_way} words (max_way of the bundle); "
                             f"{len(takes)} were given: remove words or export a bundle with a larger max_way")
        self.labels = list(takes)
        if not takes:
            return self
        self.support = np.concatenate([np.asarray(t, dtype=np.float32) for t in takes.values()])
        slot = np.repeat(np.arange(len(takes)), [len(t) for t in takes.values()])
        self.support_labels = np.eye(self.max_way, dtype=np.float32)[slot]
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """(B, words) probabilities of unit-length embeddings over the enrolled words."""
        if not self.labels:
            return np.zeros((len(emb), 0), dtype=np.float32)
        (logits,) = self.session.run(None, {"support": self.support, "support_labels": self.support_labels,
                                            "query": np.ascontiguousarray(emb, dtype=np.float32)})
        return _softmax(logits[:, : len(self.labels)])


class MemoryHead(_SupportSequenceHead):
    """MANN: cosine-attention read of a memory holding the takes; `fit` takes {word: (takes, D)}."""

    kind = "memory"
    graph = "memory"


class SnailHead(_SupportSequenceHead):
    """SNAIL: temporal convolutions + attention over [takes..., window]; `fit` takes {word: (takes, D)}.

    The takes enter the sequence word by word in the order of ``fit``'s dict."""

    kind = "snail"
    graph = "snail"


def class_statistics(takes: np.ndarray) -> np.ndarray:
    """(D + 2,) like training: mean take, its length (spread of the takes), log of the number of takes."""
    mean = np.asarray(takes, dtype=np.float32).mean(axis=0)
    return np.concatenate([mean, [np.linalg.norm(mean), np.log(len(takes))]]).astype(np.float32)


class MetaNetHead:
    """Meta Networks: fast per-word weights generated once at enrollment; `fit` takes {word: (takes, D)}."""

    kind = "metanet"
    open_set = False

    def __init__(self, generator: Graph, slow_weight: np.ndarray, temperature: float) -> None:
        self.session = onnx_session(generator)
        self.slow_weight = np.asarray(slow_weight, dtype=np.float32)
        self.temperature = float(temperature)
        self.labels: list[str] = []
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self.bias = np.zeros(0, dtype=np.float32)

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], graphs: dict[str, Graph]) -> "MetaNetHead":
        return cls(graphs["generator"], arrays["slow_weight"], float(arrays["temperature"]))

    def fit(self, takes: dict[str, np.ndarray]) -> "MetaNetHead":
        self.labels = list(takes)
        if not takes:
            return self
        statistics = np.stack([class_statistics(t) for t in takes.values()])
        (fast,) = self.session.run(None, {"statistics": statistics})
        self.weights, self.bias = unit(fast[:, :-1]).astype(np.float32), fast[:, -1].astype(np.float32)
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """(B, words) probabilities of unit-length embeddings over the enrolled words."""
        if not self.labels:
            return np.zeros((len(emb), 0), dtype=np.float32)
        h = unit(np.asarray(emb, dtype=np.float32) @ self.slow_weight.T)
        return _softmax(self.temperature * h @ self.weights.T + self.bias)
