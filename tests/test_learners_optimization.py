"""Optimisation-based learners (MAML, FOMAML, Reptile, Meta-SGD, ANIL) and their device head, on real speech."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge_meta.device.heads.last_layer import LastLayerHead
from edge_meta.episodes import EpisodeSampler
from edge_meta.metrics import unit
from edge_meta.train.encoders import DSCNN
from edge_meta.train.learners.anil import ANIL
from edge_meta.train.learners.maml import FOMAML, MAML
from edge_meta.train.learners.metasgd import MetaSGD
from edge_meta.train.learners.reptile import Reptile

LEARNERS = {cls.name: cls for cls in (MAML, FOMAML, Reptile, MetaSGD, ANIL)}
EPISODES, WINDOW = 50, 10
# Measured (first 10 vs last 10 episodes' mean query loss, seed 0): every learner's falls by 0.9 (Meta-SGD) to 2.1.
MIN_DROP = 0.5


def sample_episodes(real_features, n_way=5, k_shot=2, q_query=3, seed=0):
    feats, labels, speakers = real_features
    sampler = EpisodeSampler(labels, speakers, n_way, k_shot, q_query, "any", seed)
    while True:
        ep = sampler.sample()
        yield (torch.from_numpy(feats[ep.support]), torch.from_numpy(ep.support_y),
               torch.from_numpy(feats[ep.query]), torch.from_numpy(ep.query_y))


@pytest.fixture(scope="module")
def trained(real_features):
    """Each learner meta-trained on the same real 5-way 2-shot episodes with Adam: {name: (learner, losses)}."""
    out = {}
    for name, cls in LEARNERS.items():
        torch.manual_seed(0)
        learner = cls(DSCNN(channels=16, embed_dim=32))
        opt = torch.optim.Adam(learner.parameters(), lr=1e-2)
        episodes = sample_episodes(real_features, seed=0)
        losses = []
        for _ in range(EPISODES):
            s, sy, q, qy = next(episodes)
            result = learner.episode_loss(s, sy, q, qy, 5)
            opt.zero_grad()
            result.loss.backward()
            opt.step()
            losses.append(float(result.loss.detach()))
        out[name] = (learner, np.array(losses))
    return out


def embeddings(learner, support, query):
    learner.eval()
    with torch.no_grad():
        return learner.encoder(support), learner.encoder(query)


def bundle_arrays(learner, tmp_path) -> dict[str, np.ndarray]:
    """export_head() through heads.npz the way the exporter stores it and the device reads it back."""
    np.savez(tmp_path / "heads.npz", **{f"word.{k}": v for k, v in learner.export_head().items()})
    with np.load(tmp_path / "heads.npz", allow_pickle=False) as f:
        return {k.removeprefix("word."): f[k] for k in f.files}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_meta_training_lowers_the_query_loss(trained, name):
    _, losses = trained[name]
    assert np.isfinite(losses).all()
    assert losses[-WINDOW:].mean() < losses[:WINDOW].mean() - MIN_DROP, losses


@pytest.mark.parametrize("name", list(LEARNERS))
def test_export_head_is_plain_numpy_and_needs_no_graphs(trained, name, tmp_path):
    learner, _ = trained[name]
    arrays = learner.export_head()
    assert all(isinstance(v, np.ndarray) and v.dtype.kind in "fiu" for v in arrays.values())
    assert arrays["inner_lr_w"].shape == (32,) and (arrays["inner_lr_w"] > 0).all()
    assert arrays["inner_lr_b"].shape == arrays["steps"].shape == arrays["temperature"].shape == ()
    assert int(arrays["steps"]) == learner.steps and float(arrays["temperature"]) > 1.0
    # the last-layer head is numpy only: there is no ONNX graph to export
    assert learner.head_graphs() == {}
    assert learner.head_kind == LastLayerHead.kind
    head = LastLayerHead.from_bundle(bundle_arrays(learner, tmp_path), {})
    assert head.steps == learner.steps


@pytest.mark.parametrize("name", list(LEARNERS))
def test_device_head_matches_the_torch_learner(trained, name, real_features, tmp_path):
    learner, _ = trained[name]
    s, sy, q, qy = next(sample_episodes(real_features, n_way=5, k_shot=5, q_query=4, seed=7))
    zs, zq = embeddings(learner, s, q)
    torch_scores = learner.adapted_scores(zs, sy, zq, 5).numpy()

    head = LastLayerHead.from_bundle(bundle_arrays(learner, tmp_path), {})
    head.fit({f"word{c}": zs[sy == c].numpy() for c in range(5)})
    device_scores = head.scores(zq.numpy())

    np.testing.assert_array_equal(device_scores.argmax(1), torch_scores.argmax(1))
    assert np.abs(device_scores - torch_scores).max() < 1e-4
    # fine-tuning moved the head away from the prototype head it starts as
    cosines = zq.numpy() @ np.stack([unit(zs[sy == c].numpy().mean(0)) for c in range(5)]).T
    assert np.abs(device_scores - cosines).max() > 1e-2
    if name in ("anil", "metasgd", "reptile"):  # their reported loss is this head's query loss
        logits = learner.temperature.detach() * torch.from_numpy(device_scores)
        result = learner.episode_loss(s, sy, q, qy, 5)
        assert float(result.loss.detach()) == pytest.approx(float(F.cross_entropy(logits, qy)), abs=1e-4)
        assert result.accuracy == pytest.approx(float((logits.argmax(1) == qy).float().mean()))


def test_device_head_takes_any_number_of_words_and_takes(trained, real_features):
    learner, _ = trained["metasgd"]
    s, sy, q, _ = next(sample_episodes(real_features, n_way=3, k_shot=5, q_query=2, seed=3))
    zs, zq = embeddings(learner, s, q)
    keep = torch.cat([torch.nonzero(sy == c).flatten()[: n] for c, n in enumerate((1, 3, 5))])
    head = LastLayerHead.from_bundle(learner.export_head(), {})
    head.fit({f"word{c}": zs[keep][sy[keep] == c].numpy() for c in range(3)})
    expected = learner.adapted_scores(zs[keep], sy[keep], zq, 3).numpy()
    assert np.abs(head.scores(zq.numpy()) - expected).max() < 1e-4

    # one word: softmax has nothing to fine-tune, the head is the prototype head
    head.fit({"only": zs[sy == 0].numpy()})
    np.testing.assert_allclose(head.scores(zq.numpy())[:, 0], zq.numpy() @ unit(zs[sy == 0].numpy().mean(0)), atol=1e-6)
    assert head.fit({}).scores(zq.numpy()).shape == (len(zq), 0)


def test_maml_updates_batchnorm_statistics_only_with_the_meta_parameters(real_features):
    torch.manual_seed(0)
    learner = MAML(DSCNN(channels=16, embed_dim=32), steps=2)
    s, sy, q, qy = next(sample_episodes(real_features))
    reference = copy.deepcopy(learner.encoder)
    reference(s)  # one train-mode forward of the unadapted encoder on the support
    learner.episode_loss(s, sy, q, qy, 5)
    for (name, got), want in zip(learner.encoder.named_buffers(), reference.buffers()):
        torch.testing.assert_close(got, want, msg=name)


def test_first_order_maml_drops_only_the_second_order_terms(real_features):
    s, sy, q, qy = next(sample_episodes(real_features))
    grads, losses = [], []
    for cls in (MAML, FOMAML):
        torch.manual_seed(0)
        learner = cls(DSCNN(channels=16, embed_dim=32, dropout=0.0))
        loss = learner.episode_loss(s, sy, q, qy, 5).loss
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in learner.encoder.parameters() if p.grad is not None]))
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert (grads[0] - grads[1]).abs().max() > 1e-4 * grads[0].abs().max()


def test_reptile_gradient_is_theta_minus_the_adapted_parameters(real_features):
    torch.manual_seed(0)
    learner = Reptile(DSCNN(channels=16, embed_dim=32, dropout=0.0))
    s, sy, q, qy = next(sample_episodes(real_features))
    learner.episode_loss(s, sy, q, qy, 5).loss.backward()
    x, y = torch.cat([s, q]), torch.cat([sy, qy])
    phi = learner.adapt(x, learner.encoder(x), y, 5)
    theta = learner.meta_parameters()
    assert any((theta[n] - phi[n]).abs().max() > 0 for n in theta)
    for n, p in theta.items():
        torch.testing.assert_close(p.grad, (p - phi[n]).detach(), msg=n)
    assert all(p.grad is None for p in learner.step_sizes.parameters())
