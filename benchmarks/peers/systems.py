"""A system under test = how it compares clips (a matcher) + what it costs.

The project's protocols (`edge_meta.bench.protocols`) take embeddings and a device-head factory.
An embedding system passes unit-length embeddings and the prototype head. A template system
(DTW) has no embedding: it passes each clip's *index* as a 1-d "embedding" and a head that looks
the query-to-template DTW costs up in a precomputed matrix, so both kinds run the very same
episodes through the very same protocol code.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_meta.bench.dtw import dtw_distance_matrix
from edge_meta.device.heads import PrototypeHead
from edge_meta.metrics import unit

MATCH_WORDS, MATCH_TAKES, MATCH_RUNS = 10, 5, 30  # enrolled words x takes a query is matched against


class TemplateHead:
    """Nearest template: a word's score is minus the smallest DTW cost to any of its takes."""

    open_set = True

    def __init__(self, dist: np.ndarray) -> None:
        self.dist = dist
        self.templates: list[np.ndarray] = []

    def fit(self, takes: dict[str, np.ndarray]) -> "TemplateHead":
        self.templates = [t[:, 0].astype(int) for t in takes.values()]
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        rows = self.dist[emb[:, 0].astype(int)]
        return np.stack([-rows[:, t].min(axis=1) for t in self.templates], axis=1)


@dataclass
class Matcher:
    """What the protocols see of a system on one clip set."""

    emb: np.ndarray  # (N, D) unit embeddings, or (N, 1) clip indices for a template system
    make_head: Callable[[], object]
    enroll_scores: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (enroll idx, trial idx) -> trial scores
    match_ms: float = float("nan")  # one query against MATCH_WORDS x MATCH_TAKES enrolled takes


def embedding_matcher(emb: np.ndarray) -> Matcher:
    """Cosine to the normalised mean of unit embeddings (the device's prototype head)."""
    e = unit(emb.astype(np.float64))

    def enroll_scores(enroll: np.ndarray, trials: np.ndarray) -> np.ndarray:
        return e[trials] @ unit(e[enroll].mean(0))

    head = PrototypeHead().fit({str(w): e[w * MATCH_TAKES : (w + 1) * MATCH_TAKES] for w in range(MATCH_WORDS)})
    return Matcher(e, PrototypeHead, enroll_scores, _median_ms(lambda: head.scores(e[:1])))


def template_matcher(seqs: list[np.ndarray], normalise: bool = False) -> Matcher:
    """DTW over per-frame features; ``normalise`` makes frames unit length first (embedding frames,
    where the direction carries the meaning: Euclidean on unit vectors is sqrt(2 - 2 cos))."""
    if normalise:
        seqs = [unit(s) for s in seqs]
    dist = dtw_distance_matrix(seqs)

    def enroll_scores(enroll: np.ndarray, trials: np.ndarray) -> np.ndarray:
        return -dist[np.ix_(trials, enroll)].mean(axis=1)

    templates = seqs[: MATCH_WORDS * MATCH_TAKES]
    match = _median_ms(lambda: dtw_distance_matrix(seqs[-1:], templates))
    return Matcher(np.arange(len(seqs), dtype=np.float64)[:, None], lambda: TemplateHead(dist), enroll_scores, match)


def _median_ms(fn: Callable[[], object]) -> float:
    fn()
    times = []
    for _ in range(MATCH_RUNS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


@dataclass
class System:
    """One row of the table: a name, its matchers on a clip subset and its costs."""

    name: str
    is_peer: bool
    matchers: Callable[[np.ndarray], tuple[Matcher, Matcher]]  # clip indices -> (word, voice) matchers
    cost: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
