"""Memory-augmented network (Santoro et al., 2016), simplified for few-shot classification.

Santoro's MANN writes each example with its (shifted) label into an external memory and reads by
cosine attention over learned keys. Here the write is one step (every support example at once) and the
query phase only reads, so the memory is the support set itself:

- write: key_s = unit(W_k z_s), value_s = one-hot label of s over ``max_way`` slots;
- read:  a = softmax(beta * cos(W_k z_q, key_s)) over the support; the read vector r = a @ values
  is the attention mass on each class;
- output: a small layer shared by all classes maps per-class read features (log mass, best and mean
  key similarity to the class) to a logit. Sharing it across classes keeps the model equivariant to the
  label order, so slots never seen in training (n_way < max_way) work the same on the device.

Slots with no support get a large negative logit; the learner and the device keep the first n_way.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, HeadGraph, Learner, accuracy

ABSENT = -1e4  # logit of an empty slot: finite so softmax over all slots stays NaN-free


class MemoryReader(nn.Module):
    """support (S, D), support_labels (S, max_way) one-hot, query (Q, D) -> logits (Q, max_way)."""

    def __init__(self, embed_dim: int, key_dim: int = 64, hidden: int = 16, init_sharpness: float = 10.0) -> None:
        super().__init__()
        self.key = nn.Linear(embed_dim, key_dim, bias=False)
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(init_sharpness)))
        self.output = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.output[2].weight)  # start as pure attention read-out (matching-network-like)
        nn.init.zeros_(self.output[2].bias)

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        keys = F.normalize(self.key(support), dim=-1)
        sim = F.normalize(self.key(query), dim=-1) @ keys.T  # (Q, S)
        read = torch.softmax(self.log_sharpness.exp() * sim, dim=-1) @ support_labels  # (Q, max_way)
        count = support_labels.sum(0)  # (max_way,)
        present = count > 0
        mean_sim = (sim @ support_labels) / count.clamp_min(1.0)
        best_sim = (sim[:, :, None] + (support_labels[None] - 1.0) * 4.0).amax(dim=1)  # cos >= -1 wins over -5
        log_read = torch.log(read + 1e-6)
        features = torch.stack([log_read, best_sim, mean_sim], dim=-1)  # (Q, max_way, 3)
        logits = log_read + self.output(features).squeeze(-1)
        return torch.where(present, logits, torch.full_like(logits, ABSENT))


class MANN(Learner):
    name = "mann"
    family = "model-based"
    head_kind = "memory"

    def __init__(self, encoder: nn.Module, max_way: int = 16, key_dim: int = 64) -> None:
        super().__init__(encoder)
        self.max_way = max_way
        self.reader = MemoryReader(encoder.embed_dim, key_dim)

    def class_logits(self, zs: torch.Tensor, support_y: torch.Tensor, zq: torch.Tensor, n_way: int) -> torch.Tensor:
        """(Q, n_way) logits of unit query embeddings given unit support embeddings and labels."""
        if n_way > self.max_way:
            raise ValueError(f"n_way {n_way} exceeds the memory's max_way {self.max_way}")
        labels = F.one_hot(support_y, self.max_way).to(zs.dtype)
        return self.reader(zs, labels, zq)[:, :n_way]

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        z = self.encoder(torch.cat([support, query]))
        logits = self.class_logits(z[: len(support)], support_y, z[len(support) :], n_way)
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))

    def export_head(self) -> dict[str, np.ndarray]:
        return {"max_way": np.array(self.max_way, dtype=np.int64),
                "sharpness": np.array(self.reader.log_sharpness.exp().item(), dtype=np.float32)}

    def head_graphs(self) -> dict[str, HeadGraph]:
        d, device = self.encoder.embed_dim, self.reader.key.weight.device
        support = F.normalize(torch.randn(6, d, device=device), dim=-1)
        labels = F.one_hot(torch.arange(6, device=device) % 3, self.max_way).float()
        query = F.normalize(torch.randn(2, d, device=device), dim=-1)
        return {"memory": HeadGraph(
            self.reader, (support, labels, query), ["support", "support_labels", "query"], ["logits"],
            {"support": {0: "S"}, "support_labels": {0: "S"}, "query": {0: "Q"}, "logits": {0: "Q"}})}
