"""The second look at a candidate detection: does the audio line up, frame by frame, with one of the word's takes?

The encoder's pooled embedding says a window sounds *like* the word; from five takes its prototype is
noisy, and on a stream of other speech it fires on look-alike words tens of times an hour. Template
matching is the classic few-shot keyword spotter and fails differently: it compares the cepstral
envelope frame by frame in time order, so another word, another voice or noise rarely aligns well.
It runs only on candidates that already passed the encoder's threshold (a few a minute), so it costs
nothing per hop.

Each take becomes a template: the cepstra (c1..c12 of the log-mel frames the detector already has) of
its speech region. No cepstral mean is removed: takes and stream come from the same microphone, and on
the FSDD streams removing it cost more true detections than it saved false ones. A candidate's window
is searched for the best alignment of each template (subsequence DTW: the template must be matched
whole, the window may start and end anywhere), and the cost of the best template is divided by the
word's own scale: the median cost of each take matched against the other takes, held within what one
speaker's takes of a word give (``SCALES``): takes from several voices lie further apart than a voice
lies from other words, and an allowance that grew with them stopped filtering anything; near-copies of
one take would make it zero, and nothing would pass. A candidate passes
when that ratio is at most ``max_ratio``, plus ``slope`` times how far the encoder's score is above
the word's threshold: a word said clearly but in noise, or louder or softer than its takes, aligns
less well, and a strong encoder score is evidence enough for the allowance (measured both ways in
benchmarks/RESULTS.md). A word with a single take (no scale) or without kept audio is not checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_meta.audio import fix_length
from edge_meta.device.takes import spoken_part
from edge_meta.frontend import LogMel

N_CEPSTRA = 12  # c1..c12; c0 (the level) is left out
FLOOR_NATS = 40.0 * math.log(10.0) / 10.0  # log-mel is floored 40 dB under the loudest frame of a take or window
MIN_FRAMES = 3  # a window shorter than this (the stream's first hops) cannot hold a word
MAX_TAKE_WINDOWS = 2  # a take is aligned on at most this many model windows of it (enrollment allows ~1.35)
SCALES = (1.9, 4.4)  # bounds of a word's scale: one FSDD speaker's 5 takes of a digit give 1.96-4.34 (60 words,
# none bounded); five Speech Commands speakers' takes of a word give up to 7.1 (median 4.2)


def passes(ratio: float, margin: float, max_ratio: float, slope: float) -> bool:
    """The acceptance rule: a candidate ``margin`` above its encoder threshold may align ``slope * margin`` worse."""
    return ratio <= max_ratio + slope * max(margin, 0.0)


def dct_matrix(n_mels: int, n_out: int = N_CEPSTRA) -> np.ndarray:
    """(n_mels, n_out) orthonormal DCT-II basis for c1..c_n_out (as scipy.fft.dct(..., norm="ortho"))."""
    k = np.arange(1, n_out + 1)[None, :]
    n = np.arange(n_mels)[:, None]
    return (math.sqrt(2.0 / n_mels) * np.cos(math.pi * k * (2 * n + 1) / (2 * n_mels))).astype(np.float32)


def subsequence_cost(template: np.ndarray, window: np.ndarray) -> float:
    """Cost of the best alignment of the whole ``template`` (T, d) inside ``window`` (W, d), per template frame.

    Each template frame moves the window on by 0, 1 or 2 frames, so the spoken word may be faster than the
    take or up to twice as slow; the window's start and end are free. Local cost: Euclidean distance.
    """
    return float(subsequence_costs([template], window)[0])


@dataclass(frozen=True)
class Stacked:
    """Templates stacked for aligning together (the shorter ones zero-padded), with their frames' squared norms:
    built once per word, not per candidate."""

    frames: np.ndarray  # (K, T, d)
    lengths: np.ndarray  # (K,)
    norms: np.ndarray  # (K, T)

    @classmethod
    def of(cls, templates: list[np.ndarray]) -> "Stacked":
        lengths = np.array([len(t) for t in templates])
        frames = np.zeros((len(templates), lengths.max(), templates[0].shape[1]), dtype=np.float32)
        for k, t in enumerate(templates):
            frames[k, : len(t)] = t
        return cls(frames, lengths, np.sum(frames * frames, 2))


def subsequence_costs(templates: Stacked | list[np.ndarray], window: np.ndarray) -> np.ndarray:
    """`subsequence_cost` of each template in one pass: the templates are aligned together, row by row, so a
    word's five takes cost one loop of numpy calls instead of five."""
    t = templates if isinstance(templates, Stacked) else Stacked.of(templates)
    if len(window) == 0:
        return np.full(len(t.lengths), math.inf)
    costs = np.sqrt(np.maximum(t.norms[:, :, None] - 2.0 * t.frames @ window.T
                               + np.sum(window * window, 1)[None, None, :], 0.0))  # (K, T, W)
    acc = costs[:, 0].copy()
    best = np.full(len(t.lengths), math.inf)
    for i in range(t.lengths.max()):
        if i:  # window frame j is reached from j, j-1 or j-2 of the previous template frame
            reach = acc.copy()
            np.minimum(reach[:, 1:], acc[:, :-1], out=reach[:, 1:])
            np.minimum(reach[:, 2:], acc[:, :-2], out=reach[:, 2:])
            acc = np.add(costs[:, i], reach, out=reach)
        done = t.lengths == i + 1
        if done.any():
            best[done] = acc[done].min(axis=1)
    return best / t.lengths


class TemplateVerifier:
    """Per word: its takes' templates and its scale; `ratio` of a window's frames, `accepts` by `passes`."""

    def __init__(self, logmel: LogMel, takes: list[list[np.ndarray] | None], max_ratio: float, slope: float) -> None:
        """``takes[w]``: word w's enrollment audio (16 kHz float32), or None when it was not kept."""
        self.logmel, self.max_ratio, self.slope = logmel, max_ratio, slope
        self.basis = dct_matrix(logmel.spec.n_mels)
        takes = [None if not t else [self._bounded(x) for x in t] for t in takes]
        templates = [None if not t else [self.template(x) for x in t] for t in takes]
        self.scales = [self._scale(t, tmpl) if tmpl else None for t, tmpl in zip(takes, templates)]
        self.stacked = [Stacked.of(tmpl) if tmpl else None for tmpl in templates]

    def _bounded(self, take: np.ndarray) -> np.ndarray:
        """At most ``MAX_TAKE_WINDOWS`` model windows of a take (its loudest): a keyword fits in one, and aligning
        the takes costs the square of their length (five imported 60 s takes asked 1.2 GB at every start)."""
        cap = MAX_TAKE_WINDOWS * self.logmel.spec.window_samples
        return take if len(take) <= cap else fix_length(take, cap)

    def cepstra(self, log_mel: np.ndarray) -> np.ndarray:
        """c1..c12 of log-mel frames floored 40 dB under their loudest: the quiet parts of a word then look the
        same over digital silence (a synthetic or gated take) and over a room's noise floor."""
        return np.maximum(log_mel, log_mel.max() - FLOOR_NATS) @ self.basis

    def template(self, take: np.ndarray) -> np.ndarray:
        frames = self.logmel.log_mel_frames(spoken_part(take, self.logmel.spec.sample_rate))
        return self.cepstra(frames) if len(frames) else np.zeros((1, N_CEPSTRA), np.float32)

    def _scale(self, takes: list[np.ndarray], templates: list[np.ndarray]) -> float | None:
        """Median over takes of its best match among the other takes: how far this word's own takes lie apart,
        within ``SCALES``."""
        if len(takes) < 2:
            return None
        own = [subsequence_costs([t for j, t in enumerate(templates) if j != i],
                                 self.cepstra(self.logmel.log_mel_frames(x))).min() for i, x in enumerate(takes)]
        return float(np.clip(np.median(own), *SCALES))

    def checks(self, word: int) -> bool:
        return self.scales[word] is not None

    def ratio(self, word: int, log_mel: np.ndarray) -> float:
        """Best template cost in ``log_mel`` (frames, n_mels) over the word's scale (<= 1: as close as its own takes)."""
        if len(log_mel) < MIN_FRAMES:
            return math.inf
        frames = self.cepstra(log_mel)
        return float(subsequence_costs(self.stacked[word], frames).min()) / self.scales[word]

    def accepts(self, word: int, log_mel: np.ndarray, margin: float) -> bool:
        return not self.checks(word) or passes(self.ratio(word, log_mel), margin, self.max_ratio, self.slope)
