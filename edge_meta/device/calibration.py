"""Open-set thresholds, set at enrollment from the head's own scores.

Most audio a device hears is not an enrolled word, so each word gets its own threshold: the score
that only ``false_accept`` of the bundle's background bank (embeddings of many other words, speakers
and noise) reaches for that word, with the head fitted to the word *and* the words already enrolled
(a head's scores may depend on all of them), and never below the bundle's floor: together the *safe*
threshold. The threshold is capped just below what the word's own takes score when each is left out
of the fit, so a word whose takes vary is still detectable; a cap below the safe threshold lets more
background through than the target (``capped``, with the share measured in ``background_rate``), so
enrollment refuses it unless forced, and says so when forced. A minority of takes that each score,
against the others, lower than a tenth of the background bank does are ``odd``: to the word they
sound like background (another word, or mostly noise), by the same rule the prompts use for a retake
(`UNLIKE_QUANTILE`). When most takes do, the takes simply disagree (several voices, say) and no one
of them is to blame.

Heads whose scores are probabilities over the enrolled words (memory, Meta Networks, SNAIL) cannot
reject an unknown window by themselves (with one word enrolled every window scores 1): they are
calibrated and gated with the prototype cosine instead (see `edge_meta.device.scorer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOO_MARGIN = 0.02  # the threshold stays this far below the median leave-one-out score
UNLIKE_QUANTILE = 0.9  # a take scoring below this share of the background bank is "unlike the others"


@dataclass(frozen=True)
class Calibration:
    threshold: float
    background_score: float  # the background bank's score at the false-accept target
    consistency: float | None  # lowest leave-one-out score of a take (None with one take)
    held_out: float | None  # median leave-one-out score (None with one take)
    false_accept: float
    safe_threshold: float  # the lowest threshold the target allows: max(bundle floor, background_score)
    background_rate: float  # share of the background bank that scores at or above ``threshold``
    take_scores: tuple[float, ...]  # each take's leave-one-out score
    odd: tuple[int, ...]  # a minority of takes that score, left out, below a tenth of the background bank

    @property
    def capped(self) -> bool:
        """True when the takes are too unlike each other for the false-accept target to hold."""
        return self.threshold < self.safe_threshold


def calibrate(head, takes: dict[str, np.ndarray], key: str, background: np.ndarray, floor: float,
              false_accept: float) -> Calibration:
    """Threshold for ``takes[key]`` with ``head`` fitted on all of ``takes`` (``head`` is refitted here)."""
    column = list(takes).index(key)
    own = np.asarray(takes[key], dtype=np.float32)
    loo, odd = [], []
    if len(own) > 1:
        for i in range(len(own)):
            head.fit({**takes, key: np.delete(own, i, axis=0)})
            loo.append(float(head.scores(own[i : i + 1])[0, column]))
            if len(background) and loo[-1] < np.quantile(head.scores(background)[:, column], UNLIKE_QUANTILE):
                odd.append(i)
    head.fit(takes)
    scores = head.scores(background)[:, column] if len(background) else np.zeros(0)
    background_score = float(np.quantile(scores, 1.0 - false_accept)) if len(scores) else floor
    safe = max(floor, background_score)
    threshold = min(safe, float(np.median(loo)) - LOO_MARGIN) if loo else safe
    return Calibration(threshold=float(threshold), background_score=background_score,
                       consistency=min(loo) if loo else None, held_out=float(np.median(loo)) if loo else None,
                       false_accept=false_accept, safe_threshold=float(safe),
                       background_rate=float(np.mean(scores >= threshold)) if len(scores) else 0.0,
                       take_scores=tuple(loo), odd=tuple(odd) if 2 * len(odd) < len(loo) else ())


def calibrate_all(head, takes: dict[str, np.ndarray], background: np.ndarray, floor: float,
                  false_accept: dict[str, float]) -> dict[str, Calibration]:
    """Every word's calibration (each at its own false-accept target) against the same enrolled set: with
    some heads one word's change moves the others' scores."""
    return {key: calibrate(head, takes, key, background, floor, false_accept[key]) for key in takes}
