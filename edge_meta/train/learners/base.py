"""The one interface every meta-learner implements.

A learner wraps an encoder (learn2learn style: a small module around a model). Training calls
`episode_loss` on an episode already turned into encoder inputs; export calls `export_head` to get
what the device runs after enrollment, as plain numpy arrays (no pickle) for ``heads.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class EpisodeResult:
    loss: torch.Tensor
    accuracy: float


@dataclass
class HeadGraph:
    """A learned head module the exporter writes as ``heads/<name>.onnx`` (fp32, opset 17) for the device."""

    module: nn.Module
    inputs: tuple[torch.Tensor, ...]  # example inputs for tracing
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]


class Learner(nn.Module):
    name: str = ""
    family: str = ""  # metric | optimization | model-based
    head_kind: str = ""  # the device head that runs after enrollment

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def episode_loss(
        self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, query_y: torch.Tensor, n_way: int
    ) -> EpisodeResult:
        raise NotImplementedError

    def export_head(self) -> dict[str, np.ndarray]:
        """Arrays the device head needs, keyed by name; the manifest records ``head_kind``."""
        raise NotImplementedError

    def head_graphs(self) -> dict[str, HeadGraph]:
        """Learned modules the device runs through onnxruntime (relation module, generator, ...)."""
        return {}


def class_means(z: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Mean embedding per class (n_way, D) from embeddings z and labels y in 0..n_way-1."""
    sums = torch.zeros(n_way, z.shape[1], device=z.device, dtype=z.dtype).index_add_(0, y, z)
    counts = torch.bincount(y, minlength=n_way).clamp_min(1).to(z.dtype)
    return sums / counts[:, None]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == y).float().mean())
