"""Meta Networks (Munkhdalai & Yu, 2017), simplified: a meta-learner generates fast weights per task.

In the paper a meta-learner turns per-example loss gradients of a base learner into *fast weights*
that are combined with the base learner's *slow weights* (trained by SGD across tasks). Here the
meta information is cheaper and needs no backward pass on the device: per-class statistics of the
support embeddings (their mean, its length as a measure of spread, and the log of the number of
takes). The generator g maps each class's statistics to the fast weights of that class's output unit
(a weight vector and a bias); the slow weights are a learned linear map of the query and the score
temperature. A query's logit for class c is

    temperature * cos(W_slow z_q, w_c) + b_c,   (w_c, b_c) = g(stats_c)

so the device computes the statistics with numpy at enrollment, runs g once (ONNX graph
``generator``), and scores every window with numpy. Classes are independent rows: any number of
enrolled words works, no padding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, HeadGraph, Learner, accuracy, class_means


class FastWeightGenerator(nn.Module):
    """Task statistics (N, F) -> fast weights (N, P): a linear map plus an MLP correction.

    General on purpose (any statistics, any parameter block); the MLP's last layer starts at zero so
    a fresh generator is exactly its linear part, which the caller may initialise to a sensible rule.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.correction = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features))
        nn.init.zeros_(self.correction[2].weight)
        nn.init.zeros_(self.correction[2].bias)

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        return self.linear(statistics) + self.correction(statistics)


def class_statistics(z: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
    """(n_way, D + 2): mean support embedding, its length (1 = takes agree, lower = spread), log #takes."""
    mean = class_means(z, y, n_way)
    count = torch.bincount(y, minlength=n_way).clamp_min(1).to(z.dtype)
    return torch.cat([mean, mean.norm(dim=-1, keepdim=True), count.log()[:, None]], dim=-1)


class MetaNet(Learner):
    name = "metanet"
    family = "model-based"
    head_kind = "metanet"

    def __init__(self, encoder: nn.Module, hidden: int = 32, init_scale: float = 10.0) -> None:
        super().__init__(encoder)
        d = encoder.embed_dim
        self.slow = nn.Linear(d, d, bias=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.generator = FastWeightGenerator(d + 2, d + 1, hidden)
        with torch.no_grad():  # start as cosine-to-class-mean (a prototype classifier) and learn from there
            self.slow.weight.copy_(torch.eye(d))
            self.generator.linear.weight.zero_()
            self.generator.linear.weight[:d, :d] = torch.eye(d)
            self.generator.linear.bias.zero_()

    def class_logits(self, zs: torch.Tensor, support_y: torch.Tensor, zq: torch.Tensor, n_way: int) -> torch.Tensor:
        """(Q, n_way) logits of unit query embeddings given unit support embeddings and labels."""
        fast = self.generator(class_statistics(zs, support_y, n_way))
        weight, bias = F.normalize(fast[:, :-1], dim=-1), fast[:, -1]
        return self.log_scale.exp() * F.normalize(self.slow(zq), dim=-1) @ weight.T + bias

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        z = self.encoder(torch.cat([support, query]))
        logits = self.class_logits(z[: len(support)], support_y, z[len(support) :], n_way)
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))

    def export_head(self) -> dict[str, np.ndarray]:
        return {"slow_weight": self.slow.weight.detach().cpu().numpy().astype(np.float32),
                "temperature": np.array(self.log_scale.exp().item(), dtype=np.float32)}

    def head_graphs(self) -> dict[str, HeadGraph]:
        d, device = self.encoder.embed_dim, self.slow.weight.device
        statistics = torch.randn(3, d + 2, device=device)
        return {"generator": HeadGraph(self.generator, (statistics,), ["statistics"], ["fast_weights"],
                                       {"statistics": {0: "N"}, "fast_weights": {0: "N"}})}
