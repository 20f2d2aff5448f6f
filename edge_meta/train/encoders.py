"""Small keyword-spotting encoders: log-mel window (B, 1, n_mels, n_frames) -> unit-length embeddings.

Every encoder is a *trunk* (convolutions + pooling into a feature vector) and named *projections*
(linear maps to unit-length embeddings). The ``word`` projection is always there; a ``speaker``
projection is added when training asks for speaker embeddings, so one encoder pass on the device
serves both heads.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class DSBlock(nn.Module):
    """Depthwise-separable conv: depthwise 3x3 (dilated in time) + pointwise 1x1, each with BN + ReLU."""

    def __init__(self, channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, stride=stride, padding=(1, dilation),
                                   dilation=(1, dilation), groups=channels, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.residual = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.depthwise(x)))
        y = self.bn2(self.pointwise(y))
        return F.relu(y + x if self.residual else y)


class DSCNN(nn.Module):
    """DS-CNN (Zhang et al., "Hello Edge", 2017) with residual blocks, time dilation for a receptive
    field that spans a whole word, and mean+max pooling so a short word in a long window still counts."""

    def __init__(
        self,
        n_mels: int = 40,
        channels: int = 96,
        strides: Sequence[int] = (1, 2, 1, 1, 1),
        dilations: Sequence[int] = (1, 1, 2, 4, 8),
        embed_dim: int = 128,
        projections: Sequence[str] = ("word",),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels, (5, 5), stride=(2, 2), padding=(2, 2), bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(*[DSBlock(channels, s, d) for s, d in zip(strides, dilations, strict=True)])
        self.feature_dim = 2 * channels
        # Pooled ReLU features share a large positive offset, which makes every embedding nearly the
        # same direction at init (cosines ~0.99) and stalls metric learning; normalising them fixes it.
        self.pool_norm = nn.BatchNorm1d(self.feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.embed_dim = embed_dim
        self.projections = nn.ModuleDict({name: nn.Linear(self.feature_dim, embed_dim) for name in projections})
        self.autocast_dtype: torch.dtype | None = None  # the trainer sets bf16 for mixed-precision training

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Mean and max over time and frequency of the last block, before normalisation."""
        h = self.blocks(self.stem(x))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_norm(self.pooled(x))

    def embed(self, x: torch.Tensor, projection: str = "word") -> torch.Tensor:
        """Unit-length embeddings; the convolutions may run in bf16 (`autocast_dtype`), the
        normalisation and everything the learners compute from it stay in fp32."""
        with torch.autocast(x.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None):
            z = self.projections[projection](self.dropout(self.trunk(x)))
        return F.normalize(z.float(), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


class EncoderPair(nn.Module):
    """Two small DS-CNNs behind one encoder interface: one trained for words, one for voices.

    DESIGN.md allows it when one shared trunk cannot reach both targets: word embeddings must ignore
    the speaker and speaker embeddings the word, and the shared trunk trained with both objectives
    lost 2-3 points of word accuracy (benchmarks/RESULTS.md). The device still makes one encoder call
    per hop (one graph with both outputs); it costs two trunks' time and bytes."""

    def __init__(self, n_mels: int = 40, word: dict | None = None, speaker: dict | None = None) -> None:
        super().__init__()
        self.parts = nn.ModuleDict({
            name: DSCNN(n_mels=n_mels, **{**(options or {}), "projections": (name,)})
            for name, options in (("word", word), ("speaker", speaker))})
        if self.parts["word"].embed_dim != self.parts["speaker"].embed_dim:
            raise ValueError("both encoders of a pair need the same embed_dim")
        self.embed_dim = self.parts["word"].embed_dim

    @property
    def projections(self) -> dict[str, nn.Module]:
        return {name: part.projections[name] for name, part in self.parts.items()}

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return self.parts["word"].autocast_dtype

    @autocast_dtype.setter
    def autocast_dtype(self, dtype: torch.dtype | None) -> None:
        for part in self.parts.values():
            part.autocast_dtype = dtype

    def embed(self, x: torch.Tensor, projection: str = "word") -> torch.Tensor:
        return self.parts[projection].embed(x, projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


ENCODERS = {"dscnn": DSCNN, "pair": EncoderPair}


def build_encoder(name: str, **kwargs) -> nn.Module:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
