"""ANIL (Raghu et al., 2020, "Rapid learning or feature reuse?"): MAML's inner loop on the head only.

The encoder is frozen inside the inner loop and trained by the outer loop, so one encoder pass per
episode suffices and the inner loop is cheap enough to differentiate exactly (second order). Its
inner loop is the device's enrollment: the last layer fine-tuned from the prototype init.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edge_meta.train.learners.base import EpisodeResult, accuracy
from edge_meta.train.learners.inner_loop import LastLayerLearner, head_logits, prototype_head


class ANIL(LastLayerLearner):
    name = "anil"

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        z = self.encoder(torch.cat([support, query]))
        zs, zq = z[: len(support)], z[len(support) :]
        head = self.adapt_head(prototype_head(zs, support_y, n_way), zs, support_y, second_order=True)
        logits = head_logits(head, zq, self.temperature)
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))
