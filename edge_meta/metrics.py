"""Few-shot and verification metrics shared by training validation, export and the benchmarks.

Torch-free. The few-shot protocol is the one in DESIGN.md: cosine to the L2-normalised mean of
the support embeddings; accuracy averaged over seeded episodes with a 95% interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge_meta.episodes import Episode, EpisodeSampler


@dataclass(frozen=True)
class Estimate:
    mean: float
    ci95: float  # half-width: 1.96 * sd / sqrt(n)
    n: int

    def pct(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f}"


def mean_ci(values: np.ndarray | list[float]) -> Estimate:
    v = np.asarray(values, dtype=np.float64)
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return Estimate(float(v.mean()), 1.96 * sd / math.sqrt(max(1, len(v))), len(v))


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def prototypes(emb: np.ndarray, labels: np.ndarray, n_way: int) -> np.ndarray:
    """(n_way, D) unit-length means of unit-length embeddings."""
    protos = np.zeros((n_way, emb.shape[1]))
    np.add.at(protos, labels, unit(emb))
    return unit(protos)


def prototype_scores(emb: np.ndarray, ep: Episode) -> np.ndarray:
    """(n_query, n_way) cosine of each query to each class prototype."""
    return unit(emb[ep.query]) @ prototypes(emb[ep.support], ep.support_y, len(ep.classes)).T


EpisodeScorer = Callable[[Episode], np.ndarray]  # episode -> (n_query, n_way) scores, higher = more alike


def episode_accuracy(scorer: EpisodeScorer, sampler: EpisodeSampler, episodes: int) -> Estimate:
    """Mean accuracy (95% CI) of a scorer over ``episodes`` episodes drawn from ``sampler``."""
    accs = []
    for _ in range(episodes):
        ep = sampler.sample()
        accs.append(float(np.mean(scorer(ep).argmax(axis=1) == ep.query_y)))
    return mean_ci(accs)


def fewshot_accuracy(emb: np.ndarray, labels: np.ndarray, speakers: np.ndarray, n_way: int, k_shot: int,
                     q_query: int, episodes: int, mode: str = "any", seed: int = 0) -> Estimate:
    """Prototype-head accuracy of embeddings on seeded episodes."""
    sampler = EpisodeSampler(labels, speakers, n_way, k_shot, q_query, mode, seed)
    return episode_accuracy(lambda ep: prototype_scores(emb, ep), sampler, episodes)


def centred_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine after removing each set's mean: agreement that a shared offset cannot fake."""
    return np.sum(unit(a - a.mean(0)) * unit(b - b.mean(0)), axis=1)


def equal_error_rate(target: np.ndarray, nontarget: np.ndarray) -> float:
    """EER of scores (higher = more likely target): where false rejects equal false accepts."""
    scores = np.concatenate([target, nontarget])
    is_target = np.concatenate([np.ones(len(target)), np.zeros(len(nontarget))])
    order = np.argsort(-scores, kind="stable")
    is_target = is_target[order]
    far = np.cumsum(1 - is_target) / max(1, len(nontarget))
    frr = 1 - np.cumsum(is_target) / max(1, len(target))
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def poisson_upper(events: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence limit of a Poisson rate's mean from ``events`` counted (exact, by bisection).

    A false-accept rate read from a few hours of audio rests on a handful of events: 2 false accepts in 4 h
    is 0.5 FA/h measured, but only "below 1.6 FA/h" with 95% confidence."""
    if events < 0:
        raise ValueError("events must be >= 0")

    def cdf(lam: float) -> float:  # P(X <= events) for mean lam
        term = total = math.exp(-lam)
        for k in range(1, events + 1):
            term *= lam / k
            total += term
        return total

    lo, hi = 0.0, events + 10.0 * math.sqrt(events + 1) + 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1.0 - confidence else (lo, mid)
    return (lo + hi) / 2
