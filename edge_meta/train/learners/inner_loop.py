"""The shared inner loop of the optimisation-based learners (MAML, FOMAML, Reptile, Meta-SGD, ANIL).

All of them fine-tune the same *last layer* on the unit word embedding z, the head the device can
fine-tune with numpy after enrollment (`edge_meta.device.heads.last_layer`):

    scores = W z + b,    logits = temperature * scores

The device enrolls any number of words, so W (words, D) and b (words,) cannot be meta-learned
directly. Each episode initialises them from the support set, Proto-MAML style (Triantafillou et
al., 2020), but with the cosine of the prototype learner: W0 = the unit-length mean of each word's
unit embeddings, b0 = 0, so before any step the head *is* the prototype head and its scores are
cosines. What is meta-learned does not depend on the word count: the temperature and the inner
step sizes (one per embedding dimension for Meta-SGD, else one shared; broadcast over the words'
rows; one for the biases). A scale on W0 is not learned: with a learned temperature and step size
it would be redundant. The number of steps is a hyperparameter.

Parameters travel as plain dicts of tensors through ``torch.func.functional_call`` and
``torch.autograd.grad`` (``create_graph`` for second order): learn2learn's ``clone()``/``adapt()``
become `prototype_head` and `sgd_step`. The head's entries are keyed ``head.weight`` and ``head.bias``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from edge_meta.train.learners.base import Learner, class_means

Params = dict[str, torch.Tensor]


def prototype_head(z: torch.Tensor, y: torch.Tensor, n_way: int) -> Params:
    """The episode's initial head: unit-length class means as weights, zero biases (a leaf the inner
    loop differentiates)."""
    return {"head.weight": F.normalize(class_means(z, y, n_way), dim=-1),
            "head.bias": z.new_zeros(n_way).requires_grad_()}


def head_scores(params: Params, z: torch.Tensor) -> torch.Tensor:
    """(B, words) cosine-like scores: what the device head returns."""
    return z @ params["head.weight"].T + params["head.bias"]


def head_logits(params: Params, z: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    return temperature * head_scores(params, z)


def sgd_step(params: Params, loss: torch.Tensor, lrs: dict[str, torch.Tensor | float], second_order: bool) -> Params:
    """One gradient step on every entry of ``params``; entries the loss does not reach stay as they are.

    ``second_order`` keeps the graph of the gradients (MAML); otherwise they are constants, and the
    result still depends on the input parameters through ``p - lr * g`` (first-order MAML). The graph
    of ``loss`` is retained because the outer loss may reach the same forward pass (via the head's
    prototype init).
    """
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=second_order, retain_graph=True,
                                allow_unused=True)
    return {name: p if g is None else p - lrs[name] * g for (name, p), g in zip(params.items(), grads)}


def embed_with(encoder: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """The encoder's unit word embeddings with the (adapted) entries of ``params`` named like its parameters."""
    return functional_call(encoder, {name: params[name] for name, _ in encoder.named_parameters()}, (x,))


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """Inside, BatchNorm layers in train mode normalise with the batch's statistics and leave their
    running statistics alone (eval mode still uses them).

    Running statistics are what the exported encoder uses in eval mode, so only forward passes with
    the meta-learned (unadapted) parameters may update them; forwards with adapted parameters run in
    here. This is the effect of ``torch.func.replace_all_batch_norm_modules_`` for the duration of the
    inner loop only: that function deletes the running statistics for good, and the device needs them.
    (The inner loop uses ``torch.autograd.grad``, not ``torch.func`` transforms, so in-place buffer
    updates would not break it; keeping adapted forwards out of the statistics is the point.)
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


class StepSizes(nn.Module):
    """The head's inner step sizes, learned in log space so they stay positive: ``dims`` for the
    weights (one per embedding dimension, or 1 shared), broadcast over the words' rows, and one for
    the biases."""

    def __init__(self, dims: int, lr: float) -> None:
        super().__init__()
        self.log_lr_w = nn.Parameter(torch.full((dims,), math.log(lr)))
        self.log_lr_b = nn.Parameter(torch.tensor(math.log(lr)))

    def forward(self) -> dict[str, torch.Tensor]:
        return {"head.weight": self.log_lr_w.exp(), "head.bias": self.log_lr_b.exp()}


class LastLayerLearner(Learner):
    """Base of the learners whose device head is the last layer fine-tuned from the prototype init.

    Subclasses decide what else adapts in meta-training (the encoder for MAML and Reptile, nothing
    for ANIL and Meta-SGD); `adapted_scores` is the head-only fine-tuning the device runs.
    """

    family = "optimization"
    head_kind = "last_layer"
    per_dimension_lr = False  # Meta-SGD learns one step size per embedding dimension

    def __init__(self, encoder: nn.Module, steps: int = 5, inner_lr: float = 0.1, temperature: float = 10.0) -> None:
        super().__init__(encoder)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.steps = steps
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.step_sizes = StepSizes(encoder.embed_dim if self.per_dimension_lr else 1, inner_lr)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def adapt_head(self, head: Params, z: torch.Tensor, y: torch.Tensor, second_order: bool) -> Params:
        """``steps`` gradient steps of the head alone on fixed embeddings ``z``."""
        lrs = self.step_sizes()
        for _ in range(self.steps):
            head = sgd_step(head, F.cross_entropy(head_logits(head, z, self.temperature), y), lrs, second_order)
        return head

    def adapted_scores(self, zs: torch.Tensor, ys: torch.Tensor, zq: torch.Tensor, n_way: int) -> torch.Tensor:
        """The device head's computation in torch: fit the head on support embeddings, then the
        (queries, n_way) scores of the query embeddings (logits / temperature). No encoder adaptation."""
        with torch.enable_grad():
            head = {k: v.detach().requires_grad_() for k, v in prototype_head(zs.detach(), ys, n_way).items()}
            head = self.adapt_head(head, zs.detach(), ys, second_order=False)
        return head_scores(head, zq).detach()

    def export_head(self) -> dict[str, np.ndarray]:
        """What `LastLayerHead` needs: step sizes (weights (D,), bias ()), steps and temperature."""
        lrs = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.step_sizes().items()}
        return {
            "inner_lr_w": np.broadcast_to(lrs["head.weight"], (self.encoder.embed_dim,)).copy(),
            "inner_lr_b": lrs["head.bias"].reshape(()),
            "steps": np.array(self.steps, dtype=np.int64),
            "temperature": np.array(self.temperature.item(), dtype=np.float32),
        }
