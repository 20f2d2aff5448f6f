"""Open-set thresholds, set at enrollment from the head's own scores.

Most audio a device hears is not an enrolled word, so each word gets its own threshold: the score
that only ``false_accept`` of the bundle's background bank (embeddings of many other words, speakers
and noise) reaches for that word, with the head fitted to the word *and* the words already enrolled
(a head's scores may depend on all of them). The threshold is capped just below what the word's
own takes score when each is left out of the fit, so a word whose takes vary is still detectable;
the summary reports that cap so a person knows when a retake would help.

Heads whose scores are probabilities over the enrolled words (memory, Meta Networks, SNAIL) cannot
reject an unknown window by themselves (with one word enrolled every window scores 1): they are
calibrated and gated with the prototype cosine instead (see `edge_meta.device.scorer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOO_MARGIN = 0.02  # the threshold stays this far below the median leave-one-out score


@dataclass(frozen=True)
class Calibration:
    threshold: float
    background_score: float  # the background bank's score at the false-accept target
    consistency: float | None  # lowest leave-one-out score of a take (None with one take)
    held_out: float | None  # median leave-one-out score (None with one take)
    false_accept: float

    @property
    def capped(self) -> bool:
        """True when the takes are too unlike each other for the false-accept target to hold."""
        return self.threshold < self.background_score


def calibrate(head, takes: dict[str, np.ndarray], key: str, background: np.ndarray, floor: float,
              false_accept: float) -> Calibration:
    """Threshold for ``takes[key]`` with ``head`` fitted on all of ``takes`` (``head`` is refitted here)."""
    column = list(takes).index(key)
    own = np.asarray(takes[key], dtype=np.float32)
    head.fit(takes)
    if len(background):
        background_score = float(np.quantile(head.scores(background)[:, column], 1.0 - false_accept))
    else:
        background_score = floor
    loo = []
    if len(own) > 1:
        for i in range(len(own)):
            head.fit({**takes, key: np.delete(own, i, axis=0)})
            loo.append(float(head.scores(own[i : i + 1])[0, column]))
        head.fit(takes)
    threshold = max(floor, background_score)
    if loo:
        threshold = min(threshold, float(np.median(loo)) - LOO_MARGIN)
    return Calibration(threshold=float(threshold), background_score=background_score,
                       consistency=min(loo) if loo else None, held_out=float(np.median(loo)) if loo else None,
                       false_accept=false_accept)


def calibrate_all(head, takes: dict[str, np.ndarray], background: np.ndarray, floor: float,
                  false_accept: dict[str, float]) -> dict[str, Calibration]:
    """Every word's calibration (each at its own false-accept target) against the same enrolled set: with
    some heads one word's change moves the others' scores."""
    return {key: calibrate(head, takes, key, background, floor, false_accept[key]) for key in takes}
