"""The command language model's tokens: the grammar's known words, plus placeholders for a household's own.

A word the model has no token for ("attic", the family's name for a room) gets a placeholder
``<newK>`` when it first appears in the user's example phrases; the meta-learner then generates that
placeholder's output weights from the contexts it appeared in. A word seen nowhere becomes ``<unk>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


@dataclass
class Vocabulary:
    words: list[str]
    placeholders: int = 8
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @property
    def tokens(self) -> list[str]:
        return [*SPECIALS, *(f"<new{i}>" for i in range(self.placeholders)), *self.words]

    def __len__(self) -> int:
        return len(SPECIALS) + self.placeholders + len(self.words)

    def id(self, token: str) -> int:
        return self._index[token]

    @property
    def first_placeholder(self) -> int:
        return len(SPECIALS)

    def knows(self, word: str) -> bool:
        return word in self._index

    def assign_placeholders(self, phrases: Iterable[Sequence[str]],
                            slots: Sequence[int] | None = None) -> dict[str, int]:
        """{unknown word: placeholder slot} in order of first appearance; ``slots`` permutes the slots (training
        draws them at random so no slot means anything by itself). Words beyond the last slot stay unknown."""
        slots = list(range(self.placeholders)) if slots is None else list(slots)
        novel: dict[str, int] = {}
        for words in phrases:
            for w in words:
                if w not in self._index and w not in novel and len(novel) < len(slots):
                    novel[w] = slots[len(novel)]
        return novel

    def encode(self, words: Sequence[str], novel: dict[str, int] | None = None) -> list[int]:
        """<bos> words <eos> as token ids."""
        novel = novel or {}
        ids = [self._index.get(w, self.first_placeholder + novel[w] if w in novel else self._index[UNK]) for w in words]
        return [self._index[BOS], *ids, self._index[EOS]]

    def batch(self, phrases: Sequence[Sequence[str]], novel: dict[str, int] | None = None) -> np.ndarray:
        """(N, T) int64 token ids of the encoded phrases, padded with <pad> to the longest."""
        rows = [self.encode(p, novel) for p in phrases]
        tokens = np.full((len(rows), max(map(len, rows))), self._index[PAD], dtype=np.int64)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = r
        return tokens

    def to_dict(self) -> dict:
        return {"words": self.words, "placeholders": self.placeholders, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        v = cls(list(d["words"]), int(d["placeholders"]))
        if "tokens" in d and d["tokens"] != v.tokens:
            raise ValueError("the token list does not match the words and placeholders it was written with")
        return v
