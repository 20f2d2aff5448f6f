"""benchmarks/stream_variants.py replays other heads over the hops the shipped detector scored: on a short real
FSDD stream, its recorded embeddings and its rebuilt template check must reproduce the shipped detector exactly,
or its table would compare variants against something other than what ships."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import stream_fsdd  # noqa: E402
import stream_variants as sv  # noqa: E402

FSDD = ROOT.parent / "shared" / "data" / "fsdd"


@pytest.fixture(scope="module")
def recorded() -> sv.Recorded:
    if not FSDD.exists():
        pytest.skip(f"{FSDD} is missing")
    speaker, keywords, audio, truth = next(stream_fsdd.streams(FSDD, 1, 0))
    truth = [w for w in truth if w["end_s"] <= 40.0]
    audio = audio[: int(truth[-1]["end_s"] * sv.SR)]
    return sv.record(FSDD, speaker, keywords, audio, truth)


def test_recorded_embeddings_rescore_to_the_detectors_own_scores(recorded: sv.Recorded) -> None:
    scored = np.array([not h.gated for h in recorded.hops])
    assert scored.sum() > 100 and (~scored).sum() > 0  # speech and gated pauses both in the stream
    again = sv.head_scores(sv.PrototypeHead())(recorded)
    np.testing.assert_allclose(again[scored], sv.shipped_scores(recorded)[scored], atol=1e-5)
    assert not np.any(recorded.embeddings[~scored])


def test_twelve_cepstra_without_deltas_is_the_shipped_template_check(recorded: sv.Recorded) -> None:
    shipped = stream_fsdd.template_ratios(recorded.rt, recorded.det, recorded.audio)
    rebuilt = stream_fsdd.template_ratios(recorded.rt, recorded.det, recorded.audio, sv.cepstra_check(12, False)(recorded))
    deltas = stream_fsdd.template_ratios(recorded.rt, recorded.det, recorded.audio, sv.cepstra_check(12, True)(recorded))
    boundaries = [h.boundary for h in recorded.hops if not h.gated][::10]
    for w in range(len(recorded.keywords)):
        for b in boundaries:
            assert rebuilt(w, b) == pytest.approx(shipped(w, b), rel=1e-6)
    assert any(abs(deltas(0, b) - shipped(0, b)) > 1e-3 for b in boundaries)  # the variant really differs


def test_thresholds_at_a_sweep_point(recorded: sv.Recorded) -> None:
    cal = recorded.det.scorer.vocabulary.thresholds
    np.testing.assert_allclose(sv.calibrated(recorded)(0.05), cal + 0.05, atol=1e-6)
    assert np.all(sv.uniform(recorded)(0.8) == np.float32(0.8))
    lo, hi = sv.between_background_and_takes(recorded)(0.0), sv.between_background_and_takes(recorded)(1.0)
    assert np.all(lo < hi)  # from the background's 99th percentile up to the takes' own leave-one-out scores
