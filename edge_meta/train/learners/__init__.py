"""Meta-learners behind one interface (`Learner`); `build_learner` picks one by name.

Metric: protonet, matching, relation. Optimization: maml, fomaml, reptile, metasgd, anil.
Model-based: mann, metanet, snail.
"""

from __future__ import annotations

from torch import nn

from edge_meta.train.learners.anil import ANIL
from edge_meta.train.learners.base import EpisodeResult, HeadGraph, Learner
from edge_meta.train.learners.maml import FOMAML, MAML
from edge_meta.train.learners.mann import MANN
from edge_meta.train.learners.matching import MatchingNet
from edge_meta.train.learners.metanet import MetaNet
from edge_meta.train.learners.metasgd import MetaSGD
from edge_meta.train.learners.protonet import ProtoNet
from edge_meta.train.learners.relation import RelationNet
from edge_meta.train.learners.reptile import Reptile
from edge_meta.train.learners.snail import SNAIL

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls
    for cls in (ProtoNet, MatchingNet, RelationNet, MAML, FOMAML, Reptile, MetaSGD, ANIL, MANN, MetaNet, SNAIL)
}


def build_learner(name: str, encoder: nn.Module, **kwargs) -> Learner:
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; choose one of {sorted(LEARNERS)}")
    return LEARNERS[name](encoder, **kwargs)


__all__ = ["LEARNERS", "EpisodeResult", "HeadGraph", "Learner", "build_learner"]
