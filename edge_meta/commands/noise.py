"""Noisy word detections for benchmarks and tests: what a keyword detector makes of a spoken command.

Rates are parameters (the word benchmark measures real ones): each heard unit is missed with
probability ``deletion``, else reported as a random other label with probability ``substitution``;
before each unit a spurious label is inserted with probability ``insertion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge_meta.commands.decoding import WordEvent


@dataclass(frozen=True)
class NoiseRates:
    substitution: float = 0.0
    deletion: float = 0.0
    insertion: float = 0.0

    def __str__(self) -> str:
        return f"sub {self.substitution:.0%} / del {self.deletion:.0%} / ins {self.insertion:.0%}"


def noisy_detections(units: Sequence[str], labels: Sequence[str], rates: NoiseRates, rng: np.random.Generator,
                     score: float = 0.5, spacing_s: float = 0.6, start_t: float = 0.0) -> list[WordEvent]:
    """Detections of a phrase's units with injected errors, one every ``spacing_s`` seconds, all scored ``score``."""
    heard: list[str] = []
    for unit in units:
        if rng.random() < rates.insertion:
            heard.append(str(labels[rng.integers(len(labels))]))
        if rng.random() < rates.deletion:
            continue
        if rng.random() < rates.substitution and len(labels) > 1:
            others = [x for x in labels if x != unit]
            heard.append(str(others[rng.integers(len(others))]))
        else:
            heard.append(unit)
    return [WordEvent(label, score, start_t + k * spacing_s) for k, label in enumerate(heard)]
