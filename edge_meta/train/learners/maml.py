"""MAML (Finn et al., 2017) and its first-order approximation, with a Proto-MAML head init.

The inner loop adapts every encoder parameter and the episode's head on the support set; the query
loss of the adapted model is the outer loss. Second order differentiates through the inner
gradients; first order (``first_order=True``, registered as "fomaml") treats them as constants.
The encoder's step size is a fixed hyperparameter; the head's step sizes and the temperature are
meta-learned.

BatchNorm: the first support forward runs with the meta-learned parameters and is the only one that
updates the running statistics the exported encoder uses in eval mode; forwards with adapted
parameters normalise with their batch's statistics (`batch_statistics`).

On the device only the last layer can be fine-tuned, so the exported head is the same as ANIL's:
the learned head step sizes, the number of steps and the temperature, with the encoder fixed.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, accuracy
from edge_meta.train.learners.inner_loop import (LastLayerLearner, batch_statistics, embed_with, head_logits,
                                                 prototype_head, sgd_step)


class MAML(LastLayerLearner):
    name = "maml"

    def __init__(self, encoder: nn.Module, steps: int = 1, inner_lr: float = 0.1, encoder_lr: float = 0.01,
                 temperature: float = 10.0, first_order: bool = False) -> None:
        super().__init__(encoder, steps, inner_lr, temperature)
        self.encoder_lr = encoder_lr
        self.first_order = first_order

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        zs = self.encoder(support)  # meta-learned parameters: updates BN running statistics
        params = {**dict(self.encoder.named_parameters()), **prototype_head(zs, support_y, n_way)}
        lrs = {**{name: self.encoder_lr for name, _ in self.encoder.named_parameters()}, **self.step_sizes()}
        with batch_statistics(self.encoder):
            for step in range(self.steps):
                if step:
                    zs = embed_with(self.encoder, params, support)
                loss = F.cross_entropy(head_logits(params, zs, self.temperature), support_y)
                params = sgd_step(params, loss, lrs, second_order=not self.first_order)
            logits = head_logits(params, embed_with(self.encoder, params, query), self.temperature)
        return EpisodeResult(F.cross_entropy(logits, query_y), accuracy(logits, query_y))


class FOMAML(MAML):
    """First-order MAML: the same inner loop without differentiating through its gradients."""

    name = "fomaml"

    def __init__(self, encoder: nn.Module, **options) -> None:
        super().__init__(encoder, first_order=True, **options)
