"""A warm start from a bundle (edge_meta.train.from_bundle): the shipped int8 word encoder rebuilt as a trainable
DS-CNN computes what the bundle computes, on real speech it never saw, and keeps doing so in training mode."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edge_meta.bundle import Bundle
from edge_meta.resources import default_bundle_path
from edge_meta.train.from_bundle import corpus_features, encoder_from_bundle, main


@pytest.fixture(scope="module")
def rebuilt(gsc_dir, arabic_dir):
    bundle = Bundle.open(default_bundle_path())
    encoder = encoder_from_bundle(bundle, corpus_features(bundle, gsc_dir, 300))
    held = corpus_features(bundle, arabic_dir, 64, seed=1)  # another corpus, another language: not the statistics'
    session = ort.InferenceSession(str(bundle.path_of("encoder.int8.word.onnx")), providers=["CPUExecutionProvider"])
    shipped = session.run(None, {"features": held.numpy()})[0]
    return encoder, held, shipped / np.linalg.norm(shipped, axis=1, keepdims=True)


def test_the_rebuilt_encoder_embeds_as_the_bundle_does(rebuilt):
    """Only int8 rounding separates them: the export's own parity report allows a centred cosine of ~0.99."""
    encoder, held, shipped = rebuilt
    with torch.no_grad():
        cos = np.sum(encoder.eval().embed(held).numpy() * shipped, axis=1)
    assert cos.mean() > 0.99 and cos.min() > 0.97, (cos.mean(), cos.min())
    assert np.mean(cos > 0.999) < 1.0  # it is a rebuild through int8, not the same graph


def test_frozen_statistics_keep_the_function_in_training_mode(rebuilt):
    """With freeze_norm, a training batch is normalised by the shipped statistics, not its own."""
    encoder, held, _ = rebuilt
    encoder.freeze_norm = True
    try:
        encoder.train()
        encoder.dropout.p = 0.0
        with torch.no_grad():
            trained, evaluated = encoder.embed(held), encoder.eval().embed(held)
        assert torch.allclose(trained, evaluated, atol=1e-5)
        encoder.freeze_norm = False
        encoder.train()
        with torch.no_grad():  # and the check can fail: batch statistics do move it
            assert not torch.allclose(encoder.embed(held), evaluated, atol=1e-3)
    finally:
        encoder.freeze_norm, encoder.dropout.p = False, 0.1


def test_a_missing_bundle_is_a_clear_error_and_writes_nothing(tmp_path, capsys, gsc_dir):
    assert main([str(tmp_path / "nothing"), "--corpus", str(gsc_dir), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "no such bundle" in err and "Traceback" not in err
    assert not (tmp_path / "x.pt").exists()


def test_a_bundle_exported_from_a_warm_start_names_where_it_started(tmp_path, gsc_dir):
    """A warm start's file is named by sha256 with the bundle it was rebuilt from, or by name when gone."""
    from edge_meta.bundle import sha256_file
    from edge_meta.export.exporter import init_provenance

    init = tmp_path / "init.pt"
    assert main([str(default_bundle_path()), "--corpus", str(gsc_dir), "--clips", "40", "--out", str(init)]) == 0
    assert init_provenance(str(init)) == {"file": str(init), "sha256": sha256_file(init),
                                          "from_bundle": Bundle.open(default_bundle_path()).bundle_id}
    assert init_provenance(str(tmp_path / "gone.pt")) == {"file": str(tmp_path / "gone.pt"), "sha256": None}
