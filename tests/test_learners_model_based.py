"""Model-based learners (MANN, Meta Networks, SNAIL) on real speech: meta-training lowers the loss, the
head graphs export to ONNX with dynamic sizes, and the device heads (numpy + onnxruntime) decide
like the torch learners they came from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edge_meta.device.heads.graph_heads import MemoryHead, MetaNetHead, SnailHead
from edge_meta.episodes import EpisodeSampler
from edge_meta.train.encoders import DSCNN
from edge_meta.train.learners.mann import MANN
from edge_meta.train.learners.metanet import MetaNet
from edge_meta.train.learners.snail import SNAIL

# learner, device head, how far the mean loss of the last 20 of 100 episodes must fall below the first
# 20 (measured over seeds 0-2 on this corpus: mann >= 1.07, metanet >= 0.91, snail >= 0.22)
CASES = {"mann": (MANN, MemoryHead, 0.7), "metanet": (MetaNet, MetaNetHead, 0.6), "snail": (SNAIL, SnailHead, 0.15)}
EPISODES = 100


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request, real_features):
    """(name, learner, losses): a tiny-encoder learner meta-trained on real 5-way 2-shot episodes."""
    feats, labels, speakers = real_features
    name = request.param
    torch.manual_seed(0)
    learner = CASES[name][0](DSCNN(channels=16, embed_dim=32))
    optimizer = torch.optim.Adam(learner.parameters(), lr=3e-3)
    sampler = EpisodeSampler(labels, speakers, 5, 2, 3, "any", seed=0)
    losses = []
    for _ in range(EPISODES):
        ep = sampler.sample()
        result = learner.episode_loss(torch.from_numpy(feats[ep.support]), torch.from_numpy(ep.support_y),
                                      torch.from_numpy(feats[ep.query]), torch.from_numpy(ep.query_y), 5)
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
        losses.append(float(result.loss.detach()))
    return name, learner.eval(), np.array(losses)


def export_graphs(learner, folder) -> dict:
    """What the exporter does with `head_graphs()`: heads/<name>.onnx, opset 17, legacy exporter."""
    paths = {}
    for name, g in learner.head_graphs().items():
        paths[name] = folder / f"{name}.onnx"
        torch.onnx.export(g.module, g.inputs, str(paths[name]), input_names=g.input_names,
                          output_names=g.output_names, dynamic_axes=g.dynamic_axes, opset_version=17, dynamo=False)
    return paths


def bundle_arrays(learner, folder) -> dict[str, np.ndarray]:
    """`export_head()` through heads.npz and back, refusing pickled (object) arrays like the device does."""
    np.savez(folder / "heads.npz", **learner.export_head())
    with np.load(folder / "heads.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_meta_training_lowers_the_query_loss(trained):
    name, _, losses = trained
    first, last = losses[:20].mean(), losses[-20:].mean()
    assert last < first - CASES[name][2], f"{name}: first {first:.3f} last {last:.3f}"
    if name != "snail":  # SNAIL starts as a weaker matching network and is still near chance after 100 episodes
        assert last < math.log(5), f"{name}: last {last:.3f} is no better than chance"


@pytest.mark.filterwarnings("ignore")
def test_head_exports_to_onnx_with_dynamic_sizes(trained, tmp_path):
    import onnxruntime as ort

    _, learner, _ = trained
    arrays = learner.export_head()
    assert arrays and all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    bundle_arrays(learner, tmp_path)
    graphs = learner.head_graphs()
    paths = export_graphs(learner, tmp_path)
    assert set(paths) == set(graphs)
    rng = np.random.default_rng(0)
    d = learner.encoder.embed_dim
    for name, g in graphs.items():
        session = ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
        for s, q in ((4, 1), (23, 9)):
            if name == "generator":
                feeds = {"statistics": rng.standard_normal((s, d + 2)).astype(np.float32)}
            else:
                feeds = {"support": unit_rows(rng, s, d),
                         "support_labels": np.eye(learner.max_way, dtype=np.float32)[np.arange(s) % 6],
                         "query": unit_rows(rng, q, d)}
            (got,) = session.run(None, feeds)
            with torch.no_grad():
                want = g.module(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
            assert got.shape == want.shape and got.shape[0] == (s if name == "generator" else q)
            assert np.abs(got - want).max() < 1e-4


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cls", [MANN, MetaNet, SNAIL])
def test_head_graphs_stay_small_at_the_shipped_embedding_size(cls, tmp_path):
    for path in export_graphs(cls(DSCNN(channels=16, embed_dim=128)), tmp_path).values():
        assert path.stat().st_size < 200_000


@pytest.mark.filterwarnings("ignore")
def test_device_head_decides_like_the_torch_learner(trained, real_features, tmp_path):
    """Seven words (more than the 5 trained with) with 1 to 3 takes each, embedded by the torch encoder."""
    name, learner, _ = trained
    feats, labels, speakers = real_features
    ep = EpisodeSampler(labels, speakers, 7, 3, 4, "any", seed=11).sample()
    keep = np.concatenate([np.flatnonzero(ep.support_y == c)[: 1 + c % 3] for c in range(7)])  # class-major
    with torch.no_grad():
        zs = learner.encoder(torch.from_numpy(feats[ep.support[keep]]))
        zq = learner.encoder(torch.from_numpy(feats[ep.query]))
        sy = torch.from_numpy(ep.support_y[keep])
        want = torch.softmax(learner.class_logits(zs, sy, zq, 7), dim=1).numpy()
    head = CASES[name][1].from_bundle(bundle_arrays(learner, tmp_path), export_graphs(learner, tmp_path))
    head.fit({f"word{c}": zs[sy == c].numpy() for c in range(7)})
    got = head.scores(zq.numpy())
    assert got.shape == (len(ep.query), 7) and np.allclose(got.sum(1), 1.0, atol=1e-5)
    assert np.abs(got - want).max() < 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cls, head", [(MANN, MemoryHead), (SNAIL, SnailHead)])
def test_slot_heads_refuse_more_words_than_slots(cls, head, tmp_path):
    learner = cls(DSCNN(channels=16, embed_dim=32), max_way=4)
    device = head.from_bundle(bundle_arrays(learner, tmp_path), export_graphs(learner, tmp_path))
    takes = {f"w{i}": np.eye(32, dtype=np.float32)[i : i + 2] for i in range(5)}
    with pytest.raises(ValueError, match="at most 4 words"):
        device.fit(takes)
    assert device.fit({}).scores(np.eye(32, dtype=np.float32)[:3]).shape == (3, 0)
    assert device.fit(dict(list(takes.items())[:4])).scores(np.eye(32, dtype=np.float32)[:3]).shape == (3, 4)


def test_graph_heads_import_without_torch(run_without_torch):
    r = run_without_torch("""
        import edge_meta.device.heads.graph_heads
        assert "torch" not in sys.modules
    """, timeout=120)
    assert r.returncode == 0, r.stderr
