"""Episodes of the command language model: one synthetic user each, a few example phrases as the
support set and the same user's other phrases as the query set.

A user's own words (novel slot values) get placeholders from the support phrases, in a random slot
order per episode so that no placeholder means anything by itself; one that appears only in the
query is ``<unk>``, as it would be on a device that was never shown it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from edge_meta.commands.grammar import Grammar, Phrase
from edge_meta.commands.users import SyntheticUser, UserHabits, sample_user
from edge_meta.commands.vocabulary import Vocabulary
from edge_meta.train.command_lm import PAD_ID


@dataclass
class CommandEpisode:
    user: SyntheticUser
    support: list[Phrase]
    query: list[Phrase]
    novel: dict[str, int]  # the user's own words -> placeholder slot


def make_episode(user: SyntheticUser, support: Sequence[Phrase], query: Sequence[Phrase], vocab: Vocabulary,
                 slots: Sequence[int] | None = None) -> CommandEpisode:
    novel = vocab.assign_placeholders((p.words for p in support), slots)
    return CommandEpisode(user, list(support), list(query), novel)


def draw_episode(user: SyntheticUser, shots: int, queries: int, vocab: Vocabulary, rng: np.random.Generator,
                 shuffle_placeholders: bool = True) -> CommandEpisode:
    support, query = user.phrases(shots, rng), user.phrases(queries, rng)
    slots = rng.permutation(vocab.placeholders) if shuffle_placeholders else None
    return make_episode(user, support, query, vocab, slots)


def pad_phrases(groups: Sequence[Sequence[list[int]]], rows: int | None = None) -> torch.Tensor:
    """(B, rows, T) token tensor from B groups of token lists; missing rows and positions are PAD."""
    rows = rows or max(len(g) for g in groups)
    length = max((len(t) for g in groups for t in g), default=2)
    out = torch.full((len(groups), rows, length), PAD_ID, dtype=torch.long)
    for b, group in enumerate(groups):
        for r, tokens in enumerate(group):
            out[b, r, : len(tokens)] = torch.tensor(tokens)
    return out


def encode_episodes(episodes: Sequence[CommandEpisode], vocab: Vocabulary,
                    support_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(support (B, S, T), query (B, Q, T)) token tensors."""
    support = pad_phrases([[vocab.encode(p.words, e.novel) for p in e.support] for e in episodes], support_rows)
    query = pad_phrases([[vocab.encode(p.words, e.novel) for p in e.query] for e in episodes])
    return support, query


class EpisodeStream:
    """Endless training batches: ``batch_users`` fresh users per batch, each with a shot count drawn from ``shots``."""

    def __init__(self, grammar: Grammar, vocab: Vocabulary, shots: Sequence[int], queries: int, batch_users: int,
                 seed: int, habits: UserHabits | None = None) -> None:
        self.grammar, self.vocab, self.shots = grammar, vocab, list(shots)
        self.queries, self.batch_users, self.habits = queries, batch_users, habits
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        episodes = [draw_episode(sample_user(self.grammar, self.rng, "novel_train", self.habits),
                                 int(self.rng.choice(self.shots)), self.queries, self.vocab, self.rng)
                    for _ in range(self.batch_users)]
        return encode_episodes(episodes, self.vocab, max(self.shots))
