"""Prototypical networks (Snell et al., 2017) with cosine distance and a learned temperature.

The prototype of a class is the normalised mean of its normalised support embeddings; a query's
logits are its cosine to each prototype times a learned scale. This is exactly what the device's
prototype head computes, so training and enrollment agree.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from edge_meta.train.learners.base import EpisodeResult, Learner, accuracy, class_means


class ProtoNet(Learner):
    name = "protonet"
    family = "metric"
    head_kind = "prototype"

    def __init__(self, encoder: torch.nn.Module, init_scale: float = 10.0) -> None:
        super().__init__(encoder)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(init_scale)))

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        z = self.encoder(torch.cat([support, query]))
        zs, zq = z[: len(support)], z[len(support) :]
        prototypes = F.normalize(class_means(zs, support_y, n_way), dim=-1)
        logits = self.log_scale.exp() * zq @ prototypes.T
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))

    def export_head(self) -> dict[str, np.ndarray]:
        return {"temperature": np.array(self.log_scale.exp().item(), dtype=np.float32)}
