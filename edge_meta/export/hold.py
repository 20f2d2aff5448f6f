"""How far under its threshold a hop may score and still let the next hops skip the encoder, per bundle.

The streaming detector keeps a hop's scores for ``hold_hops`` hops when every word scored at least
``hold_below`` under its threshold (`edge_meta.device.detector.Hold`): a word's score climbs over several 0.1 s
hops, and from that far below it does not reach its threshold before the next scored hop. How fast a score
climbs is the encoder's own. Into its peak over three hops, a training word's cosine climbs 0.14 (median) on the
tiny encoder and 0.49 on the trunk flavour; with the tiny encoder's 0.15 the trunk flavour missed 4.2 points more
words at <= 0.5 FA/h on the FSDD streams than scoring every hop (benchmarks/RESULTS.md). So the export measures
it: each calibration clip, in a quiet stream, passes the window a hop at a time and is scored against the
prototype of three other clips of its word, as enrollment makes one; the margin is the smallest on a grid at
which holding loses at most ``MAX_LOST`` of the words that scoring every hop finds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_meta.audio import read_audio
from edge_meta.corpora import Item
from edge_meta.device.detector import DetectorConfig
from edge_meta.device.takes import word_window
from edge_meta.metrics import unit

GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(19))  # 0.10 ... 1.00
MAX_LOST = 0.01
TAKES = 3  # clips in a track's prototype
QUIET = 1e-4  # the stream's room noise around a clip (about -80 dBFS), seeded


@dataclass(frozen=True)
class HoldMargin:
    below: float  # the margin: the bundle's ``hold_below``
    hops: int
    found: int  # tracks whose score passes the threshold on some hop, every hop scored
    lost: int  # of those, tracks holding with ``below`` misses

    def to_dict(self) -> dict:
        return {"hold_below": self.below, "hold_hops": self.hops, "calibration_words_found": self.found,
                "lost_by_holding": self.lost}


def score_tracks(embed: Callable[[np.ndarray], np.ndarray], items: list[Item], window: int, hop: int,
                 seed: int = 0) -> list[np.ndarray]:
    """For each clip of a word with more than ``TAKES`` clips in ``items``: its cosine to the prototype of
    ``TAKES`` other clips of the word, on every hop of a quiet stream that holds the clip once."""
    rng = np.random.default_rng(seed)
    by_word: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_word.setdefault(item.label, []).append(i)
    tracks = []
    for members in by_word.values():
        if len(members) <= TAKES:
            continue
        audio = [read_audio(items[i].path, announce=False) for i in members]
        emb = unit(embed(np.stack([word_window(x, window) for x in audio])))
        for q, clip in enumerate(audio):
            others = rng.choice([m for m in range(len(audio)) if m != q], TAKES, replace=False)
            prototype = unit(emb[others].mean(axis=0))
            lead = window + int(rng.integers(0, hop))  # the clip's phase against the hops varies
            stream = np.concatenate([np.zeros(lead, np.float32), clip, np.zeros(window, np.float32)])
            stream = stream + QUIET * rng.standard_normal(len(stream)).astype(np.float32)
            ends = np.arange(window, len(stream) + 1, hop)
            tracks.append(unit(embed(np.stack([stream[e - window : e] for e in ends]))) @ prototype)
    return tracks


def found(track: np.ndarray, threshold: float, below: float, hops: int) -> bool:
    """Whether a detector scoring ``track`` reaches ``threshold``, skipping ``hops`` hops after each scored hop
    ``below`` or more under it (below = inf: every hop scored)."""
    t = 0
    while t < len(track):
        if track[t] >= threshold:
            return True
        t += hops + 1 if track[t] < threshold - below else 1
    return False


def hold_margin(tracks: list[np.ndarray], threshold: float, hops: int) -> HoldMargin:
    """The smallest margin on ``GRID`` losing at most ``MAX_LOST`` of the tracks found with every hop scored."""
    reached = [t for t in tracks if found(t, threshold, np.inf, hops)]
    if not reached:
        raise ValueError("no calibration clip reached the threshold: too few clips of each word to calibrate the hold")
    for below in GRID:
        lost = sum(not found(t, threshold, below, hops) for t in reached)
        if lost <= MAX_LOST * len(reached):
            break
    return HoldMargin(below, hops, len(reached), lost)


def calibrate_hold(embed: Callable[[np.ndarray], np.ndarray], items: list[Item], window: int, sample_rate: int,
                   threshold: float, seed: int = 0) -> HoldMargin:
    """The margin for a bundle whose word graph is ``embed`` (model windows -> word embeddings) and whose default
    threshold is ``threshold``, at the detector's default hop and ``hold_hops``, on real clips ``items``."""
    d = DetectorConfig()
    hop = int(round(d.hop_s * sample_rate))
    return hold_margin(score_tracks(embed, items, window, hop, seed), threshold, d.hold_hops)
