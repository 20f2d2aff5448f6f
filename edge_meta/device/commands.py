"""Commands on the device (numpy + onnxruntime, no torch): enroll a user's phrasing, decode word detections.

    model = CommandModel.from_bundle(bundle)                  # None when the bundle has no commands/
    profile = model.enroll_command(["turn the kitchen lights off", "kitchen lights off please"])
    profile = model.enroll_command(["play some jazz"], profile=profile)
    decoder = model.decoder(labels=["kitchen", "lights", "off", "on", "play", "jazz"], profile=profile)
    for detection in detections:                             # anything with .label, .score and .t
        for event in decoder.push(detection):
            print(event.to_event())                          # {"event": "command", "command": ..., ...}
    decoder.flush()

Enrolling reads example phrases as text (typed, or recognised words) and parses each to its command
with the bundle's grammar (a phrase the grammar cannot read needs ``command=``). Adaptation is Meta
Networks: the language model reads the user's examples, their support statistics go through the
generator once, and the fast output weights it writes make the user's phrasings likely. The profile
is plain JSON (`to_json` / `from_json`) for whatever stores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Sequence

import numpy as np

from edge_meta.bundle import REBUILD_HINT, Bundle
from edge_meta.commands.decoding import (ChannelModel, CommandDecoder, CommandPrior, DecoderConfig, candidate_phrases)
from edge_meta.commands.grammar import Command, Grammar, Phrase, words_of
from edge_meta.commands.vocabulary import PAD, Vocabulary
from edge_meta.device.backends import onnx_session
from edge_meta.errors import BundleError, StoreError

FORMAT = "edge-meta-commands/1"
FOLDER = "commands"
BATCH = 512  # phrases per language-model call


@dataclass(frozen=True)
class Adaptation:
    """A user's fast output weights and the placeholders their own words took."""

    fast_weight: np.ndarray  # (V, H)
    fast_bias: np.ndarray  # (V,)
    novel: dict[str, int]


@dataclass
class CommandProfile:
    """A user's example phrases with the command each one says."""

    examples: list[Phrase] = field(default_factory=list)

    def to_json(self) -> str:
        examples = [{"words": list(p.words), "command": p.command.to_dict()} for p in self.examples]
        return json.dumps({"examples": examples})

    @classmethod
    def from_json(cls, text: str) -> "CommandProfile":
        data = json.loads(text)
        return cls([Phrase(tuple(e["words"]), Command.from_dict(e["command"])) for e in data["examples"]])


def _plain(name: object) -> str:
    """A file name of the model's own folder: no path (a vocab.json pointing elsewhere loaded unhashed files)."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(f"{name!r} is not a file name in the command model's folder")
    return name


def support_statistics(hidden: np.ndarray, targets: np.ndarray, vocab_size: int, pad: int) -> np.ndarray:
    """(V, 2H + 3) statistics of one user's examples, as in training (`CommandLM.statistics`): per word the mean
    state before it, the mean state overall, log(1 + count), seen, log(number of examples)."""
    valid = targets != pad
    h = hidden[valid].astype(np.float64)
    t = targets[valid]
    count = np.bincount(t, minlength=vocab_size).astype(np.float64)
    context = np.zeros((vocab_size, hidden.shape[-1]))
    np.add.at(context, t, h)
    context /= np.maximum(count, 1)[:, None]
    style = h.mean(axis=0) if len(h) else np.zeros(hidden.shape[-1])
    phrases = max(int(valid.any(axis=1).sum()), 1)
    return np.concatenate([context, np.tile(style, (vocab_size, 1)), np.log1p(count)[:, None],
                           (count > 0).astype(np.float64)[:, None], np.full((vocab_size, 1), np.log(phrases))],
                          axis=1).astype(np.float32)


class CommandModel:
    """The bundle's command language model, its Meta Networks generator, vocabulary and grammar."""

    def __init__(self, directory: str | Path, threads: int = 1, read: Callable[[str], bytes] | None = None) -> None:
        """The model in ``directory``; ``read(name)`` gives the bytes of one of its files (default: read from
        ``directory``). vocab.json names the other files: plain names in the same folder, nothing else."""
        directory = Path(directory)
        read = read or (lambda name: (directory / name).read_bytes())
        try:
            meta = json.loads(read("vocab.json"))
            if meta.get("format") != FORMAT:
                raise BundleError(f"{directory}: command model format {meta.get('format')!r} is not {FORMAT!r}",
                                  "upgrade edge-meta on the device, or re-export the bundle")
            grammar = json.loads(read(_plain(meta["grammar"])))
            self.vocab = Vocabulary.from_dict(meta["vocabulary"])
            self.grammar = Grammar.from_dict(grammar)
            for intent in self.grammar.intents:  # parsed now, so a malformed template is refused here, not mid-use
                for template in intent.templates:
                    self.grammar.tokens(template)
            self.hidden_size = int(meta["hidden"])
            self.lm = onnx_session(read(_plain(meta["graphs"]["lm"])), threads, f"{directory}/lm")
            self.generator = onnx_session(read(_plain(meta["graphs"]["generator"])), threads, f"{directory}/generator")
            self.pad = self.vocab.id(PAD)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise BundleError(f"{directory}: unreadable command model ({type(exc).__name__}: {str(exc)[:200]})",
                              REBUILD_HINT) from None

    @classmethod
    def from_bundle(cls, bundle: Bundle, threads: int = 1) -> "CommandModel | None":
        """The command model a bundle carries in ``commands/``, or None when it has none; every file read through
        `Bundle.read`, so it is listed in the manifest and is what was verified."""
        if f"{FOLDER}/vocab.json" not in bundle.manifest["files"]:
            return None
        return cls(bundle.root / FOLDER, threads, read=lambda name: bundle.read(f"{FOLDER}/{name}"))

    # -- language model --------------------------------------------------------------------------
    def _run(self, inputs: np.ndarray, adaptation: Adaptation | None) -> tuple[np.ndarray, np.ndarray]:
        v, h = len(self.vocab), self.hidden_size
        fast_w = adaptation.fast_weight if adaptation else np.zeros((v, h), np.float32)
        fast_b = adaptation.fast_bias if adaptation else np.zeros(v, np.float32)
        hidden, log_probs = self.lm.run(None, {"tokens": inputs, "fast_weight": fast_w, "fast_bias": fast_b})
        return hidden, log_probs

    def log_probs(self, phrases: Sequence[Sequence[str]], adaptation: Adaptation | None = None) -> np.ndarray:
        """(N,) log-probability of each phrase (with its end) under the un-adapted or the adapted model."""
        novel = adaptation.novel if adaptation else {}
        out = np.zeros(len(phrases))
        for start in range(0, len(phrases), BATCH):
            tokens = self.vocab.batch(phrases[start : start + BATCH], novel)
            _, lp = self._run(tokens[:, :-1], adaptation)
            targets = tokens[:, 1:]
            picked = np.take_along_axis(lp, targets[..., None], axis=-1)[..., 0]
            out[start : start + len(tokens)] = np.where(targets != self.pad, picked, 0.0).sum(axis=1)
        return out

    def token_count(self, phrases: Sequence[Sequence[str]]) -> int:
        """Predicted tokens of phrases (words + the end): the denominator of perplexity."""
        return sum(len(p) + 1 for p in phrases)

    def adapt(self, examples: Sequence[Sequence[str]], generate: bool = True) -> Adaptation | None:
        """Fast weights from a user's example phrases (word sequences); None without examples. The user's own
        words take placeholders in order of appearance (a word in no example stays <unk>, as in training);
        ``generate=False`` keeps those placeholders but not the fast weights: the un-adapted model."""
        if not examples:
            return None
        novel = self.vocab.assign_placeholders(examples)
        v, h = len(self.vocab), self.hidden_size
        if not generate:
            return Adaptation(np.zeros((v, h), np.float32), np.zeros(v, np.float32), novel)
        tokens = self.vocab.batch(examples, novel)
        hidden, _ = self._run(tokens[:, :-1], None)
        stats = support_statistics(hidden, tokens[:, 1:], v, self.pad)
        (fast,) = self.generator.run(None, {"statistics": stats})
        return Adaptation(np.ascontiguousarray(fast[:, :-1]), np.ascontiguousarray(fast[:, -1]), novel)

    # -- enrollment and decoding -----------------------------------------------------------------
    def enroll_command(self, phrases: Sequence[str], command: str | None = None,
                       profile: CommandProfile | None = None, heard: Collection[str] | None = None) -> CommandProfile:
        """A profile with ``phrases`` added as examples. Each phrase is parsed to its command; ``command`` names
        the command instead (an intent name; for phrasings the grammar does not know). With ``heard`` (the words
        the device listens for), leading words that the grammar does not know and the device cannot hear are an
        address, not a slot value: "hey computer lights on" is lights_on, not lights_on(room=computer)."""
        known = set(self.grammar.known_words()) | set(heard or ())
        added = []
        for text in phrases:
            words = words_of(text)
            if not words:
                raise StoreError("an example phrase is empty", 'give the words of the command, e.g. "lights off"')
            core = list(self.grammar.strip_wrappers(words))
            while heard is not None and len(core) > 1 and core[0] not in known:
                core.pop(0)
            parsed = Command(command) if command else self.grammar.parse(core)
            if parsed is None:
                raise StoreError(f"cannot tell which command {text!r} is",
                                 "rephrase it, or name the command with --command INTENT (e.g. lights_off)")
            added.append(Phrase(words, parsed))
        return CommandProfile([*(profile.examples if profile else []), *added])

    def prior(self, labels: Sequence[str], profile: CommandProfile | None = None, adapt: bool = True,
              use_lm: bool = True) -> CommandPrior:
        """Hypotheses over the commands the enrolled ``labels`` can express (and the profile's examples), weighted
        by the adapted language model (``adapt=False``: the un-adapted one; ``use_lm=False``: none)."""
        examples = profile.examples if profile else []
        phrases = candidate_phrases(self.grammar, labels, examples)
        if not use_lm:
            return CommandPrior.build(phrases, labels)
        adaptation = self.adapt([e.words for e in examples], generate=adapt)
        return CommandPrior.build(phrases, labels, self.log_probs([p.words for p in phrases], adaptation))

    def decoder(self, labels: Sequence[str], profile: CommandProfile | None = None,
                channel: ChannelModel | None = None, config: DecoderConfig | None = None,
                adapt: bool = True, report: Collection[str] | None = None) -> CommandDecoder:
        """A streaming decoder over the enrolled ``labels`` (adapted to ``profile`` when it has examples), emitting
        only commands of the ``report`` intents when given."""
        return CommandDecoder(self.prior(labels, profile, adapt), channel, config, report)
