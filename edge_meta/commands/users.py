"""Synthetic users: each household says its commands its own way.

A user has a household (a few rooms, genres and doors, some of them the family's own words from the
grammar's novel pools), favourite command families, a favourite paraphrase per intent (with a
terse-or-verbose streak shared across intents, so one example says something about the others),
favourite synonyms, an article habit and politeness wrappers. Preferences are Dirichlet draws: a few
examples reveal much of a user, which is what the meta-learner is trained to exploit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_meta.commands.grammar import Grammar, Phrase


@dataclass
class UserHabits:
    """How peaked a user's preferences are (Dirichlet concentrations) and household sizes."""

    family: float = 0.3
    intent: float = 3.0  # within a family (on vs off): near-even
    template: float = 0.2
    synonym: float = 0.3
    slot_value: float = 0.5
    terseness: float = 0.6  # per-token log-weight range: + favours short paraphrases
    novel_rate: float = 0.3  # share of a household's slot values that are its own words
    rooms: tuple[int, int] = (2, 5)
    genres: tuple[int, int] = (1, 3)
    doors: tuple[int, int] = (1, 3)


@dataclass
class SyntheticUser:
    grammar: Grammar
    intent_p: np.ndarray
    template_p: dict[str, np.ndarray]
    synonym_p: dict[str, np.ndarray]
    slot_values: dict[str, list[str]]
    slot_p: dict[str, np.ndarray]
    keep_optional: float
    prefix_p: np.ndarray  # over ["", *grammar.prefixes]
    suffix_p: np.ndarray

    def phrase(self, rng: np.random.Generator) -> Phrase:
        g = self.grammar
        intent = g.intents[rng.choice(len(g.intents), p=self.intent_p)]
        template = intent.templates[rng.choice(len(intent.templates), p=self.template_p[intent.name])]
        synonyms = {c: g.synonyms[c][rng.choice(len(g.synonyms[c]), p=p)] for c, p in self.synonym_p.items()}
        slots = {s: v[rng.choice(len(v), p=self.slot_p[s])] for s, v in self.slot_values.items()}
        core = g.realise(intent, template, synonyms, slots, keep_optional=rng.random() < self.keep_optional)
        prefix = ["", *g.prefixes][rng.choice(len(g.prefixes) + 1, p=self.prefix_p)]
        suffix = ["", *g.suffixes][rng.choice(len(g.suffixes) + 1, p=self.suffix_p)]
        return Phrase((*prefix.split(), *core.words, *suffix.split()), core.command)

    def phrases(self, n: int, rng: np.random.Generator) -> list[Phrase]:
        return [self.phrase(rng) for _ in range(n)]

    def enrolled_labels(self) -> list[str]:
        """What such a household enrolls as keywords: the grammar's content words and its own slot values."""
        own = {v for values in self.slot_values.values() for v in values}
        return sorted(set(self.grammar.content_words()) | own)


def sample_user(grammar: Grammar, rng: np.random.Generator, novel_pool: str = "novel_train",
                habits: UserHabits | None = None) -> SyntheticUser:
    h = habits or UserHabits()
    families = grammar.families
    family_p = rng.dirichlet(np.full(len(families), h.family))
    intent_w = np.array([family_p[families.index(i.family)] for i in grammar.intents])
    for fam in families:  # share each family's weight among its intents
        idx = [k for k, i in enumerate(grammar.intents) if i.family == fam]
        intent_w[idx] *= rng.dirichlet(np.full(len(idx), h.intent))
    terse = rng.uniform(-h.terseness, h.terseness)
    template_p = {}
    for intent in grammar.intents:
        lengths = np.array([len(t.split()) for t in intent.templates], dtype=np.float64)
        w = rng.dirichlet(np.full(len(lengths), h.template)) * np.exp(-terse * lengths) + 1e-9
        template_p[intent.name] = w / w.sum()
    synonym_p = {c: rng.dirichlet(np.full(len(v), h.synonym)) for c, v in grammar.synonyms.items()}
    sizes = {"room": h.rooms, "genre": h.genres, "door": h.doors}
    slot_values, slot_p = {}, {}
    for slot, pools in grammar.slots.items():
        lo, hi = sizes.get(slot, (1, 3))
        n = int(rng.integers(lo, hi + 1))
        n_novel = int(rng.binomial(n, h.novel_rate))
        known = [str(v) for v in rng.choice(pools["known"], size=min(n - n_novel, len(pools["known"])), replace=False)]
        novel = [str(v) for v in rng.permutation(pools[novel_pool]) if v not in known][:n_novel]
        slot_values[slot] = known + novel
        slot_p[slot] = rng.dirichlet(np.full(len(slot_values[slot]), h.slot_value))
    keep_optional = float(rng.choice([0.03, 0.97, 0.5], p=[0.4, 0.4, 0.2]))
    return SyntheticUser(grammar, intent_w / intent_w.sum(), template_p, synonym_p, slot_values, slot_p, keep_optional,
                         _wrapper_habit(len(grammar.prefixes), rng), _wrapper_habit(len(grammar.suffixes), rng))


def _wrapper_habit(n: int, rng: np.random.Generator) -> np.ndarray:
    """Probabilities of [no wrapper, wrapper 1..n]: half the users rarely wrap, the others have a favourite."""
    use = rng.uniform(0.3, 1.0) if rng.random() < 0.5 else rng.uniform(0.0, 0.1)
    p = np.full(n + 1, 0.01)
    p[0] += 1 - use
    p[1 + rng.integers(n)] += use
    return p / p.sum()


def held_out_users(grammar: Grammar, n: int, seed: int, habits: UserHabits | None = None) -> list[SyntheticUser]:
    """Users for validation and benchmarks: their own words come from the evaluation pools."""
    rng = np.random.default_rng(seed)
    return [sample_user(grammar, rng, "novel_eval", habits) for _ in range(n)]
