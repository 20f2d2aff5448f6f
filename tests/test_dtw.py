"""The MFCC + DTW baseline: the vectorised DTW against a plain reference, and digit matching on FSDD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_meta.audio import read_audio
from edge_meta.bench.dtw import dtw_distance_matrix, mfcc_sequence
from edge_meta.frontend import FrontendSpec

FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd" / "recordings"
SR = 16_000


def reference_dtw(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook DTW, one cell at a time, in float64."""
    n, m = len(x), len(y)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = float(np.sqrt(np.sum((x[i - 1].astype(np.float64) - y[j - 1]) ** 2)))
            acc[i, j] = cost + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return acc[n, m] / (n + m)


def random_sequences(rng: np.random.Generator, count: int, dim: int = 5) -> list[np.ndarray]:
    return [rng.normal(size=(int(rng.integers(1, 16)), dim)).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("batch", [1, 9, 4096])
def test_matches_reference_between_two_sets(batch: int) -> None:
    rng = np.random.default_rng(0)
    a, b = random_sequences(rng, 13), random_sequences(rng, 7)
    expected = np.array([[reference_dtw(x, y) for y in b] for x in a])
    got = dtw_distance_matrix(a, b, batch=batch)
    assert got.shape == (13, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_self_comparison_is_symmetric_with_zero_diagonal() -> None:
    rng = np.random.default_rng(1)
    a = random_sequences(rng, 11)
    expected = np.array([[reference_dtw(x, y) for y in a] for x in a])
    got = dtw_distance_matrix(a, batch=16)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(got, got.T)
    assert np.all(np.diag(got) == 0.0)


def test_identical_sequences_cost_nothing_and_warping_is_cheap() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 13)).astype(np.float32) * 10
    slowed = np.repeat(x, 2, axis=0)
    d = dtw_distance_matrix([x], [x, slowed, -x])
    assert d[0, 0] < 1e-6
    assert d[0, 1] < 1e-6  # a time-stretched copy aligns perfectly
    assert d[0, 2] > 1.0


def burst(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A vowel-like harmonic tone with a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 700, 1100), start=1))
    return (0.2 * tone + 0.001 * rng.normal(size=len(t))).astype(np.float32)


def test_mfcc_sequence_trims_silence_and_removes_the_mean() -> None:
    rng = np.random.default_rng(3)
    spec = FrontendSpec()
    speech = burst(rng, 0.4)
    padded = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(SR, np.float32)])
    short, long = mfcc_sequence(speech, spec), mfcc_sequence(padded, spec)
    assert short.dtype == np.float32 and short.shape[1] == 13
    assert abs(len(long) - len(short)) <= 12  # the margins, not the second of silence either side
    np.testing.assert_allclose(long.mean(axis=0), 0.0, atol=1e-4)


def test_mfcc_sequence_ignores_gain() -> None:
    rng = np.random.default_rng(4)
    x = burst(rng, 0.5)
    np.testing.assert_allclose(mfcc_sequence(0.1 * x, FrontendSpec()), mfcc_sequence(x, FrontendSpec()), atol=1e-3)


@pytest.mark.parametrize("x", [np.zeros(SR, np.float32), np.zeros(100, np.float32), np.ones(3, np.float32)])
def test_mfcc_sequence_has_at_least_two_frames(x: np.ndarray) -> None:
    seq = mfcc_sequence(x, FrontendSpec())
    assert seq.shape[0] >= 2 and np.all(np.isfinite(seq))


def test_fsdd_digits_match_their_own_templates() -> None:
    """One speaker's takes 0-4 are templates, takes 5-9 queries: measured 1.00 for jackson."""
    if not FSDD.is_dir():
        pytest.skip(f"FSDD not found at {FSDD.resolve()}: put the recordings there to run this test")
    spec = FrontendSpec()

    def load(takes: range) -> tuple[list[np.ndarray], np.ndarray]:
        clips = [(d, FSDD / f"{d}_jackson_{t}.wav") for d in range(10) for t in takes]
        return [mfcc_sequence(read_audio(p, announce=False), spec) for _, p in clips], np.array([d for d, _ in clips])

    templates, template_digits = load(range(5))
    queries, query_digits = load(range(5, 10))
    predicted = template_digits[dtw_distance_matrix(queries, templates).argmin(axis=1)]
    assert np.mean(predicted == query_digits) >= 0.85
