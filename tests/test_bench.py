"""The benchmark protocols and the learners table, on real FSDD clips."""

import math

import numpy as np
import pytest

from edge_meta.bench.protocols import auroc, fewshot, open_set, speaker_eer
from edge_meta.device.heads import PrototypeHead
from edge_meta.metrics import equal_error_rate, poisson_upper


def test_auroc_and_eer_on_known_scores():
    assert auroc(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.5, 2.0])) == pytest.approx(7.5 / 9)
    assert equal_error_rate(np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.3])) == 0.0
    assert equal_error_rate(np.array([0.9, 0.2]), np.array([0.8, 0.1])) == pytest.approx(0.5)


def test_protocols_separate_clean_clusters_and_fail_on_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 60)
    speakers = np.tile(np.repeat(np.arange(6), 10), 10)
    centres = rng.normal(size=(10, 16))
    clean = centres[labels] + 0.2 * rng.normal(size=(600, 16))
    noise = rng.normal(size=(600, 16))
    assert fewshot(PrototypeHead, clean, labels, speakers, 1, "own", 50).mean > 0.95
    assert fewshot(PrototypeHead, noise, labels, speakers, 1, "own", 50).mean < 0.3
    assert open_set(PrototypeHead, clean, labels, speakers, 30)["auroc"] > 0.95
    voices = rng.normal(size=(6, 16))[speakers] + 0.2 * rng.normal(size=(600, 16))
    eer = speaker_eer(voices, labels, speakers, draws_any=5, draws_word=2)
    assert eer["eer any word"] < 0.05 and eer["eer same word"] < 0.05
    assert speaker_eer(noise, labels, speakers, draws_any=5, draws_word=2)["eer any word"] > 0.3


def test_fsdd_bench_on_the_shipped_bundle(fsdd_dir):
    from edge_meta.bench.fewshot import run_bench

    result = run_bench(None, fsdd_dir, episodes=60, baseline=False, verbose=False)
    rows = result.rows
    assert {"edge-meta ONNX int8", "edge-meta TFLite int8"} <= set(rows)  # the default ships int8 only
    for row in rows.values():
        assert set(row) == {"own 1-shot", "own 5-shot", "household 1-shot", "household 5-shot"}
        assert row["own 5-shot"].mean > row["household 1-shot"].mean > 0.2  # well above chance (0.1)
    onnx, tflite = rows["edge-meta ONNX int8"], rows["edge-meta TFLite int8"]
    assert abs(onnx["own 5-shot"].mean - tflite["own 5-shot"].mean) < 0.03
    assert result.cost["bundle bytes"] < 1_000_000
    assert "| edge-meta ONNX int8 |" in result.table()


def test_learners_table_end_to_end(tmp_path, gsc_dir, fsdd_dir, tiny_recipe):
    """Three learners (numpy head, fine-tuned head, ONNX-graph head) from one tiny encoder, through export."""
    from edge_meta.bench.learners import table
    from edge_meta.train.learner_bench import bench_learners
    from edge_meta.train.trainer import Trainer

    recipe = tiny_recipe(tmp_path / "base", steps=20)
    from edge_meta.train.config import load_config

    Trainer(load_config(recipe), progress=False).run()
    rows = bench_learners(["matching", "anil", "metanet"], recipe, tmp_path / "base" / "last.pt", steps=6,
                          out_dir=tmp_path / "runs", fsdd=fsdd_dir, calibration=gsc_dir, episodes=20, progress=False)
    assert list(rows) == ["matching", "anil", "metanet"]
    for r in rows.values():
        assert r.fewshot["own 5-shot"].mean > 0.15 and 0.0 <= r.eer["eer any word"] <= 1.0
        assert 0.0 <= r.open_set["auroc"] <= 1.0 and r.episodes_per_s > 0 and r.head_bytes > 0
    assert rows["metanet"].head_bytes > rows["anil"].head_bytes  # the generator graph travels with it
    text = table(rows, 20)
    assert all(f"| {name} |" in text for name in rows) and "EER any word" in text


def test_poisson_upper_limit_matches_the_textbook_values():
    # exact one-sided 95% limits (chi-square tables): 0 events -> -ln(0.05), 2 -> 6.296, 10 -> 16.96
    assert poisson_upper(0) == pytest.approx(-math.log(0.05), rel=1e-6)
    assert poisson_upper(2) == pytest.approx(6.2958, abs=1e-3)
    assert poisson_upper(10) == pytest.approx(16.962, abs=1e-2)
    assert poisson_upper(2, confidence=0.99) > poisson_upper(2)
    with pytest.raises(ValueError):
        poisson_upper(-1)
