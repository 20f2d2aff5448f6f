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


class PooledEncoder(nn.Module):
    """What every encoder shares: a body -> mean+max pooled features -> BatchNorm -> named linear
    projections -> unit length. Subclasses build their layers, define ``body`` and call ``_finish``; export folds
    ``pool_norm`` into each projection (edge_meta.export.onnx_export)."""

    def _finish(self, feature_dim: int, embed_dim: int, projections: Sequence[str], dropout: float,
                freeze_norm: bool = False) -> None:
        self.feature_dim = feature_dim
        self.freeze_norm = freeze_norm
        # Pooled ReLU features share a large positive offset, which makes every embedding nearly the
        # same direction at init (cosines ~0.99) and stalls metric learning; normalising them fixes it.
        self.pool_norm = nn.BatchNorm1d(feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.embed_dim = embed_dim
        self.projections = nn.ModuleDict({name: nn.Linear(feature_dim, embed_dim) for name in projections})
        self.autocast_dtype: torch.dtype | None = None  # the trainer sets bf16 for mixed-precision training

    def train(self, mode: bool = True) -> "PooledEncoder":
        """With ``freeze_norm`` every BatchNorm keeps its running statistics in training too (its scale and shift
        still learn): a warm start from a bundle (`edge_meta.train.from_bundle`) then begins exactly at the
        shipped function instead of at one renormalised by each batch."""
        super().train(mode)
        if self.freeze_norm:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def body(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Mean and max over time and frequency of the last block, before normalisation."""
        h = self.body(x)
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


class DSCNN(PooledEncoder):
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
        freeze_norm: bool = False,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels, (5, 5), stride=(2, 2), padding=(2, 2), bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(*[DSBlock(channels, s, d) for s, d in zip(strides, dilations, strict=True)])
        self._finish(2 * channels, embed_dim, projections, dropout, freeze_norm)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class BCBlock(nn.Module):
    """Broadcasted residual block (Kim et al., "Broadcasted Residual Learning for Efficient Keyword
    Spotting", 2021): a frequency-depthwise conv keeps the 2-D map (f2); its frequency average goes
    through a dilated temporal depthwise conv and a pointwise conv (f1, 1-D, cheap) and is broadcast
    back over frequency. A transition block changes the width and drops the identity path."""

    def __init__(self, c_in: int, c_out: int, stride: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.transition = c_in != c_out or stride != 1
        self.expand = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()) \
            if self.transition else nn.Identity()
        self.freq = nn.Sequential(
            nn.Conv2d(c_out, c_out, (3, 1), stride=(stride, 1), padding=(1, 0), groups=c_out, bias=False),
            nn.BatchNorm2d(c_out))
        self.time = nn.Sequential(
            nn.Conv2d(c_out, c_out, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=c_out, bias=False),
            nn.BatchNorm2d(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 1, bias=False), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x)
        f2 = self.freq(h)
        f1 = self.time(f2.mean(dim=2, keepdim=True))
        return F.relu(f2 + f1 + (0 if self.transition else h))


class BCResNet(PooledEncoder):
    """BC-ResNet (the KWS state of the art: BC-ResNet-8 98.7% on GSC v2 12-class); ``scale`` is its
    width multiplier (BC-ResNet-1 .. -8). BatchNorm stands in for SubSpectralNorm: after the strided
    stages the 40-mel axis is 5 bins, too few to split into sub-bands."""

    def __init__(
        self,
        n_mels: int = 40,
        scale: float = 3.0,
        blocks: Sequence[int] = (2, 2, 4, 4),
        embed_dim: int = 128,
        projections: Sequence[str] = ("word",),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        widths = [max(4, int(round(w * scale))) for w in (8, 12, 16, 20)]
        stem = max(4, int(round(16 * scale)))
        self.stem = nn.Sequential(nn.Conv2d(1, stem, 5, stride=(2, 1), padding=2, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU())
        layers, c_in = [], stem
        for stage, (n, width) in enumerate(zip(blocks, widths, strict=True)):
            for i in range(n):
                stride = 2 if i == 0 and stage in (1, 2) else 1
                layers.append(BCBlock(c_in, width, stride, dilation=2 ** stage, dropout=dropout))
                c_in = width
        self.blocks = nn.Sequential(*layers)
        head = max(8, int(round(32 * scale)))
        self.head = nn.Sequential(nn.Conv2d(c_in, c_in, 5, padding=2, groups=c_in, bias=False),
                                  nn.Conv2d(c_in, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU())
        self._finish(2 * head, embed_dim, projections, dropout)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


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


ENCODERS = {"dscnn": DSCNN, "bcresnet": BCResNet, "pair": EncoderPair}


def build_encoder(name: str, **kwargs) -> nn.Module:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
