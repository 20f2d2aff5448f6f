"""The template check of candidate detections: its DTW, its cepstra, and what it accepts on real speech."""

import numpy as np
import pytest
from scipy.fft import dct

from edge_meta.audio import read_audio
from edge_meta.device import Runtime
from edge_meta.device.detector import DetectorConfig
from edge_meta.device.verifier import TemplateVerifier, dct_matrix, passes, subsequence_cost, subsequence_costs
from edge_meta.frontend import FrontendSpec, LogMel

SR = 16000


def test_dct_matrix_is_scipys_orthonormal_dct_without_c0():
    x = np.random.default_rng(0).normal(size=(7, 40)).astype(np.float32)
    np.testing.assert_allclose(x @ dct_matrix(40), dct(x, type=2, norm="ortho", axis=1)[:, 1:13], atol=1e-4)


def test_subsequence_cost_finds_a_template_anywhere_and_at_half_speed():
    rng = np.random.default_rng(0)
    template = rng.normal(size=(20, 12)).astype(np.float32)
    window = rng.normal(size=(90, 12)).astype(np.float32)
    window[37:57] = template
    assert subsequence_cost(template, window) == pytest.approx(0.0, abs=1e-3)
    slow = rng.normal(size=(90, 12)).astype(np.float32)
    slow[10:50] = np.repeat(template, 2, axis=0)  # the word said twice as slowly
    assert subsequence_cost(template, slow) == pytest.approx(0.0, abs=1e-3)
    assert subsequence_cost(template, rng.normal(size=(90, 12)).astype(np.float32)) > 1.0
    assert subsequence_cost(template, np.zeros((0, 12), np.float32)) == np.inf


def test_templates_of_different_lengths_are_aligned_together_as_each_alone():
    """The batched alignment gives each template the cost it has on its own: a 20-frame template placed in the
    window costs ~0 beside 1- to 60-frame random ones, and the order of the templates does not matter."""
    rng = np.random.default_rng(1)
    window = rng.normal(size=(90, 12)).astype(np.float32)
    templates = [rng.normal(size=(n, 12)).astype(np.float32) for n in (1, 7, 60, 33)] + [window[40:60].copy()]
    together = subsequence_costs(templates, window)
    assert together[-1] == pytest.approx(0.0, abs=1e-3) and together[:-1].min() > 1.0
    # a distance from squared norms is exact to ~sqrt(float32 eps * |frame|^2) ~ 1e-3 near 0, whatever the batch
    # (an AVX2-only CPU gave 9.8e-5 alone and 2.4e-4 together for the ~0 cost)
    alone = [subsequence_costs([t], window)[0] for t in templates]
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(subsequence_costs(templates[::-1], window), together[::-1], rtol=1e-6, atol=1e-3)


def _window(x: np.ndarray, logmel: LogMel, rng) -> np.ndarray:
    """The log-mel frames a detector would hand the check: the word somewhere in 1.3 s of quiet room noise."""
    out = (3e-4 * rng.standard_normal(int(1.3 * SR))).astype(np.float32)
    start = int(rng.integers(int(0.3 * SR), max(int(0.3 * SR) + 1, len(out) - len(x))))
    out[start : start + len(x)] += x[: len(out) - start]
    return logmel.log_mel_frames(out)


def test_the_check_passes_the_speakers_word_and_rejects_other_words(fsdd_dir, gsc_dir):
    """Enrolled from 5 takes: held-out takes of the same word pass; other digits by the same speaker and
    Speech Commands words by other speakers mostly do not (real recordings; at the strictest setting, a
    candidate just at its encoder threshold)."""
    logmel = LogMel(FrontendSpec())
    rng = np.random.default_rng(0)
    rec = fsdd_dir / "recordings"
    takes = [[read_audio(rec / f"{d}_jackson_{t}.wav", announce=False) for t in range(5)] for d in (3, 7)]
    cfg = DetectorConfig()
    verifier = TemplateVerifier(logmel, takes, cfg.template_ratio, cfg.template_slope)
    same = [verifier.accepts(w, _window(read_audio(rec / f"{d}_jackson_{t}.wav", announce=False), logmel, rng), 0.0)
            for w, d in enumerate((3, 7)) for t in range(10, 30)]
    other_digits = [verifier.accepts(w, _window(read_audio(rec / f"{d}_jackson_{t}.wav", announce=False), logmel, rng), 0.0)
                    for w in (0, 1) for d in (1, 2, 4, 5, 6, 8, 9) for t in (10, 20)]
    words = sorted(p for d in gsc_dir.iterdir() if d.is_dir() and d.name in ("house", "dog", "right", "learn")
                   for p in sorted(d.iterdir())[:8])
    other_words = [verifier.accepts(w, _window(read_audio(p, announce=False), logmel, rng), 0.0) for w in (0, 1) for p in words]
    assert np.mean(same) >= 0.7  # 0.78 measured: the strictest setting gives up some takes said differently
    assert np.mean(other_digits) <= 0.3
    assert np.mean(other_words) <= 0.1


def test_a_strong_encoder_score_buys_a_looser_alignment():
    assert not passes(1.8, 0.0, 1.5, 5.0) and passes(1.8, 0.06, 1.5, 5.0) and passes(1.5, -0.1, 1.5, 5.0)
    assert not passes(1.8, 0.06, 1.5, 0.0)


def test_a_word_without_kept_audio_is_left_to_the_encoder(tmp_path, fsdd_dir):
    rec = fsdd_dir / "recordings"
    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.enroll_word("three", [rec / f"3_george_{t}.wav" for t in range(5)], keep_audio=False)
        rt.enroll_word("seven", [rec / f"7_george_{t}.wav" for t in range(5)])
        with pytest.warns(UserWarning, match="'three' was enrolled without keeping its audio"):
            det = rt.detector()
        assert det.verifier is not None
        three, seven = (det.scorer.vocabulary.keys.index((w, "")) for w in ("three", "seven"))
        assert not det.verifier.checks(three) and det.verifier.checks(seven)
        assert rt.detector(DetectorConfig(template_ratio=float("inf"))).verifier is None


def test_the_check_of_long_takes_costs_no_more_than_of_takes_a_keyword_fits_in(fsdd_dir):
    """An imported profile may carry long takes (up to 60 s were accepted): aligning them with each other cost the
    square of their length (5 x 60 s: 1.2 GB at every daemon start). The check is built on at most two model
    windows of each take, so 30 s takes cost what 2 s takes do, beyond one pass over them, and check the same."""
    import tracemalloc

    from edge_meta.frontend import FrontendSpec

    logmel = LogMel(FrontendSpec())
    said = [read_audio(fsdd_dir / "recordings" / f"4_theo_{t}.wav", announce=False) for t in range(3)]
    babble = np.concatenate([read_audio(p, announce=False)
                             for p in sorted((fsdd_dir / "recordings").glob("*_nicolas_*.wav"))[:80]])
    peaks, ratios = {}, {}
    for seconds in (2, 30):
        pad = int(seconds * 16000) - max(len(x) for x in said)
        takes = [np.concatenate([1e-3 * babble[:pad // 2], x, 1e-3 * babble[pad // 2 : pad]]) for x in said]
        tracemalloc.start()
        verifier = TemplateVerifier(logmel, [takes], max_ratio=1.3, slope=5.0)
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        ratios[seconds] = verifier.ratio(0, logmel.log_mel_frames(said[0]))
    assert ratios[30] == pytest.approx(ratios[2], rel=0.01) and passes(ratios[30], 0.0, 1.3, 5.0)  # ~ the same check
    longest = max(x.nbytes for x in takes)  # finding a 30 s take's loudest windows sums its energy in float64
    assert peaks[30] <= peaks[2] + 4 * longest  # linear in a take's length, no longer quadratic
