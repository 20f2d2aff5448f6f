"""A linear head on a pretrained word trunk: centre, then whiten the *within-word* scatter.

A trunk trained on far more speech than this project has (Google's speech_embedding) already tells words apart;
what its pooled embedding also carries is who said them and how (voice, microphone, pace), and in a household,
where one person enrolls and another speaks, that variation is the error. Fitted on the training corpora's
words said by many speakers, the head maps each word's spread to the unit sphere (within-class covariance
normalisation, as speaker verification does with i-vectors): directions in which takes of one word vary are
shrunk, directions in which different words differ kept. Closed form, no training loop; a shrinkage toward the
average variance keeps directions the training words barely span from being blown up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_meta.errors import DataError
from edge_meta.metrics import unit


@dataclass(frozen=True)
class TrunkHead:
    mean: np.ndarray  # (D,) the training embeddings' mean
    matrix: np.ndarray  # (D, D) the within-word whitening

    def __call__(self, pooled: np.ndarray) -> np.ndarray:
        """Unit-length embeddings (N, D) of unit-length pooled trunk outputs (N, D)."""
        return unit((pooled - self.mean) @ self.matrix).astype(np.float32)


def within_word_whitening(pooled: np.ndarray, words: np.ndarray, shrink: float = 1.0,
                          unit_inputs: bool = True) -> TrunkHead:
    """The head for unit-length pooled embeddings ``pooled`` (N, D) of clips labelled ``words`` (N,): the inverse
    square root of the pooled within-word covariance plus ``shrink`` times its mean variance on the diagonal.
    ``unit_inputs=False`` fits it on ``pooled`` as given (an encoder's raw output, to fold into its last layer)."""
    x = unit(np.asarray(pooled, np.float64)) if unit_inputs else np.asarray(pooled, np.float64)
    classes, inv = np.unique(words, return_inverse=True)
    counts = np.bincount(inv)
    if np.sum(counts >= 2) < 2 or len(x) <= x.shape[1]:
        raise DataError(f"{len(x)} clips of {len(classes)} words are too few to fit a head on {x.shape[1]}-d embeddings",
                        "fit it on a corpus with more clips than dimensions, several takes of each word")
    mean = x.mean(axis=0)
    centred = x - mean
    means = np.zeros((len(classes), x.shape[1]))
    np.add.at(means, inv, centred)
    means /= counts[:, None]
    repeated = counts[inv] >= 2  # a word said once has no within-word spread
    spread = centred[repeated] - means[inv[repeated]]
    cov = spread.T @ spread / len(spread)
    cov += shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    values, vectors = np.linalg.eigh(cov)
    return TrunkHead(mean.astype(np.float32), (vectors @ np.diag(values ** -0.5) @ vectors.T).astype(np.float32))
