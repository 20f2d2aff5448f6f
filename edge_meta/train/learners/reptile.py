"""Reptile (Nichol et al., 2018): plain SGD on the task, then move the initialisation toward the result.

The inner loop trains on the whole episode (support and query: Reptile has no outer loss to hold the
query out for): ``steps`` first-order SGD steps on the encoder, the temperature and the episode's
prototype-initialised head, giving phi. (Adapting on the support alone, 2 takes per word, gave no
improvement in a few dozen episodes where the whole episode did.) The Trainer only knows
``loss.backward()`` then ``optimizer.step()``, so `episode_loss` returns a surrogate whose gradient is
the Reptile direction theta - phi (that of 0.5 * |theta - phi|^2 with phi constant). With plain SGD at
rate eps the optimizer step is exactly theta + eps * (phi - theta); the Trainer's AdamW makes it
Reptile with an Adam outer step. The surrogate's *value* is the loss the device would see: the query
loss of the head fine-tuned on the support embeddings of the unadapted encoder (`adapted_scores`).

Step sizes are fixed hyperparameters (Reptile's update gives them no gradient). BatchNorm running
statistics are updated only by the first forward, with the meta-learned parameters. On the device
only the last layer is fine-tuned, with the same step sizes and steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.train.learners.base import EpisodeResult, accuracy
from edge_meta.train.learners.inner_loop import (LastLayerLearner, Params, batch_statistics, embed_with,
                                                 head_logits, prototype_head, sgd_step)


class Reptile(LastLayerLearner):
    name = "reptile"

    def __init__(self, encoder: nn.Module, steps: int = 5, inner_lr: float = 0.1, encoder_lr: float = 0.05,
                 temperature: float = 10.0) -> None:
        super().__init__(encoder, steps, inner_lr, temperature)
        self.step_sizes.requires_grad_(False)
        self.encoder_lr = encoder_lr

    def meta_parameters(self) -> Params:
        """theta: what Reptile moves toward the adapted values."""
        return {**dict(self.encoder.named_parameters()), "log_temperature": self.log_temperature}

    def adapt(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor, n_way: int) -> Params:
        """phi, detached: ``steps`` SGD steps from theta and the prototype head on the task's inputs
        ``x`` (labels ``y``), starting from their embeddings ``z`` under theta."""
        head = {k: v.detach().requires_grad_() for k, v in prototype_head(z.detach(), y, n_way).items()}
        params = {**self.meta_parameters(), **head}
        lrs = {**{name: self.encoder_lr for name in self.meta_parameters()}, **self.step_sizes()}
        with batch_statistics(self.encoder):
            for step in range(self.steps):
                if step:
                    z = embed_with(self.encoder, params, x)
                loss = F.cross_entropy(head_logits(params, z, params["log_temperature"].exp()), y)
                params = {k: v.detach().requires_grad_() for k, v in sgd_step(params, loss, lrs, False).items()}
        return {k: v.detach() for k, v in params.items()}

    def episode_loss(self, support, support_y, query, query_y, n_way) -> EpisodeResult:
        x = torch.cat([support, query])
        z = self.encoder(x)  # meta-learned parameters: updates BN running statistics
        phi = self.adapt(x, z, torch.cat([support_y, query_y]), n_way)
        surrogate = sum(0.5 * (p - phi[name]).pow(2).sum() for name, p in self.meta_parameters().items())
        with torch.no_grad():
            logits = self.temperature * self.adapted_scores(z[: len(support)], support_y, z[len(support) :], n_way)
            query_loss = F.cross_entropy(logits, query_y)
        return EpisodeResult(surrogate + (query_loss - surrogate).detach(), accuracy(logits, query_y))
