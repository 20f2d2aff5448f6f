"""Relation networks (Sung et al., 2018): a learned module scores how well a query matches a class.

Here the relation module works on embeddings, not feature maps: for a query ``q`` and a class
prototype ``p`` (normalised mean of the class's unit support embeddings, as in ProtoNet) it reads
``[q, p, |q - p|, q * p]`` through a small MLP to a score in [0, 1].

Loss: MSE of the sigmoid scores against the one-hot labels, as in the paper. Each (query, class)
score is regressed to 1 or 0 on its own, so it is an absolute match score, which the device
thresholds per word however many words are enrolled (one word included). Cross-entropy over the
logits would only fix differences between classes: with one enrolled word, every window would
win.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, HeadGraph, Learner, accuracy, class_means


class RelationModule(nn.Module):
    """(query (Q, D), prototypes (N, D)) -> scores (Q, N) in [0, 1]; all pairs by broadcasting."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, query: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        q, p = query[:, None, :], prototypes[None, :, :]
        diff = q - p  # (Q, N, D): its shape carries both dynamic sizes into the graph
        pairs = torch.cat([q.expand_as(diff), p.expand_as(diff), diff.abs(), q * p], dim=-1)
        return torch.sigmoid(self.mlp(pairs).squeeze(-1))


class RelationNet(Learner):
    name = "relation"
    family = "metric"
    head_kind = "relation"

    def __init__(self, encoder: nn.Module, hidden: int = 64) -> None:
        super().__init__(encoder)
        self.relation = RelationModule(encoder.embed_dim, hidden)

    def class_scores(self, zs: torch.Tensor, support_y: torch.Tensor, zq: torch.Tensor, n_way: int) -> torch.Tensor:
        """(Q, n_way) relation scores of unit query embeddings against the support's prototypes."""
        return self.relation(zq, F.normalize(class_means(zs, support_y, n_way), dim=-1))

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        z = self.encoder(torch.cat([support, query]))
        scores = self.class_scores(z[: len(support)], support_y, z[len(support) :], n_way)
        loss = F.mse_loss(scores, F.one_hot(query_y, n_way).to(scores.dtype))
        return EpisodeResult(loss, accuracy(scores, query_y))

    def export_head(self) -> dict[str, np.ndarray]:
        """Nothing beyond the relation graph: prototypes are made on the device from the takes."""
        return {}

    def head_graphs(self) -> dict[str, HeadGraph]:
        d, device = self.encoder.embed_dim, next(self.relation.parameters()).device
        example = tuple(F.normalize(torch.randn(n, d, device=device), dim=-1) for n in (3, 4))
        return {"relation": HeadGraph(
            module=self.relation, inputs=example, input_names=["query", "prototypes"], output_names=["scores"],
            dynamic_axes={"query": {0: "Q"}, "prototypes": {0: "N"}, "scores": {0: "Q", 1: "N"}})}
