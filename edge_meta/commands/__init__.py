"""Spoken commands made of enrolled words (torch-free, shared by training, export and the device).

- `grammar`: what a command is (intent + slot values), the paraphrase templates, parsing a phrase.
- `users`: synthetic users with their own phrasing habits (training episodes and benchmarks).
- `vocabulary`: the language model's tokens, with placeholders for a household's own words.
- `decoding`: word detections -> the most likely command, with the LM as the prior.
- `noise`: injected substitutions, deletions and insertions (benchmarks, tests).
"""

from edge_meta.commands.grammar import Command, Grammar, Phrase, default_grammar
from edge_meta.commands.vocabulary import Vocabulary

__all__ = ["Command", "Grammar", "Phrase", "Vocabulary", "default_grammar"]
