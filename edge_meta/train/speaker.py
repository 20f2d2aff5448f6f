"""The speaker objective: Prototypical-network episodes over *speakers* on the encoder's second projection.

The seed's ProtoNet speaker adaptation, on the same trunk as the words: an episode's classes are
speakers, support and queries are whatever words they said (text-independent), and the loss is the
cosine-prototype cross-entropy on the ``speaker`` embedding. Trained alongside the word learner,
the word projection learns to ignore who speaks and the speaker projection what is said, so one
encoder pass on the device serves both heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, accuracy, class_means


@dataclass
class SpeakerConfig:
    weight: float = 0.0  # share of the speaker loss in each step's total; 0 turns the objective off
    n_way: int = 16
    k_shot: int = 3
    q_query: int = 3
    real_ratio: float = 0.7  # share of speaker episodes from real recordings (the rest: synthetic voices)


class SpeakerObjective(nn.Module):
    def __init__(self, init_scale: float = 10.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))

    def episode_loss(self, encoder: nn.Module, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor,
                     query_y: torch.Tensor, n_way: int) -> EpisodeResult:
        z = encoder.embed(torch.cat([support, query]), "speaker")
        zs, zq = z[: len(support)], z[len(support) :]
        prototypes = F.normalize(class_means(zs, support_y, n_way), dim=-1)
        logits = self.log_scale.exp() * zq @ prototypes.T
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))
