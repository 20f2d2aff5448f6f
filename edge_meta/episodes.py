"""N-way K-shot episodes over indexed clips, seeded, with speaker-aware modes.

Modes:
- ``any``: support and query drawn at random from each class;
- ``own``: one speaker says everything in the episode (a user enrolling and using their own words);
- ``household``: speaker A gives the support, a different speaker B the queries;
- ``disjoint``: per class, query speakers never appear in that class's support (training for
  speaker-independent word embeddings on corpora where a speaker says each word only a few times).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

MODES = ("any", "own", "household", "disjoint")


@dataclass(frozen=True)
class Episode:
    support: np.ndarray  # indices into the clip array, class-major (n_way * k_shot)
    support_y: np.ndarray  # 0..n_way-1
    query: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray  # the class ids behind 0..n_way-1


class EpisodeSampler:
    """Draws episodes from per-clip class and speaker ids."""

    def __init__(
        self,
        labels: Sequence[int],
        speakers: Sequence[int],
        n_way: int,
        k_shot: int,
        q_query: int,
        mode: str = "any",
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown episode mode {mode!r}; choose one of {MODES}")
        self.labels = np.asarray(labels)
        self.speakers = np.asarray(speakers)
        self.n_way, self.k_shot, self.q_query, self.mode = n_way, k_shot, q_query, mode
        self.rng = np.random.default_rng(seed)
        self.by_class: dict[int, np.ndarray] = {}
        self.by_class_speaker: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
        for c in np.unique(self.labels):
            idx = np.flatnonzero(self.labels == c)
            self.by_class[int(c)] = idx
            for s in np.unique(self.speakers[idx]):
                self.by_class_speaker[int(c)][int(s)] = idx[self.speakers[idx] == s]
        self._check_feasible()

    def _check_feasible(self) -> None:
        need = self.k_shot + self.q_query
        if self.mode == "any":
            ok = sum(len(v) >= need for v in self.by_class.values())
        elif self.mode == "disjoint":
            ok = sum(len(self._disjoint_speaker_split(c, probe=True)) > 0 for c in self.by_class)
        else:
            ok = max((len(self._classes_of(s, need if self.mode == "own" else self.k_shot)) for s in self._speakers()), default=0)
        if ok < self.n_way:
            raise ValueError(
                f"{self.mode} episodes need {self.n_way} classes with {need} clips each; only {ok} qualify"
            )

    def _speakers(self) -> list[int]:
        return sorted({s for per in self.by_class_speaker.values() for s in per})

    def _classes_of(self, speaker: int, n: int) -> list[int]:
        return [c for c, per in self.by_class_speaker.items() if len(per.get(speaker, ())) >= n]

    def _disjoint_speaker_split(self, c: int, probe: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """Speakers of class c that can give k support clips while others give q queries."""
        per = self.by_class_speaker[c]
        total = len(self.by_class[c])
        return [(per[s], s) for s in per if len(per[s]) >= self.k_shot and total - len(per[s]) >= self.q_query]

    def sample(self) -> Episode:
        draw = {"any": self._any, "own": self._own, "household": self._household, "disjoint": self._disjoint}
        return draw[self.mode]()

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    def _pick(self, idx: np.ndarray, n: int) -> np.ndarray:
        return self.rng.choice(idx, size=n, replace=False)

    def _pack(self, classes: list[int], support: list[np.ndarray], query: list[np.ndarray]) -> Episode:
        k, q = self.k_shot, self.q_query
        return Episode(
            support=np.concatenate(support),
            support_y=np.repeat(np.arange(len(classes)), k),
            query=np.concatenate(query),
            query_y=np.repeat(np.arange(len(classes)), q),
            classes=np.asarray(classes),
        )

    def _any(self) -> Episode:
        need = self.k_shot + self.q_query
        eligible = [c for c, v in self.by_class.items() if len(v) >= need]
        classes = [int(c) for c in self.rng.choice(eligible, self.n_way, replace=False)]
        picks = [self._pick(self.by_class[c], need) for c in classes]
        return self._pack(classes, [p[: self.k_shot] for p in picks], [p[self.k_shot :] for p in picks])

    def _own(self) -> Episode:
        need = self.k_shot + self.q_query
        speakers = [s for s in self._speakers() if len(self._classes_of(s, need)) >= self.n_way]
        s = int(self.rng.choice(speakers))
        classes = [int(c) for c in self.rng.choice(self._classes_of(s, need), self.n_way, replace=False)]
        picks = [self._pick(self.by_class_speaker[c][s], need) for c in classes]
        return self._pack(classes, [p[: self.k_shot] for p in picks], [p[self.k_shot :] for p in picks])

    def _household(self) -> Episode:
        speakers = self._speakers()
        while True:
            a, b = (int(v) for v in self.rng.choice(speakers, 2, replace=False))
            common = [c for c in self._classes_of(a, self.k_shot) if c in set(self._classes_of(b, self.q_query))]
            if len(common) >= self.n_way:
                break
        classes = [int(c) for c in self.rng.choice(common, self.n_way, replace=False)]
        support = [self._pick(self.by_class_speaker[c][a], self.k_shot) for c in classes]
        query = [self._pick(self.by_class_speaker[c][b], self.q_query) for c in classes]
        return self._pack(classes, support, query)

    def _disjoint(self) -> Episode:
        eligible = [c for c in self.by_class if self._disjoint_speaker_split(c)]
        classes = [int(c) for c in self.rng.choice(eligible, self.n_way, replace=False)]
        support, query = [], []
        for c in classes:
            options = self._disjoint_speaker_split(c)
            own, s = options[self.rng.integers(len(options))]
            support.append(self._pick(own, self.k_shot))
            others = self.by_class[c][self.speakers[self.by_class[c]] != s]
            query.append(self._pick(others, self.q_query))
        return self._pack(classes, support, query)
