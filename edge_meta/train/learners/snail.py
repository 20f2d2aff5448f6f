"""SNAIL (Mishra et al., 2018): temporal convolutions and causal attention over the episode as a sequence.

Each query gets its own sequence [support_1 .. support_S, query]; an element is its unit embedding
concatenated with its one-hot label over ``max_way`` slots (zeros for the query). Dense blocks of
dilated causal 1-D convolutions (gated, their outputs concatenated to their inputs) aggregate nearby
elements; causal soft attention lets every position look up any earlier one. The output at the query's
position is a logit per label slot. All queries run as one batch of sequences, so the exported graph
predicts any number of queries from any number of support takes.

The output layer has a row per slot, so training spreads each episode's classes over random slots
(all ``max_way`` get trained even when n_way < max_way) and shuffles the support order; the device
fills slots 0..n_words-1 in enrollment order.

Departures from the paper, both for a model that trains in hundreds rather than tens of thousands of
episodes: attention compares positions by cosine with a learned temperature, and the model starts
as a matching network (see `SnailModel`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, HeadGraph, Learner, accuracy


class DenseCausalConv(nn.Module):
    """Gated dilated causal convolution whose output is appended to its input: (B, T, C) -> (B, T, C + filters)."""

    def __init__(self, channels: int, filters: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(channels, 2 * filters, kernel_size=2, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(F.pad(x.transpose(1, 2), (self.dilation, 0))).transpose(1, 2)
        value, gate = h.chunk(2, dim=-1)
        return torch.cat([x, torch.tanh(value) * torch.sigmoid(gate)], dim=-1)


class TCBlock(nn.Sequential):
    """Dense causal convolutions with dilations 1, 2, 4, ...: a receptive field of 2**layers elements."""

    def __init__(self, channels: int, filters: int, layers: int) -> None:
        super().__init__(*[DenseCausalConv(channels + i * filters, filters, 2**i) for i in range(layers)])
        self.out_channels = channels + layers * filters


class CausalAttention(nn.Module):
    """Single-head causal soft attention whose read-out is appended: (B, T, C) -> (B, T, C + value_dim).

    Queries and keys share one projection and are compared by cosine with a learned temperature (as
    in the memory network): a position starts by attending to the takes most like it, which trains
    in far fewer episodes than SNAIL's scaled dot product from a random start."""

    def __init__(self, channels: int, key_dim: int, value_dim: int, init_sharpness: float = 10.0,
                 strict: bool = False) -> None:
        super().__init__()
        self.strict = strict  # attend to earlier positions only (the first one to itself)
        self.key = nn.Linear(channels, key_dim, bias=False)
        self.value = nn.Linear(channels, value_dim)
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(init_sharpness)))
        self.out_channels = channels + value_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = F.normalize(self.key(x), dim=-1)
        scores = self.log_sharpness.exp() * key @ key.transpose(1, 2)  # (B, T, T)
        position = torch.ones_like(x[0, :, 0]).cumsum(0)  # built from x so the exported graph keeps T dynamic
        blocked = position[None, :] > position[:, None]  # the future
        if self.strict:  # and itself, except the first position, which has nothing else to read
            blocked = blocked | ((position[None, :] == position[:, None]) & (position[:, None] > 1))
        scores = scores.masked_fill(blocked, -1e9)
        return torch.cat([x, torch.softmax(scores, dim=-1) @ self.value(x)], dim=-1)


class SnailModel(nn.Module):
    """support (S, D), support_labels (S, max_way) one-hot, query (Q, D) -> logits (Q, max_way).

    The first attention reads the raw elements [embedding, label]; the convolutions and the second
    attention work on a narrow projection of them plus that read-out. At initialisation the first
    attention compares embeddings only, its values are the labels and the output layer passes them
    through, so training starts from a matching network (slot logits = attention mass on each label)
    instead of SNAIL's long plateau at chance, and learns the rest from there.
    """

    def __init__(self, embed_dim: int, max_way: int, width: int = 32, filters: int = 8, layers: int = 5,
                 key_dim: int = 32) -> None:
        super().__init__()
        self.max_way = max_way
        self.lookup = CausalAttention(embed_dim + max_way, key_dim, max_way, strict=True)
        self.inp = nn.Linear(embed_dim + max_way, width)
        tc = TCBlock(width + max_way, filters, layers)
        self.body = nn.Sequential(tc, CausalAttention(tc.out_channels, 16, 32))
        self.out = nn.Linear(self.body[1].out_channels, max_way)
        with torch.no_grad():
            self.lookup.key.weight[:, embed_dim:] = 0.0
            nn.init.orthogonal_(self.lookup.key.weight[:, :embed_dim])
            self.lookup.value.weight.zero_()
            self.lookup.value.bias.zero_()
            self.lookup.value.weight[:, embed_dim:] = torch.eye(max_way)
            self.out.weight.zero_()
            self.out.bias.zero_()
            self.out.weight[:, width : width + max_way] = 3.0 * torch.eye(max_way)

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        memory = torch.cat([support, support_labels], dim=-1)  # (S, D + max_way)
        last = F.pad(query, (0, self.max_way))[:, None]  # (Q, 1, D + max_way): the query carries no label
        sequence = torch.cat([memory[None] + torch.zeros_like(last), last], dim=1)  # (Q, S + 1, D + max_way)
        read = self.lookup(sequence)[..., -self.max_way :]
        h = self.body(torch.cat([self.inp(sequence), read], dim=-1))
        return self.out(h[:, -1])


class SNAIL(Learner):
    name = "snail"
    family = "model-based"
    head_kind = "snail"

    def __init__(self, encoder: nn.Module, max_way: int = 16, width: int = 32, filters: int = 8,
                 layers: int = 5) -> None:
        super().__init__(encoder)
        self.max_way = max_way
        self.model = SnailModel(encoder.embed_dim, max_way, width, filters, layers)

    def class_logits(self, zs: torch.Tensor, support_y: torch.Tensor, zq: torch.Tensor, n_way: int,
                     slots: torch.Tensor | None = None) -> torch.Tensor:
        """(Q, n_way) logits; class c sits in label slot ``slots[c]`` (default: slot c, as on the device)."""
        if n_way > self.max_way:
            raise ValueError(f"n_way {n_way} exceeds SNAIL's max_way {self.max_way}")
        slots = torch.arange(n_way, device=zs.device) if slots is None else slots
        labels = F.one_hot(slots[support_y], self.max_way).to(zs.dtype)
        return self.model(zs, labels, zq)[:, slots]

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        z = self.encoder(torch.cat([support, query]))
        order = torch.randperm(len(support), device=z.device)
        slots = torch.randperm(self.max_way, device=z.device)[:n_way]
        logits = self.class_logits(z[: len(support)][order], support_y[order], z[len(support) :], n_way, slots)
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))

    def export_head(self) -> dict[str, np.ndarray]:
        return {"max_way": np.array(self.max_way, dtype=np.int64)}

    def head_graphs(self) -> dict[str, HeadGraph]:
        d, device = self.encoder.embed_dim, self.model.out.weight.device
        support = F.normalize(torch.randn(6, d, device=device), dim=-1)
        labels = F.one_hot(torch.arange(6, device=device) % 3, self.max_way).float()
        query = F.normalize(torch.randn(2, d, device=device), dim=-1)
        return {"snail": HeadGraph(
            self.model, (support, labels, query), ["support", "support_labels", "query"], ["logits"],
            {"support": {0: "S"}, "support_labels": {0: "S"}, "query": {0: "Q"}, "logits": {0: "Q"}})}
