"""Matching networks (Vinyals et al., 2016): a query attends over the support set.

A query's attention over the support takes is a softmax of scaled cosines (learned temperature);
summing it per class gives its class distribution, and the loss is that distribution's NLL.

The per-class quantity used here is the *soft cosine* ``s_c = (1/t) log mean_{i in c} exp(t cos_i)``:
``softmax(t * s)`` is exactly the per-class attention mass when classes have equal take counts (as
in every training episode), and ``s_c`` depends on class ``c``'s takes only, lies between their mean
and max cosine and is not inflated by extra takes. So the device can threshold it per word, like
the prototype head's cosine, however many words (1..N) and takes (1..10) are enrolled.

Full-context embeddings (``fce=True``) replace the paper's LSTMs with attention a device can run
as one small ONNX graph: g is one residual self-attention layer over the support set, f refines a
query for a fixed number of steps by reading (attending over) the refined support.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, HeadGraph, Learner, accuracy


class FullContextEmbedding(nn.Module):
    """(support (S, D), query (Q, D)) -> the same, conditioned on the support set, unit length.

    Both output projections start at zero, so training starts from plain matching networks. There
    is no position information: the result does not depend on the order of the takes, and S and Q
    may be anything (the device passes all enrolled takes at once).
    """

    def __init__(self, dim: int, steps: int = 2, init_scale: float = 10.0) -> None:
        super().__init__()
        self.steps = steps
        self.key_scale = dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.support_out = nn.Linear(dim, dim)
        self.query_out = nn.Linear(2 * dim, dim)
        for layer in (self.support_out, self.query_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.log_read_scale = nn.Parameter(torch.tensor(math.log(init_scale)))

    def forward(self, support: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(support).chunk(3, dim=-1)
        attn = torch.softmax(self.key_scale * q @ k.T, dim=-1)
        g = F.normalize(support + self.support_out(attn @ v), dim=-1)
        h = query
        for _ in range(self.steps):  # unrolled when traced: a fixed-size graph
            read = torch.softmax(self.log_read_scale.exp() * h @ g.T, dim=-1) @ g
            h = F.normalize(query + self.query_out(torch.cat([h, read], dim=-1)), dim=-1)
        return g, h


def soft_cosine(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, n_way: int,
                temperature: torch.Tensor) -> torch.Tensor:
    """(Q, n_way): (1/t) log mean over the class's takes of exp(t * cosine); see the module docstring."""
    sim = temperature * query @ support.T  # (Q, S)
    member = F.one_hot(support_y, n_way).T.bool()  # (n_way, S)
    masked = sim[:, None, :].masked_fill(~member[None], float("-inf"))  # (Q, n_way, S)
    counts = member.sum(dim=1).clamp_min(1).to(sim.dtype)
    return (torch.logsumexp(masked, dim=-1) - counts.log()) / temperature


class MatchingNet(Learner):
    name = "matching"
    family = "metric"
    head_kind = "matching"

    def __init__(self, encoder: nn.Module, init_scale: float = 10.0, fce: bool = False, fce_steps: int = 2) -> None:
        super().__init__(encoder)
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.fce = FullContextEmbedding(encoder.embed_dim, fce_steps, init_scale) if fce else None

    def class_scores(self, zs: torch.Tensor, support_y: torch.Tensor, zq: torch.Tensor, n_way: int) -> torch.Tensor:
        """Per-class soft cosines (Q, n_way) of unit query embeddings, after FCE when it is on."""
        if self.fce is not None:
            zs, zq = self.fce(zs, zq)
        return soft_cosine(zs, support_y, zq, n_way, self.log_scale.exp())

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        z = self.encoder(torch.cat([support, query]))
        logits = self.log_scale.exp() * self.class_scores(z[: len(support)], support_y, z[len(support) :], n_way)
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))

    def export_head(self) -> dict[str, np.ndarray]:
        return {"temperature": np.array(self.log_scale.exp().item(), dtype=np.float32),
                "fce": np.array(int(self.fce is not None), dtype=np.int8)}

    def head_graphs(self) -> dict[str, HeadGraph]:
        if self.fce is None:
            return {}
        d, device = self.encoder.embed_dim, next(self.fce.parameters()).device
        example = tuple(F.normalize(torch.randn(n, d, device=device), dim=-1) for n in (6, 3))
        return {"fce": HeadGraph(
            module=self.fce, inputs=example, input_names=["support_emb", "query_emb"],
            output_names=["support_refined", "query_refined"],
            dynamic_axes={"support_emb": {0: "S"}, "query_emb": {0: "Q"},
                          "support_refined": {0: "S"}, "query_refined": {0: "Q"}})}
