"""The distillation objective: the encoder's embeddings learn the teachers' geometry.

Two terms per projection (``word`` from speech_embedding, ``speaker`` from GE2E), on a batch of
augmented training clips whose targets come from the clean clips (edge_meta.train.teachers):
- *direct*: a linear map (training only, never exported) takes the student's unit embedding to the
  teacher's space, and the loss is one minus their cosine;
- *relational*: the batch's pairwise cosines among student embeddings match the teacher's, so the
  device's own space (where prototypes and thresholds live) inherits which clips are alike.
With ``whiten``, targets are first mapped by a within-class whitening fitted on the training clips, so the
student learns the geometry the trunk flavour's head gives the teacher (household 5-shot 94.9 on FSDD
against ~89 mean-pooled), not the raw one, where who spoke moves an embedding as far as what was said.
Teacher embeddings share a large common direction (raw cosines ~0.99 across different words), so
targets are centred on their mean over the training clips before either term sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DistillConfig:
    word_teacher: str = ""  # "speech_embedding", or "" for none
    speaker_teacher: str = ""  # "ge2e", or "" for none
    weight: float = 1.0  # share of the distillation loss in each step's total
    relational: float = 1.0  # weight of the relational term beside the direct one
    batch: int = 64  # clips per step
    # importer output folders (with a sentences.tsv) whose read sentences, cut into windows, join the batch's
    # pool beside the word clips (edge_meta.train.windows)
    sentences: list[str] = field(default_factory=list)
    hop_s: float = 0.5  # between those windows
    # whiten the targets within class first (words for the word projection, speakers for the speaker one;
    # edge_meta.train.trunk_head): the geometry the trunk flavour's head gives speech_embedding on the device
    whiten: bool = False

    @property
    def teachers(self) -> dict[str, str]:
        """projection -> teacher name, for the teachers asked for."""
        return {p: t for p, t in (("word", self.word_teacher), ("speaker", self.speaker_teacher)) if t}


def centred(targets: np.ndarray) -> np.ndarray:
    """Targets minus their mean, back at unit length (the mean comes from the cached targets, so a resumed run
    centres alike)."""
    t = targets - targets.mean(axis=0)
    return (t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def relational_loss(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the off-diagonal cosine matrices of unit rows ``z`` and ``t``."""
    off = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    return (z @ z.T - t @ t.T)[off].square().mean()


class DistillObjective(nn.Module):
    def __init__(self, embed_dim: int, teacher_dims: dict[str, int], relational: float) -> None:
        super().__init__()
        self.maps = nn.ModuleDict({p: nn.Linear(embed_dim, d) for p, d in teacher_dims.items()})
        self.relational = relational

    def loss(self, encoder: nn.Module, features: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed over projections: (1 - cosine to the centred target) + relational * relational_loss."""
        total = features.new_zeros(())
        for projection, t in targets.items():
            z = encoder.embed(features, projection)
            direct = 1.0 - F.cosine_similarity(self.maps[projection](z), t, dim=-1).mean()
            total = total + direct + self.relational * relational_loss(z, t)
        return total
