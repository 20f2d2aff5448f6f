"""The command language model and its Meta Networks adaptation.

A small GRU language model over the command vocabulary predicts the next word of a phrase. Its
output layer has *slow* weights (learned across all users by SGD) and *fast* weights generated per
user, Meta Networks style: a meta-learner g reads the user's few example phrases and writes, for
every output word i, a fast weight vector and bias, phi_i = g(e_i). The task description e_i is
made of support statistics the device can compute without a backward pass:

    e_i = [mean hidden state before word i in the examples (zeros if unseen),
           mean hidden state over all the examples (the user's style),
           log(1 + count of i), 1 if i was seen, log(number of examples)]

and g also sees word i's slow weights and bias (so it knows which word it is writing for: a
placeholder never seen should vanish, a room never mentioned should only dim). A query logit is

    (W_slow[i] + u_i) . h_t + b_slow[i] + c_i,      (u_i, c_i) = g(e_i, W_slow[i], b_slow[i])

g is `FastWeightGenerator` of the Meta Networks learner; its last layer starts at zero, and here its
linear part too, so an untrained generator leaves the language model as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_meta.commands.vocabulary import PAD, SPECIALS
from edge_meta.train.learners.metanet import FastWeightGenerator

PAD_ID = SPECIALS.index(PAD)


def statistics_features(hidden: int) -> int:
    """Width of the support statistics e_i the device computes (the generator adds 1 + hidden more)."""
    return 2 * hidden + 3


class CommandLM(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden: int = 64, generator_hidden: int = 64) -> None:
        super().__init__()
        self.vocab_size, self.hidden_size = vocab_size, hidden
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)
        self.generator = FastWeightGenerator(statistics_features(hidden) + hidden + 1, hidden + 1, generator_hidden)
        with torch.no_grad():  # start un-adapted: fast weights are exactly zero until meta-training moves g
            self.generator.linear.weight.zero_()
            self.generator.linear.bias.zero_()

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., T) input tokens -> (..., T, H) states; state t predicts token t + 1."""
        lead = tokens.shape[:-1]
        h, _ = self.gru(self.embed(tokens.reshape(-1, tokens.shape[-1])))
        return h.reshape(*lead, tokens.shape[-1], self.hidden_size)

    def statistics(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, V, 2H + 3) support statistics of each user from states (B, S, T, H) and targets (B, S, T)."""
        valid = (targets != PAD_ID).to(hidden.dtype)
        onehot = F.one_hot(targets, self.vocab_size).to(hidden.dtype) * valid[..., None]
        count = onehot.sum(dim=(1, 2))
        context = torch.einsum("bstv,bsth->bvh", onehot, hidden) / count.clamp_min(1)[..., None]
        style = torch.einsum("bst,bsth->bh", valid, hidden) / valid.sum(dim=(1, 2)).clamp_min(1)[:, None]
        phrases = (valid.sum(dim=2) > 0).to(hidden.dtype).sum(dim=1).clamp_min(1)
        v = self.vocab_size
        seen = (count > 0).to(hidden.dtype)
        return torch.cat([context, style[:, None].expand(-1, v, -1), count.log1p()[..., None], seen[..., None],
                          phrases.log()[:, None, None].expand(-1, v, 1)], dim=-1)

    def fast_weights(self, statistics: torch.Tensor) -> torch.Tensor:
        """(..., V, 2H + 3) statistics -> (..., V, H + 1) fast output weights and biases."""
        identity = torch.cat([self.out.weight, self.out.bias[:, None]], dim=-1)
        return self.generator(torch.cat([statistics, identity.expand(*statistics.shape[:-1], -1)], dim=-1))

    def logits(self, hidden: torch.Tensor, fast: torch.Tensor | None = None) -> torch.Tensor:
        """(B, ..., T, V) next-word logits; ``fast`` (B, V, H + 1) per user, None for the un-adapted model."""
        logits = self.out(hidden)
        if fast is None:
            return logits
        flat = hidden.reshape(hidden.shape[0], -1, self.hidden_size)
        extra = torch.einsum("bnh,bvh->bnv", flat, fast[..., :-1]) + fast[:, None, :, -1]
        return logits + extra.reshape(logits.shape)

    def adapt(self, support: torch.Tensor) -> torch.Tensor:
        """(B, S, T + 1) example phrases (<bos> ... <eos>, PAD rows allowed) -> (B, V, H + 1) fast weights."""
        return self.fast_weights(self.statistics(self.hidden(support[..., :-1]), support[..., 1:]))

    def query_nll(self, query: torch.Tensor, fast: torch.Tensor | None) -> torch.Tensor:
        """Mean negative log-likelihood per predicted token of phrases (B, Q, T + 1)."""
        logits = self.logits(self.hidden(query[..., :-1]), fast)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), query[..., 1:].reshape(-1), ignore_index=PAD_ID)

    def episode_loss(self, support: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Adapted query loss (what Meta Networks minimise) plus the un-adapted one, which keeps the slow
        model a good language model by itself (the fallback before a user gives examples)."""
        adapted = self.query_nll(query, self.adapt(support))
        plain = self.query_nll(query, None)
        return adapted + plain, {"nll_adapted": float(adapted.detach()), "nll_plain": float(plain.detach())}
