"""Every protocol on one clip set for one system, plus the raw scores behind the DET curves.

The reported numbers come from `edge_meta.bench.protocols` (few-shot, open set). Speaker
verification and the open-set DET need the individual trial scores, which those functions keep to
themselves, and a template system needs its own enrollment score; `protocols.verification_trials`
takes any enrollment scorer, and `open_set_trials` draws exactly the same trials as
`protocols.open_set` (tests/test_peers.py checks that they agree to the last digit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_meta.bench.protocols import HeadFactory, Trials, fewshot, fit_episode, open_set, verification_trials
from edge_meta.episodes import Episode, EpisodeSampler
from edge_meta.metrics import Estimate, equal_error_rate

from .datasets import ClipSet
from .systems import Matcher

@dataclass
class SetResult:
    fewshot: dict[str, Estimate] = field(default_factory=dict)  # "own 1-shot" -> accuracy
    open_set: dict[str, float] = field(default_factory=dict)
    eer: dict[str, float] = field(default_factory=dict)
    det: dict[str, Trials] = field(default_factory=dict)


def open_set_trials(make_head: HeadFactory, emb: np.ndarray, labels: np.ndarray, speakers: np.ndarray,
                    episodes: int, seed: int = 0, known: int = 5, k: int = 5, q: int = 5) -> Trials:
    """Keyword detection trials of `protocols.open_set`'s episodes: a known word's query is a target
    scored by its best word's score when that word is right (else -inf: a miss at any threshold);
    an unknown word's query is a non-target scored by its best score."""
    sampler = EpisodeSampler(labels, speakers, len(np.unique(labels)), k, q, "own", seed)
    target, nontarget = [], []
    for _ in range(episodes):
        ep = sampler.sample()
        enrolled = ep.support_y < known
        s = fit_episode(make_head, emb, Episode(ep.support[enrolled], ep.support_y[enrolled], ep.query, ep.query_y,
                                                ep.classes[:known]))
        best, is_known = s.max(1), ep.query_y < known
        target.append(np.where(s.argmax(1) == ep.query_y, best, -np.inf)[is_known])
        nontarget.append(best[~is_known])
    return np.concatenate(target), np.concatenate(nontarget)


def evaluate(word: Matcher, voice: Matcher, clips: ClipSet, episodes: int, seed: int) -> SetResult:
    labels, speakers = clips.labels, clips.speakers
    out = SetResult()
    for mode, k, q in clips.fewshot:
        out.fewshot[f"{mode} {k}-shot"] = fewshot(word.make_head, word.emb, labels, speakers, k, mode, episodes, seed,
                                                  q=q)
    if clips.full:
        out.open_set = open_set(word.make_head, word.emb, labels, speakers, episodes, seed)
        out.det["keyword open set"] = open_set_trials(word.make_head, word.emb, labels, speakers, episodes, seed)
        for name, trials in verification_trials(voice.enroll_scores, labels, speakers, seed).items():
            out.eer[f"EER {name}"] = equal_error_rate(*trials)
            out.det[f"speaker, {name}"] = trials
    return out
