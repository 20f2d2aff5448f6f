"""MFCC + DTW template matching: the classic training-free keyword baseline, in numpy only.

Each clip becomes a short MFCC sequence (speech region only, cepstral mean removed) and a query
takes the label of its nearest template under dynamic time warping. A benchmark needs the DTW
cost of millions of pairs, so `dtw_distance_matrix` never loops over pairs in Python: it sorts
the sequences by length, cuts them into chunks of similar length and, for every pair of chunks,
runs the dynamic programme over anti-diagonals with each numpy operation covering all of the
chunk pairs at once (the pairs are the innermost, contiguous axis).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.fft import dct

from edge_meta.audio import speech_region
from edge_meta.frontend import FrontendSpec, LogMel

if TYPE_CHECKING:
    from tqdm import tqdm

GEMM_SIZE = 1 << 18  # multiply-adds per matrix product; OpenBLAS multithreads only above this


@lru_cache(maxsize=8)
def _logmel(spec: FrontendSpec) -> LogMel:
    return LogMel(spec)


def mfcc_sequence(x: np.ndarray, spec: FrontendSpec, n_mfcc: int = 13) -> np.ndarray:
    """(frames, n_mfcc) float32 MFCCs of the speech in ``x`` (16 kHz float32), mean-normalised.

    Trimming to the speech keeps silence from dominating the alignment cost; subtracting the
    per-utterance mean removes the microphone's channel colouring (and the gain, via c0).
    Never fewer than 2 frames, so every sequence has a well-defined alignment.
    """
    min_samples = spec.win_length + spec.hop_length
    speech = speech_region(x, spec.sample_rate)
    if len(speech) < min_samples:
        speech = x if len(x) >= min_samples else np.pad(x, (0, min_samples - len(x)))
    log_mel = _logmel(spec).log_mel_frames(speech)
    cepstra = dct(log_mel, type=2, norm="ortho", axis=1)[:, :n_mfcc]
    return (cepstra - cepstra.mean(axis=0)).astype(np.float32)


def _augmented(frames: np.ndarray, left: bool) -> np.ndarray:
    """Frames extended so one matrix product yields squared distances: [a, |a|², 1] · [-2b, 1, |b|²]."""
    norms = np.sum(frames * frames, axis=-1, keepdims=True)
    ones = np.ones_like(norms)
    parts = (frames, norms, ones) if left else (-2.0 * frames, ones, norms)
    return np.concatenate(parts, axis=-1)


def _pad(seqs: list[np.ndarray], length: int, dim: int) -> np.ndarray:
    """(length, len(seqs), dim) float64, frame-major, zero-padded: the layout `_local_costs` multiplies."""
    out = np.zeros((length, len(seqs), dim))
    for n, s in enumerate(seqs):
        out[: len(s), n] = s
    return out


def _local_costs(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(La, Lb, nb * na) float32 Euclidean frame distances for every pair of a row and a column sequence.

    ``rows`` is (La, na, d), ``cols`` (Lb, nb, d), both from `_pad`. Pair (r, c) sits at index
    c * na + r of the last axis. Squared distances come out of a float64 product (exact enough
    that identical frames give ~0, which float32 cancellation would not), then go to float32.
    The products are cut so that each has at most `GEMM_SIZE` multiply-adds: OpenBLAS runs those on
    one thread, and on a busy machine its threads otherwise wait for each other and run ~50x slower.
    """
    la, na, _ = rows.shape
    lb, nb, _ = cols.shape
    left = _augmented(rows, left=True)
    right = _augmented(cols, left=False).reshape(lb * nb, -1)
    step = max(1, GEMM_SIZE // (na * right.shape[1]))
    costs = np.empty((la, lb * nb, na), dtype=np.float32)
    squared = np.empty((step, na))
    for i in range(la):
        for s in range(0, lb * nb, step):
            part = squared[: min(step, lb * nb - s)]
            np.matmul(right[s : s + step], left[i].T, out=part)
            costs[i, s : s + step] = part
    np.maximum(costs, 0.0, out=costs)
    return np.sqrt(costs, out=costs).reshape(la, lb, nb * na)


def _dtw_ends(costs: np.ndarray, ends_i: np.ndarray, ends_j: np.ndarray) -> np.ndarray:
    """Accumulated DTW cost at cell (ends_i[p], ends_j[p]) of pair p, for all pairs at once.

    Cell (i, j) lies on anti-diagonal k = i + j and depends only on diagonals k-1 and k-2, so each
    diagonal is three whole-array numpy operations. Diagonal k of the row-major (La*Lb) grid is a
    plain slice with step Lb-1. Buffers hold row i at index i+1; index 0 is the i = -1 border (inf),
    and the cell just past each diagonal's last row is set to inf so that the next two diagonals
    read a border there, not a stale value.
    """
    la, lb, n_pairs = costs.shape
    flat = costs.reshape(la * lb, n_pairs)
    prev2, prev1, cur = (np.full((la + 1, n_pairs), np.inf, dtype=np.float32) for _ in range(3))
    ends_k = ends_i + ends_j
    result = np.empty(n_pairs, dtype=np.float32)
    for k in range(la + lb - 1):
        lo, hi = max(0, k - lb + 1), min(k, la - 1)
        diagonal = flat[k + lo * (lb - 1) : k + hi * (lb - 1) + 1 : max(lb - 1, 1)]
        target = cur[lo + 1 : hi + 2]
        if k == 0:
            target[:] = diagonal
        else:
            np.minimum(prev1[lo : hi + 1], prev1[lo + 1 : hi + 2], out=target)
            np.minimum(target, prev2[lo : hi + 1], out=target)
            target += diagonal
        if hi + 2 <= la:
            cur[hi + 2] = np.inf
        done = np.flatnonzero(ends_k == k)
        result[done] = cur[ends_i[done] + 1, done]
        prev2, prev1, cur = prev1, cur, prev2
    return result


def _chunk_pair_dtw(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """(len(a), len(b)) length-normalised DTW costs between two chunks of sequences."""
    len_a = np.array([len(s) for s in a])
    len_b = np.array([len(s) for s in b])
    dim = a[0].shape[1]
    costs = _local_costs(_pad(a, len_a.max(), dim), _pad(b, len_b.max(), dim))
    ends_i = np.tile(len_a - 1, len(b))
    ends_j = np.repeat(len_b - 1, len(a))
    total = _dtw_ends(costs, ends_i, ends_j) / (ends_i + ends_j + 2)
    return total.reshape(len(b), len(a)).T


def _chunks(lengths: np.ndarray, size: int) -> list[np.ndarray]:
    """Indices sorted by length, cut into runs of ``size``: each chunk pads to a similar length."""
    order = np.argsort(lengths, kind="stable")
    return [order[s : s + size] for s in range(0, len(order), size)]


def dtw_distance_matrix(
    a: list[np.ndarray], b: list[np.ndarray] | None = None, batch: int = 4096, progress: bool = False
) -> np.ndarray:
    """(len(a), len(b)) float32 DTW costs between (frames, dim) sequences; ``b=None`` compares a with itself.

    Local cost is the Euclidean frame distance, steps are (i-1, j), (i, j-1) and (i-1, j-1), and
    the path cost is divided by len_i + len_j so that long and short words compare. With b=None the
    result is symmetric with a zero diagonal and each pair is computed once (both ways only in the
    blocks on the diagonal, a 1/n_blocks share). ``batch`` is the number of pairs per vectorised
    block; memory is about batch * max_len² * 4 bytes.
    """
    symmetric = b is None
    b = a if b is None else b
    if any(len(s) == 0 for s in (*a, *b)):
        raise ValueError("DTW needs sequences of at least one frame")
    size = max(1, math.isqrt(batch))
    chunks_a = _chunks(np.array([len(s) for s in a]), size)
    chunks_b = chunks_a if symmetric else _chunks(np.array([len(s) for s in b]), size)
    jobs = [(u, v) for u in range(len(chunks_a)) for v in range(len(chunks_b)) if not symmetric or u <= v]
    out = np.zeros((len(a), len(b)), dtype=np.float32)
    bar = _progress_bar(sum(len(chunks_a[u]) * len(chunks_b[v]) for u, v in jobs), progress)
    for u, v in jobs:
        rows, cols = chunks_a[u], chunks_b[v]
        block = _chunk_pair_dtw([a[r] for r in rows], [b[c] for c in cols])
        if symmetric and u == v:
            block = (block + block.T) / 2  # the two orders differ by rounding only
        out[np.ix_(rows, cols)] = block
        if symmetric:
            out[np.ix_(cols, rows)] = block.T
        bar.update(block.size)
    bar.close()
    if symmetric:
        np.fill_diagonal(out, 0.0)
    return out


class _NoBar:
    """Stands in for a tqdm bar when no progress is wanted."""

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool) -> tqdm | _NoBar:
    """A tqdm bar over pairs when asked for (tqdm is imported only then), else a no-op."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="pair", unit_scale=True, desc="DTW")
