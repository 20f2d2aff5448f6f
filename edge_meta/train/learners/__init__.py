"""Meta-learners behind one interface (`Learner`); `build_learner` picks one by name."""

from __future__ import annotations

from torch import nn

from edge_meta.train.learners.base import EpisodeResult, HeadGraph, Learner
from edge_meta.train.learners.protonet import ProtoNet

LEARNERS: dict[str, type[Learner]] = {cls.name: cls for cls in (ProtoNet,)}


def build_learner(name: str, encoder: nn.Module, **kwargs) -> Learner:
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; choose one of {sorted(LEARNERS)}")
    return LEARNERS[name](encoder, **kwargs)


__all__ = ["LEARNERS", "EpisodeResult", "HeadGraph", "Learner", "build_learner"]
