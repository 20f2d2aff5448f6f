"""The last-layer head of the optimisation-based learners (MAML, FOMAML, Reptile, Meta-SGD, ANIL).

Enrollment fine-tunes a linear layer on the word embedding, in numpy with analytic gradients, the way
the learner's inner loop does in meta-training (`edge_meta.train.learners.inner_loop`):

- init: each word's row of W is the unit-length mean of its unit-length takes, biases are 0 (so
  before fine-tuning this is the prototype head);
- ``steps`` gradient steps on the mean softmax cross-entropy of ``temperature * (W z + b)`` over all
  takes, each weight column with its own step size (``inner_lr_w``, (D,)) and the biases with
  ``inner_lr_b``.

Any number of words works: nothing learned depends on it. With one word the softmax has no gradient
and the head stays the prototype head. `scores` returns ``W z + b``, the logits divided by the
temperature: cosines to the prototypes before fine-tuning, so they stay on the scale of a cosine
threshold, and a word's score does not depend on the other words' scores as a softmax would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_meta.metrics import unit

if TYPE_CHECKING:  # numpy-only heads: the graph type is named, not imported
    from edge_meta.device.backends import Graph


class LastLayerHead:
    """A linear layer fine-tuned on the takes from the prototype init; `fit` takes {word: (takes, D)}."""

    kind = "last_layer"
    open_set = True

    def __init__(self, inner_lr_w: np.ndarray, inner_lr_b: float, steps: int, temperature: float) -> None:
        self.inner_lr_w = np.asarray(inner_lr_w, dtype=np.float32)
        self.inner_lr_b = np.float32(inner_lr_b)
        self.steps = int(steps)
        self.temperature = np.float32(temperature)
        self.labels: list[str] = []
        self.weight = np.zeros((0, len(self.inner_lr_w)), dtype=np.float32)
        self.bias = np.zeros(0, dtype=np.float32)

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], graphs: dict[str, Graph]) -> "LastLayerHead":
        """Built from the bundle's ``word.*`` arrays (prefix stripped); no ONNX graphs are needed."""
        return cls(arrays["inner_lr_w"], float(arrays["inner_lr_b"]), int(arrays["steps"]), float(arrays["temperature"]))

    def fit(self, takes: dict[str, np.ndarray]) -> "LastLayerHead":
        self.labels = list(takes)
        if not takes:
            self.weight = np.zeros((0, len(self.inner_lr_w)), dtype=np.float32)
            self.bias = np.zeros(0, dtype=np.float32)
            return self
        z = np.concatenate([unit(t) for t in takes.values()]).astype(np.float32)
        y = np.repeat(np.arange(len(takes)), [len(t) for t in takes.values()])
        onehot = np.eye(len(takes), dtype=np.float32)[y]
        w = np.stack([unit(unit(t).mean(0)) for t in takes.values()]).astype(np.float32)
        b = np.zeros(len(takes), dtype=np.float32)
        for _ in range(self.steps):
            logits = self.temperature * (z @ w.T + b)
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            g = self.temperature * (p - onehot) / len(z)  # d(mean cross-entropy) / d(scores)
            w = w - self.inner_lr_w * (g.T @ z)
            b = b - self.inner_lr_b * g.sum(0)
        self.weight, self.bias = w, b
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """(B, words) scores ``W z + b`` of unit-length embeddings (logits / temperature)."""
        return emb @ self.weight.T + self.bias
