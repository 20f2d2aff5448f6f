"""The runtime runs the head the bundle names, calibrates with that head's own scores, and gates the heads
whose scores are probabilities over the enrolled words with the prototype cosine."""

import json
import shutil

import numpy as np
import pytest

from edge_meta.bundle import MANIFEST, write_manifest
from edge_meta.device import Runtime
from edge_meta.device.detector import DetectorConfig, HopScores, Trigger
from edge_meta.device.heads import LastLayerHead, MatchingHead, MetaNetHead, PrototypeHead
from edge_meta.device.scorer import UNSCORED, Scorer, Vocabulary
from edge_meta.resources import default_bundle_path


def rebundle(dest, kind: str, arrays: dict, graphs: dict | None = None):
    """The shipped bundle with another word head: ``arrays`` (without the "word." prefix) into heads.npz,
    ONNX ``graphs`` {name: ModelProto} into heads/."""
    import onnx

    shutil.copytree(default_bundle_path(), dest)
    heads = {k: v for k, v in np.load(dest / "heads.npz").items() if not k.startswith("word.")}
    heads.update({f"word.{k}": v for k, v in arrays.items()})
    np.savez(dest / "heads.npz", **heads)
    for name, model in (graphs or {}).items():
        (dest / "heads").mkdir(exist_ok=True)
        onnx.save(model, dest / "heads" / f"{name}.onnx")
    m = json.loads((dest / MANIFEST).read_text())
    m["heads"]["word"] = {"kind": kind, "learner": f"test-{kind}", "family": "test",
                          "graphs": {n: f"heads/{n}.onnx" for n in graphs or {}}}
    m["heads"]["arrays"] = sorted(heads)
    for key in ("files", "bundle_id", "schema_version"):
        m.pop(key)
    write_manifest(dest, m)
    return dest


def prototype_generator(dim: int):
    """A Meta Networks generator graph that makes each word's fast weights its mean take (bias 0)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    consts = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("start", [0]), ("end", [dim]), ("axis", [1]), ("last", [dim + 1]))]
    nodes = [helper.make_node("Slice", ["statistics", "start", "end", "axis"], ["mean"]),
             helper.make_node("Slice", ["statistics", "end", "last", "axis"], ["norm"]),
             helper.make_node("Sub", ["norm", "norm"], ["zero"]),
             helper.make_node("Concat", ["mean", "zero"], ["fast_weights"], axis=1)]
    graph = helper.make_graph(nodes, "generator", [helper.make_tensor_value_info("statistics", TensorProto.FLOAT, ["N", dim + 2])],
                              [helper.make_tensor_value_info("fast_weights", TensorProto.FLOAT, ["N", dim + 1])], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def takes(fsdd_dir, digit, speaker, idx):
    return [fsdd_dir / "recordings" / f"{digit}_{speaker}_{t}.wav" for t in idx]


def test_each_kind_builds_its_own_head(tmp_path):
    d = 128
    cases = {
        "last_layer": ({"inner_lr_w": np.full(d, 0.5, np.float32), "inner_lr_b": np.float32(0.1),
                        "steps": np.int64(5), "temperature": np.float32(10.0)}, None, LastLayerHead),
        "matching": ({"temperature": np.float32(10.0), "fce": np.int8(0)}, None, MatchingHead),
        "metanet": ({"slow_weight": np.eye(d, dtype=np.float32), "temperature": np.float32(10.0)},
                    {"generator": prototype_generator(d)}, MetaNetHead),
    }
    for kind, (arrays, graphs, cls) in cases.items():
        with Runtime.open(rebundle(tmp_path / kind, kind, arrays, graphs)) as rt:
            assert isinstance(rt.make_word_head(), cls)
            assert rt.open_set is cls.open_set
    with Runtime.open() as rt:
        assert isinstance(rt.make_word_head(), PrototypeHead)


def test_unknown_head_kind_is_refused(tmp_path):
    from edge_meta.errors import BundleError

    with pytest.raises(BundleError, match="unknown word head kind 'telepathy'"):
        Runtime.open(rebundle(tmp_path / "b", "telepathy", {}))


def test_last_layer_thresholds_come_from_its_own_scores(tmp_path, fsdd_dir):
    d = 128
    arrays = {"inner_lr_w": np.full(d, 0.5, np.float32), "inner_lr_b": np.float32(0.1), "steps": np.int64(5),
              "temperature": np.float32(10.0)}
    with Runtime.open(rebundle(tmp_path / "b", "last_layer", arrays)) as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3, "george", range(5)))
        w = rt.enroll_word("seven", takes(fsdd_dir, 7, "george", range(5)))
        stored = {x.label: x for x in rt.store.words()}
        head = rt.make_word_head().fit({"three\0": stored["three"].embeddings, "seven\0": stored["seven"].embeddings})
        expected = float(np.quantile(head.scores(rt.background)[:, 1], 0.99))
        assert w.calibration.background_score == pytest.approx(expected, abs=1e-5)
        hits = [rt.detect_file(p) for p in takes(fsdd_dir, 7, "george", range(20, 30))]
    assert sum(bool(h) and h[0].label == "seven" for h in hits) >= 6


def test_softmax_heads_are_gated_by_the_prototype_cosine(tmp_path, fsdd_dir):
    """With one word enrolled a softmax head gives every window probability 1; the gate still rejects
    other words, exactly as the prototype head would."""
    d = 128
    bundle = rebundle(tmp_path / "b", "metanet", {"slow_weight": np.eye(d, dtype=np.float32),
                                                  "temperature": np.float32(10.0)}, {"generator": prototype_generator(d)})
    results = {}
    for name, path in (("metanet", bundle), ("prototype", None)):
        with Runtime.open(path) as rt:
            w = rt.enroll_word("two", takes(fsdd_dir, 2, "jackson", range(5)))
            found = sum(bool(rt.detect_file(p)) for p in takes(fsdd_dir, 2, "jackson", range(20, 30)))
            others = sum(bool(rt.detect_file(fsdd_dir / "recordings" / f"{x}_jackson_20.wav")) for x in (0, 1, 3, 4, 5, 6, 7, 8, 9))
            head = rt.make_word_head().fit({"two\0": rt.store.words()[0].embeddings})
            if name == "metanet":
                assert np.allclose(head.scores(rt.background), 1.0)  # ungated, it would accept anything
            results[name] = (round(w.calibration.threshold, 5), found, others)
    assert results["metanet"] == results["prototype"]
    assert results["metanet"][1] >= 6 and results["metanet"][2] <= 3  # of 10 and of 9


class PicksSecond:
    """A softmax head that always prefers word 1."""

    def scores(self, emb):
        return np.tile(np.array([[0.2, 0.8]], np.float32), (len(emb), 1))


def test_the_gate_counts_only_the_word_the_head_picks():
    gate = PrototypeHead().fit({"a": np.eye(4, dtype=np.float32)[:1], "b": np.eye(4, dtype=np.float32)[1:2]})
    vocab = Vocabulary([("a", ""), ("b", "")], np.array([0.5, 0.5], np.float32), np.array([-1, -1]), [], np.zeros(0))
    scorer = Scorer(vocab, PicksSecond(), gate, PrototypeHead().fit({}), "word")
    words, voices = scorer.score({"word": np.array([[0.9, 0.1, 0.0, 0.0]], np.float32)})
    assert words[0] == UNSCORED and words[1] == pytest.approx(0.1, abs=1e-6) and len(voices) == 0


def test_trigger_binding_and_speaker_attribution():
    """A bound word fires only while its voice passes; an unbound one names the voice that passes, if any."""
    vocab = Vocabulary([("unlock", "alice"), ("lights", "")], np.array([0.8, 0.8], np.float32), np.array([0, -1]),
                       ["alice", "bob"], np.array([0.6, 0.6], np.float32))
    cfg = DetectorConfig(smoothing=1, max_wait=1, refractory_s=0.0)

    def run(word_scores, voice_scores):
        trig = Trigger(vocab, cfg, 16000, 16000, 0)
        out = trig.step(HopScores(16000, np.array(word_scores, np.float32), np.array(voice_scores, np.float32)))
        return [(d.label, d.speaker, round(d.speaker_score, 2)) for d in out]

    assert run([0.9, 0.0], [0.7, 0.1]) == [("unlock", "alice", 0.7)]
    assert run([0.9, 0.0], [0.5, 0.9]) == []  # bob said alice's word
    assert run([0.0, 0.9], [0.5, 0.9]) == [("lights", "bob", 0.9)]
    assert run([0.0, 0.9], [0.5, 0.3]) == [("lights", None, 0.5)]
    assert run([0.9, 0.85], [0.2, 0.9]) == [("lights", "bob", 0.9)]  # the bound word is out; the next best fires


def test_trigger_asks_the_template_check_before_a_word_becomes_a_candidate():
    """A word the check rejects never fires and leaves the next best word above its threshold its chance; the
    check is asked once per word and hop, only for words above their thresholds."""
    vocab = Vocabulary([("on", ""), ("off", "")], np.array([0.5, 0.5], np.float32), np.array([-1, -1]), [], np.zeros(0))
    cfg = DetectorConfig(smoothing=1, max_wait=1, refractory_s=0.0)
    asked = []

    def run(word_scores, passes):
        def verify(word, boundary, margin):
            asked.append((word, boundary))
            return word in passes
        trig = Trigger(vocab, cfg, 16000, 16000, 0, verify=verify)
        return [d.label for d in trig.step(HopScores(16000, np.array(word_scores, np.float32), np.zeros(0, np.float32)))]

    assert run([0.9, 0.7], {0, 1}) == ["on"] and asked == [(0, 16000)]
    asked.clear()
    assert run([0.9, 0.7], {1}) == ["off"] and asked == [(0, 16000), (1, 16000)]
    asked.clear()
    assert run([0.9, 0.3], {1}) == [] and asked == [(0, 16000)]  # "off" is below its threshold: not asked
    asked.clear()
    assert run([0.2, 0.3], {0, 1}) == [] and asked == []
