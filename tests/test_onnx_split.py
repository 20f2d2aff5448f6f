"""A pair graph is cut into one graph per output, bit-exact; a graph whose outputs share a trunk is left whole."""

import numpy as np
import pytest

from edge_meta.bundle import Bundle, write_manifest
from edge_meta.device.backends import open_backend
from edge_meta.frontend import FrontendSpec

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from edge_meta.export.onnx_split import main, separable, split_bundle  # noqa: E402

SPEC = FrontendSpec()


def _graph(path, shared_trunk: bool) -> None:
    """features (B, 1, 40, 98) -> "word" and "speaker" (B, 8): two trunks of conv + pooling + matmul each, or one
    trunk feeding both projections."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def trunk(tag: str) -> str:
        w = helper.make_tensor(f"{tag}.w", TensorProto.FLOAT, [8, 1, 3, 3], rng.standard_normal(72).tolist())
        inits.append(w)
        nodes.extend([helper.make_node("Conv", ["features", f"{tag}.w"], [f"{tag}.c"], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"{tag}.c"], [f"{tag}.r"]),
                      helper.make_node("GlobalAveragePool", [f"{tag}.r"], [f"{tag}.p"]),
                      helper.make_node("Flatten", [f"{tag}.p"], [f"{tag}.f"])])
        return f"{tag}.f"

    def projection(source: str, name: str) -> None:
        inits.append(helper.make_tensor(f"{name}.m", TensorProto.FLOAT, [8, 8], rng.standard_normal(64).tolist()))
        nodes.append(helper.make_node("MatMul", [source, f"{name}.m"], [name]))

    shared = trunk("shared") if shared_trunk else None
    for name in ("word", "speaker"):
        projection(shared or trunk(name), name)
    graph = helper.make_graph(
        nodes, "pair", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 1, 40, 98])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 8]) for n in ("word", "speaker")], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _bundle(tmp_path, shared_trunk: bool):
    d = tmp_path / ("shared" if shared_trunk else "pair")
    d.mkdir()
    _graph(d / "encoder.int8.onnx", shared_trunk)
    np.savez(d / "heads.npz", **{"background.word": np.eye(8, dtype=np.float16)})
    write_manifest(d, {"frontend": SPEC.to_dict(), "heads": {"word": {"kind": "prototype"}}, "encoder": {
        "input": "features", "outputs": ["word", "speaker"],
        "files": [{"backend": "onnx", "precision": "int8", "file": "encoder.int8.onnx", "quantization": "q"}]}})
    return d


def test_a_pair_is_split_into_graphs_that_compute_exactly_what_the_whole_did(tmp_path):
    d = _bundle(tmp_path, shared_trunk=False)
    feats = np.random.default_rng(1).standard_normal((3, 1, 40, 98)).astype(np.float32)
    whole = open_backend(Bundle.open(d)).embed(feats)
    old_id = Bundle.open(d).bundle_id
    assert split_bundle(d)
    b = Bundle.open(d)
    assert b.bundle_id != old_id and b.manifest["provenance"]["split_from"].keys() == {"encoder.int8.onnx"}
    assert [(p.name, o) for p, o in b.encoder_files("onnx", "int8")] == [
        ("encoder.int8.word.onnx", ["word"]), ("encoder.int8.speaker.onnx", ["speaker"])]
    assert all(e["quantization"] == "q" for e in b.manifest["encoder"]["files"])
    backend = open_backend(b)
    assert backend.separable
    for name in ("word", "speaker"):
        np.testing.assert_array_equal(backend.embed(feats, [name])[name], whole[name])
    assert set(backend.embed(feats, ["word"])) == {"word"}
    assert not split_bundle(d)  # already split: nothing to do


def test_outputs_that_share_a_trunk_stay_one_graph(tmp_path, capsys):
    d = _bundle(tmp_path, shared_trunk=True)
    assert not separable(d / "encoder.int8.onnx", ["word", "speaker"])
    assert main([str(d)]) == 0 and "nothing to split" in capsys.readouterr().out
    assert not open_backend(Bundle.open(d)).separable
    assert main([str(tmp_path / "nowhere")]) == 2 and "not a bundle directory" in capsys.readouterr().err

