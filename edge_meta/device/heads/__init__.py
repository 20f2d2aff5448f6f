"""Adaptation heads that run on the device after enrollment (numpy; ONNX graphs for learned modules).

A head turns unit-length encoder embeddings into per-word scores (higher = more likely that word):
``fit({word: (takes, D) embeddings})`` once per change of the enrolled words, then ``scores(emb)``
per window. The bundle's manifest names the head kind its learner trained; `HEADS` maps it here.
``open_set`` says whether a score alone can reject an unknown window (cosines, relation scores) or
is a probability over the enrolled words (memory, Meta Networks, SNAIL), which needs a gate.
"""

from __future__ import annotations

from edge_meta.device.heads.graph_heads import MemoryHead, MetaNetHead, SnailHead
from edge_meta.device.heads.last_layer import LastLayerHead
from edge_meta.device.heads.matching import MatchingHead
from edge_meta.device.heads.prototype import PrototypeHead
from edge_meta.device.heads.relation import RelationHead

HEADS = {cls.kind: cls for cls in (PrototypeHead, MatchingHead, RelationHead, LastLayerHead, MemoryHead, MetaNetHead,
                                   SnailHead)}

__all__ = ["HEADS", "LastLayerHead", "MatchingHead", "MemoryHead", "MetaNetHead", "PrototypeHead", "RelationHead",
           "SnailHead"]
