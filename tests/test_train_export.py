"""Workstation chain on real clips: meta-train a tiny encoder, export it, open the bundle on the 'device'."""

import copy
import json
import shutil

import numpy as np
import pytest

from edge_meta.bundle import Bundle, sha256_file
from edge_meta.corpora import ENGLISH_EVAL_WORDS, load_clips, read_corpus
from edge_meta.device.backends import open_backend
from edge_meta.frontend import LogMel
from edge_meta.train.config import config_from_dict
from edge_meta.train.trainer import Trainer


def assert_follows(reference: np.ndarray, quantised: np.ndarray, words: np.ndarray) -> None:
    """A quantised encoder keeps what the reference encoder says about these clips: the typical clip moves by less
    than half the way to the nearest clip of another word, so the word nearest to it stays nearest. The bound comes
    from the words' own spread, not from a measured parity: a broken quantisation (a wrong scale, saturated
    activations) moves embeddings as far as words lie apart."""
    moved = np.linalg.norm(quantised - reference, axis=1)
    apart = np.linalg.norm(reference[:, None] - reference[None], axis=2)
    nearest_other_word = np.where(words[:, None] != words[None], apart, np.inf).min(axis=1)
    assert np.median(moved / nearest_other_word) < 0.5, (np.median(moved), np.median(nearest_other_word))


def calibration_features(cfg, gsc_dir) -> np.ndarray:
    """The log-mel windows `edge-meta export` calibrates on: its calibration clips, then its noise windows."""
    from edge_meta.export.exporter import _noise_windows, calibration_sets

    calib, _, noise = calibration_sets(gsc_dir, cfg.seed)
    window = cfg.frontend.window_samples
    return LogMel(cfg.frontend).batch(np.concatenate([load_clips(calib, window), _noise_windows(noise, window)]))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, gsc_dir):
    out = tmp_path_factory.mktemp("run")
    cfg = config_from_dict({
        "out": str(out), "cache_dir": str(out / "cache"), "seed": 1, "device": "cpu", "precision": "fp32",
        "corpora": [{"path": str(gsc_dir), "exclude_eval_words": True}],
        "encoder": {"name": "dscnn", "channels": 16, "embed_dim": 32, "projections": ["word", "speaker"]},
        "episodes": {"n_way": 5, "k_shot": 2, "q_query": 3, "real_ratio": 1.0},
        "speaker": {"weight": 0.5, "n_way": 5, "k_shot": 2, "q_query": 2},
        "optim": {"steps": 60, "lr": 0.005, "warmup": 5},
        "validation": {"every": 30, "episodes": 20, "n_way": 5, "shots": [1]},
    })
    trainer = Trainer(cfg, progress=False)
    best = trainer.run()
    return cfg, trainer, best, out


def test_training_writes_checkpoints_logs_and_the_loss_falls(tiny_run):
    cfg, trainer, best, out = tiny_run
    assert best.exists() and (out / "last.pt").exists()
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 61
    losses = np.array([float(r.split(",")[1]) for r in rows[1:]])
    assert losses[-20:].mean() < losses[:10].mean() - 0.1
    assert 0.2 < trainer.best_val <= 1.0
    assert "val_speaker_1-eer" in (out / "log.csv").read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # the [train] extra has it

    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert len(events.Scalars("train/loss")) == 60 and len(events.Scalars("val/val_5way_1shot")) == 2


def test_resume_continues_from_the_last_checkpoint(tiny_run, tmp_path):
    """On a copy of the run: the module's other tests read its checkpoints and log in any order."""
    cfg, _, _, out = tiny_run
    cfg = copy.deepcopy(cfg)
    cfg.out = str(shutil.copytree(out, tmp_path / "run"))
    cfg.optim.steps = 64
    t = Trainer(cfg, progress=False)
    t.resume(tmp_path / "run" / "last.pt")
    assert t.step == 60
    t.run()
    assert t.step == 64


def test_export_round_trip_on_real_clips(tiny_run, gsc_dir, tmp_path):
    from edge_meta.export.exporter import export_bundle

    cfg, _, best, _ = tiny_run
    from edge_meta.export.tflite_export import tflite_available

    report = export_bundle(best, tmp_path / "bundle", calibration=gsc_dir, tar=True, progress=False)
    b = Bundle.open(tmp_path / "bundle")
    assert b.bundle_id == report.bundle_id and Bundle.open(tmp_path / "bundle.tar").bundle_id == b.bundle_id
    expected = {"encoder.fp32.onnx", "encoder.int8.onnx", "heads.npz", "report.json"}
    if tflite_available():
        expected.add("encoder.int8.tflite")
    assert set(b.manifest["files"]) == expected
    assert b.manifest["frontend"] == cfg.frontend.to_dict()
    assert b.manifest["provenance"]["learner"] == "protonet"
    # the bundle names the exact checkpoint it came from, so a committed copy can be matched and re-exported
    assert b.manifest["provenance"]["checkpoint"] == {"file": best.name, "sha256": sha256_file(best)}
    assert json.loads(b.path_of("report.json").read_text())["parity_vs_onnx_fp32"] == report.parity
    heads = b.load_heads()
    assert b.manifest["encoder"]["outputs"] == ["word", "speaker"]
    assert heads["background.word"].shape == heads["background.speaker"].shape == (256, 32)
    assert float(heads["word.temperature"]) > 1.0
    # the bank is what the device's int8 graph gives the calibration clips and noise (enrollment scores int8
    # prototypes against it), to float16's precision; the fp32 graph's embeddings of the same clips are not it
    seen = calibration_features(cfg, gsc_dir)
    bank = heads["background.word"].astype(np.float32)
    nearest = {p: (bank @ open_backend(b, "onnx", p).embed(seen)["word"].T).max(axis=1) for p in ("int8", "fp32")}
    assert nearest["int8"].min() > 0.999 and nearest["fp32"].min() < nearest["int8"].min(), (
        nearest["int8"].min(), nearest["fp32"].min())

    # fp32 and int8 agree on real clips the calibration never saw (FSDD is not in the calibration corpus)
    items = read_corpus(gsc_dir).without_words(ENGLISH_EVAL_WORDS).items[1::97][:40]
    words = np.array([i.word for i in items])
    feats = LogMel(b.frontend).batch(load_clips(items, b.frontend.window_samples))
    both = open_backend(b, "onnx", "fp32").embed(feats)
    e32 = both["word"]
    assert both["speaker"].shape == e32.shape and np.abs(both["speaker"] - e32).max() > 0.1  # two projections
    e8 = open_backend(b, "onnx", "int8").embed(feats)["word"]
    assert e32.shape == (40, 32)
    np.testing.assert_allclose(np.linalg.norm(e8, axis=1), 1.0, atol=1e-5)
    assert len(set(words)) > 5 and np.linalg.norm(e8 - e32, axis=1).max() > 0  # many words; int8 really quantised
    assert_follows(e32, e8, words)
    assert report.parity["onnx int8"]["top-1 agreement"] > 0.5  # most 10-way decisions unchanged (chance: ~0.1)
    if tflite_available():
        tfl = open_backend(b, "tflite", "int8").embed(feats)["word"]
        assert tfl.shape == e32.shape
        assert_follows(e32, tfl, words)
        assert report.parity["tflite int8"]["top-1 agreement"] > 0.5


def test_checkpoint_errors_are_clear(tmp_path):
    from edge_meta.errors import ConfigError
    from edge_meta.train.checkpoint import load_checkpoint

    with pytest.raises(ConfigError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable edge-meta checkpoint"):
        load_checkpoint(junk)


def test_a_pair_joins_the_word_and_the_speaker_encoder(tiny_run, gsc_dir, tmp_path):
    """Two encoders in one bundle (DESIGN.md allows it when one trunk cannot serve both): each output of
    the exported graph is exactly the encoder it was taken from, and the int8 graph is cut in two."""
    import torch

    from edge_meta.errors import ConfigError
    from edge_meta.export.exporter import export_bundle
    from edge_meta.train.checkpoint import load_checkpoint
    from edge_meta.train.frontend_torch import LogMelTorch
    from edge_meta.train.pair import pair_checkpoints

    _, _, best, out = tiny_run
    # best.pt holds last.pt's weights when the last validation is the best (on some CPUs it is), and two identical
    # trunks export as one graph; so the speaker side differs by construction: last.pt with every float weight
    # scaled by its own seeded factor around 1 (signs and BatchNorm variances kept)
    word_ckpt, speaker_ckpt = best, tmp_path / "speaker.pt"
    state = torch.load(out / "last.pt", weights_only=True)
    draw = torch.Generator().manual_seed(0)
    state["learner"] = {k: v * torch.exp(0.1 * torch.randn(v.shape, generator=draw)) if v.is_floating_point() else v
                        for k, v in state["learner"].items()}
    torch.save(state, speaker_ckpt)
    paired = pair_checkpoints(word_ckpt, speaker_ckpt, tmp_path / "pair.pt")
    cfg, pair, _ = load_checkpoint(paired)
    _, word_src, _ = load_checkpoint(word_ckpt)
    _, speaker_src, _ = load_checkpoint(speaker_ckpt)
    clips = load_clips(read_corpus(gsc_dir).without_words(ENGLISH_EVAL_WORDS).items[::97][:24], 16000)
    x = LogMelTorch(cfg.frontend)(torch.from_numpy(clips))
    with torch.no_grad():
        for name, src in (("word", word_src), ("speaker", speaker_src)):
            assert torch.allclose(pair.encoder.embed(x, name), src.encoder.embed(x, name), atol=1e-6)
        assert not torch.allclose(pair.encoder.embed(x, "speaker"), word_src.encoder.embed(x, "speaker"), atol=1e-3)

    report = export_bundle(paired, tmp_path / "bundle", calibration=gsc_dir, formats=("onnx",), progress=False)
    b = Bundle.open(tmp_path / "bundle")
    assert b.manifest["encoder"]["outputs"] == ["word", "speaker"] and report.parity["onnx int8"]["top-1 agreement"] > 0.5
    joined = b.manifest["provenance"]["pair"]  # the two committed checkpoints it joined, each by sha256
    assert joined["word"]["sha256"] == sha256_file(word_ckpt) and joined["speaker"]["sha256"] == sha256_file(speaker_ckpt)
    assert [(p.name, o) for p, o in b.encoder_files("onnx", "int8")] == [  # the device runs the speaker graph on demand
        ("encoder.int8.word.onnx", ["word"]), ("encoder.int8.speaker.onnx", ["speaker"])]
    feats = np.stack([LogMel(b.frontend)(c) for c in clips])[:, None]
    got = open_backend(b, "onnx", "fp32").embed(feats)
    int8 = open_backend(b, "onnx", "int8")
    assert int8.separable and set(int8.embed(feats, ["speaker"])) == {"speaker"}
    for name, src in (("word", word_src), ("speaker", speaker_src)):
        with torch.no_grad():
            want = src.encoder.embed(torch.from_numpy(feats), name).numpy()
        unit = got[name] / np.linalg.norm(got[name], axis=1, keepdims=True)
        assert np.min(np.sum(unit * want, axis=1)) > 0.999
    b.close()

    with pytest.raises(ConfigError, match="no 'speaker' projection"):
        word_only = tmp_path / "word_only.pt"
        state = torch.load(word_ckpt, weights_only=True)
        state["config"]["encoder"]["projections"] = ["word"]
        state["learner"] = {k: v for k, v in state["learner"].items() if "projections.speaker" not in k}
        torch.save(state, word_only)
        pair_checkpoints(word_ckpt, word_only, tmp_path / "bad.pt")


def test_bc_resnet_meta_trains_and_exports(gsc_dir, tmp_path):
    """The second encoder family (BC-ResNet) through the same trainer and exporter: the loss falls, and the
    exported graph computes what the trained model computes on real clips."""
    import torch

    from edge_meta.export.exporter import export_bundle
    from edge_meta.train.checkpoint import load_checkpoint

    cfg = config_from_dict({
        "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"), "seed": 2, "device": "cpu",
        "precision": "fp32", "corpora": [{"path": str(gsc_dir), "exclude_eval_words": True}],
        "encoder": {"name": "bcresnet", "scale": 1.0, "embed_dim": 32},
        "episodes": {"n_way": 5, "k_shot": 2, "q_query": 3, "real_ratio": 1.0},
        "optim": {"steps": 50, "lr": 0.005, "warmup": 5},
        "validation": {"every": 50, "episodes": 20, "n_way": 5, "shots": [1]},
    })
    best = Trainer(cfg, progress=False).run()
    losses = np.array([float(r.split(",")[1]) for r in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]])
    assert losses[-15:].mean() < losses[:10].mean() - 0.1
    export_bundle(best, tmp_path / "bundle", calibration=gsc_dir, formats=("onnx",), progress=False)
    b = Bundle.open(tmp_path / "bundle")
    assert b.manifest["encoder"]["name"] == "bcresnet"
    items = read_corpus(gsc_dir).without_words(ENGLISH_EVAL_WORDS).items[3::97][:24]
    feats = LogMel(b.frontend).batch(load_clips(items, b.frontend.window_samples))
    got = open_backend(b, "onnx", "fp32").embed(feats)["word"]
    with torch.no_grad():
        want = load_checkpoint(best)[1].encoder.embed(torch.from_numpy(feats)).numpy()
    assert np.min(np.sum(got * want, axis=1)) > 0.999
    b.close()


def test_whitening_folds_into_the_projection_and_whitens_each_words_spread(tiny_run, gsc_dir, tmp_path):
    """`edge-meta whiten`: the folded layer outputs exactly (z - mean) @ matrix of the old one on clips it was not
    fitted on; on the clips it was fitted on, each within-word variance v of the old outputs becomes v / (v + mean v)
    (whitening with shrink 1): the fit used these clips, grouped by word, and the fold is the one fitted."""
    import torch

    from edge_meta.corpora import is_validation_speaker
    from edge_meta.errors import ConfigError
    from edge_meta.train.checkpoint import load_checkpoint
    from edge_meta.train.frontend_torch import LogMelTorch
    from edge_meta.train.pair import pair_checkpoints
    from edge_meta.train.whiten import whiten_checkpoint

    cfg, _, best, out = tiny_run
    recipe = tmp_path / "fit.toml"
    recipe.write_text(f'cache_dir = "{out / "cache"}"\n[[corpora]]\npath = "{gsc_dir}"\nexclude_eval_words = true\n')
    head, fitted = whiten_checkpoint(best, recipe, tmp_path / "white.pt", "word", clips=100_000, progress=False)
    items = read_corpus(gsc_dir).without_words(ENGLISH_EVAL_WORDS).items
    held_out = [i for i in items if is_validation_speaker(i)]
    fit = [i for i in items if not is_validation_speaker(i)]
    assert fitted["clips"] == len(fit) and fitted["classes"] == len({i.word for i in fit})

    def raw(path, chosen):
        encoder = load_checkpoint(path)[1].encoder
        x = LogMelTorch(cfg.frontend)(torch.from_numpy(load_clips(chosen, 16000)))
        with torch.no_grad():
            return encoder.projections["word"](encoder.trunk(x)).numpy().astype(np.float64)

    before, after = raw(best, held_out), raw(tmp_path / "white.pt", held_out)
    np.testing.assert_allclose(after, (before - head.mean) @ head.matrix, rtol=1e-4, atol=1e-4 * np.abs(after).max())
    assert np.abs(after - before).max() > 0.1 * np.abs(before).max()

    def within_word_variances(z, words):
        spread = np.concatenate([z[words == w] - z[words == w].mean(0) for w in np.unique(words)])
        return np.linalg.eigvalsh(spread.T @ spread / len(spread))

    words = np.array([i.word for i in fit])
    old, new = within_word_variances(raw(best, fit), words), within_word_variances(raw(tmp_path / "white.pt", fit), words)
    np.testing.assert_allclose(new, old / (old + old.mean()), atol=1e-3)  # clips are int16 in the training bank
    pair = pair_checkpoints(tmp_path / "white.pt", best, tmp_path / "pair.pt")  # what a bundle's manifest will name
    assert torch.load(pair, weights_only=True)["whitened"] == {"word": fitted}
    with pytest.raises(ConfigError, match="unknown projection 'voice'"):
        whiten_checkpoint(best, recipe, tmp_path / "bad.pt", "voice", progress=False)
    assert not (tmp_path / "bad.pt").exists()


def test_int8_weights_lie_in_7_bits_unless_full_range_is_asked_for(tiny_run, gsc_dir, tmp_path):
    """`edge-meta export` quantises the ONNX weights to 7 bits (so x86's u8 x s8 pairs cannot saturate int16 on a CPU
    without VNNI), `--full-range` to 8; the 7-bit embeddings follow fp32's on real clips on any CPU (on an AVX2-only
    AMD EPYC the 8-bit ones did not: their typical clip moved 0.74 of the way to another word's)."""
    import onnx
    from onnx import numpy_helper

    from edge_meta.device.backends import OnnxBackend
    from edge_meta.export.onnx_export import export_onnx
    from edge_meta.export.quantize import quantize_int8
    from edge_meta.train.checkpoint import load_checkpoint

    cfg, _, best, _ = tiny_run
    feats = calibration_features(cfg, gsc_dir)
    held_out = read_corpus(gsc_dir).without_words(ENGLISH_EVAL_WORDS).items[1::97][:40]
    words = np.array([i.word for i in held_out])
    test = LogMel(cfg.frontend).batch(load_clips(held_out, cfg.frontend.window_samples))
    export_onnx(load_checkpoint(best)[1].encoder, cfg.frontend, tmp_path / "fp32.onnx")
    reference = OnnxBackend(tmp_path / "fp32.onnx").embed(test)["word"]
    for reduce_range, top in ((True, 63), (False, 127)):
        path = tmp_path / f"int8-{reduce_range}.onnx"
        described = quantize_int8(tmp_path / "fp32.onnx", path, feats, reduce_range=reduce_range)
        weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
                   if t.data_type == onnx.TensorProto.INT8 and t.dims]
        assert max(int(np.abs(w.astype(np.int16)).max()) for w in weights) in (top, top + 1)
        assert ("7-bit" in described) == reduce_range
        if reduce_range:
            assert_follows(reference, OnnxBackend(path).embed(test)["word"], words)
