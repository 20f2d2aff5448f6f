"""The evaluation protocols of DESIGN.md, for any device head (torch-free).

A *head factory* makes a fresh device head (`edge_meta.device.heads`); the protocols fit it on
support embeddings and score queries, exactly as the device would after enrollment:
- few-shot closed set (own speaker / household), 10-way, k support and 5 queries per word;
- open set: 5 enrolled words, queries of all 10; accuracy on known words at 1% and 5% of
  unknown-word queries accepted, and the AUROC of known-vs-unknown by the best word's score;
- voice: speaker verification EER with 3 enrollment utterances (cosine to their normalised
  mean), text-independent ("any word") and same-word, as the peers were measured.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
from scipy.stats import rankdata

from edge_meta.episodes import Episode, EpisodeSampler
from edge_meta.metrics import Estimate, equal_error_rate, episode_accuracy, unit


class Head(Protocol):
    def fit(self, takes: dict[str, np.ndarray]) -> "Head": ...

    def scores(self, emb: np.ndarray) -> np.ndarray: ...


HeadFactory = Callable[[], Head]


def fit_episode(make_head: HeadFactory, emb: np.ndarray, ep: Episode) -> np.ndarray:
    """(n_query, n_way) head scores for an episode's queries after fitting on its support."""
    head = make_head().fit({str(c): emb[ep.support[ep.support_y == c]] for c in range(len(ep.classes))})
    return head.scores(emb[ep.query])


def fewshot(make_head: HeadFactory, emb: np.ndarray, labels: np.ndarray, speakers: np.ndarray, k: int,
            mode: str, episodes: int, seed: int = 0, n_way: int = 10, q: int = 5) -> Estimate:
    sampler = EpisodeSampler(labels, speakers, n_way, k, q, mode, seed)
    return episode_accuracy(lambda ep: fit_episode(make_head, emb, ep), sampler, episodes)


def open_set(make_head: HeadFactory, emb: np.ndarray, labels: np.ndarray, speakers: np.ndarray,
             episodes: int, seed: int = 0, known: int = 5, k: int = 5, q: int = 5) -> dict[str, float]:
    """Own-speaker episodes over all 10 words; the first ``known`` classes of each are enrolled."""
    sampler = EpisodeSampler(labels, speakers, len(np.unique(labels)), k, q, "own", seed)
    best, correct, is_known = [], [], []
    for _ in range(episodes):
        ep = sampler.sample()
        enrolled = ep.support_y < known
        sub = Episode(ep.support[enrolled], ep.support_y[enrolled], ep.query, ep.query_y, ep.classes[:known])
        s = fit_episode(make_head, emb, sub)
        best.append(s.max(1))
        correct.append(s.argmax(1) == ep.query_y)
        is_known.append(ep.query_y < known)
    best, correct, is_known = (np.concatenate(v) for v in (best, correct, is_known))
    out = {"auroc": auroc(best[is_known], best[~is_known])}
    for far in (0.01, 0.05):
        threshold = np.quantile(best[~is_known], 1.0 - far)
        out[f"known acc @ {far:.0%} FA"] = float(np.mean(correct[is_known] & (best[is_known] > threshold)))
    return out


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


Trials = tuple[np.ndarray, np.ndarray]  # (target scores, non-target scores)


def verification_trials(enroll_scores: Callable[[np.ndarray, np.ndarray], np.ndarray], labels: np.ndarray,
                        speakers: np.ndarray, seed: int = 0, draws_any: int = 50, draws_word: int = 10,
                        n_enroll: int = 3) -> dict[str, Trials]:
    """Speaker-verification trials for any enrollment scorer ``enroll_scores(enroll_idx, trial_idx) -> scores``:
    ``draws_any`` random enrollments per speaker against every other utterance ("any word"), and ``draws_word``
    enrollments per speaker and word against that word's other utterances ("same word")."""
    rng = np.random.default_rng(seed)
    everyone = np.arange(len(labels))
    target, nontarget = [], []
    for s in np.unique(speakers):
        mine = np.flatnonzero(speakers == s)
        if len(mine) <= n_enroll:
            continue  # nothing left to trial against this speaker's enrollment
        for _ in range(draws_any):
            enroll = rng.choice(mine, n_enroll, replace=False)
            trials = np.setdiff1d(everyone, enroll)
            scores = enroll_scores(enroll, trials)
            target.append(scores[speakers[trials] == s])
            nontarget.append(scores[speakers[trials] != s])
    out = {"any word": (np.concatenate(target), np.concatenate(nontarget))}
    if draws_word == 0:
        return out
    target, nontarget = [], []
    for s in np.unique(speakers):
        for w in np.unique(labels):
            mine = np.flatnonzero((speakers == s) & (labels == w))
            if len(mine) <= n_enroll:
                continue
            for _ in range(draws_word):
                enroll = rng.choice(mine, n_enroll, replace=False)
                trials = np.setdiff1d(np.flatnonzero(labels == w), enroll)
                scores = enroll_scores(enroll, trials)
                target.append(scores[speakers[trials] == s])
                nontarget.append(scores[speakers[trials] != s])
    out["same word"] = (np.concatenate(target), np.concatenate(nontarget))
    return out


def speaker_eer(emb: np.ndarray, labels: np.ndarray, speakers: np.ndarray, seed: int = 0,
                draws_any: int = 50, draws_word: int = 10, n_enroll: int = 3) -> dict[str, float]:
    """Verification EER (text-independent and same-word) with ``n_enroll`` enrollment utterances, scored by
    the cosine to the normalised mean of the enrollment embeddings."""
    emb = unit(emb)
    trials = verification_trials(lambda enroll, trial: emb[trial] @ unit(emb[enroll].mean(0)), labels, speakers,
                                 seed, draws_any, draws_word, n_enroll)
    return {f"eer {kind}": equal_error_rate(*t) for kind, t in trials.items()}
