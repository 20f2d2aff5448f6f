"""Word detections -> the most likely command, with the (adapted) language model as the prior.

The device hears only enrolled words, so a command phrase is seen as its *units*: the enrolled labels
it contains, in order (longest label first: "lights on" can be one keyword). Hypotheses are
(command, units) pairs; a hypothesis's prior is the language model's probability of all the
candidate phrases that look like it (summed), and its likelihood comes from a noisy channel:

- each unit is missed with probability ``deletion`` or heard as one detection;
- a detection of label l with score s, for a unit u, has likelihood e if l == u else (1 - e) / (L - 1),
  where e = sigmoid(logit(1 - substitution) + score_weight * logit(s)): the measured substitution
  rate as the prior odds, the detector's score as evidence (0.5 is neutral);
- a detection that matches no unit is an insertion, with probability ``insertion`` / L.

The likelihood sums over all alignments (a small forward pass, vectorised over hypotheses). A null
hypothesis ("no command, every detection spurious") competes, so a stray word yields low confidence.
The posterior of the best command is its confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Collection, Protocol, Sequence

import numpy as np

from edge_meta.commands.grammar import Command, Grammar, Phrase, words_of


class WordDetection(Protocol):
    """What the decoder reads of a detection (`edge_meta.device.detector.Detection` fits)."""

    label: str
    score: float

    @property
    def t(self) -> float: ...


@dataclass(frozen=True)
class WordEvent:
    """A plain detection (benchmarks, tests, recorded streams)."""

    label: str
    score: float
    t: float


@dataclass(frozen=True)
class ChannelModel:
    substitution: float = 0.1
    deletion: float = 0.1
    insertion: float = 0.05
    score_weight: float = 1.0
    null_prior: float = 0.05  # prior share of "these detections are no command"

    def confidence(self, scores: np.ndarray) -> np.ndarray:
        """Probability that each detection's label is the word said."""
        s = np.clip(np.asarray(scores, dtype=np.float64), 1e-3, 1 - 1e-3)
        keep = min(max(1.0 - self.substitution, 1e-4), 1 - 1e-4)
        z = math.log(keep / (1 - keep)) + self.score_weight * np.log(s / (1 - s))
        return 1.0 / (1.0 + np.exp(-z))


def label_key(label: str) -> str:
    return " ".join(words_of(label))


def project(words: Sequence[str], labels: dict[tuple[str, ...], int], longest: int) -> tuple[int, ...]:
    """The label ids a phrase contains, left to right, longest label first; other words are unheard."""
    out, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            label = labels.get(tuple(words[i : i + n]))
            if label is not None:
                out.append(label)
                i += n
                break
        else:
            i += 1
    return tuple(out)


def candidate_phrases(grammar: Grammar, labels: Sequence[str], examples: Sequence[Phrase] = ()) -> list[Phrase]:
    """Core phrases the decoder weighs: every grammar phrase whose slot values are enrolled words (a word the
    grammar does not know may fill any slot) or appear in the user's examples, plus the examples themselves
    (politeness wrappers removed: never enrolled)."""
    heard = {w for label in labels for w in words_of(label)}
    unknown = sorted(heard - set(grammar.known_words()))  # a household's own word may fill any slot
    values = {s: [v for v in pools["known"] if v in heard] + unknown for s, pools in grammar.slots.items()}
    for e in examples:
        for slot, value in e.command.slots:
            if slot in values and value not in values[slot]:
                values[slot].append(value)
    phrases = {p.words: p for p in grammar.enumerate(values)}
    for e in examples:
        core = grammar.strip_wrappers(e.words)
        phrases.setdefault(core, Phrase(core, e.command))
    return list(phrases.values())


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + math.log(float(np.sum(np.exp(x - m))))


@dataclass
class CommandPrior:
    """Hypotheses (command, units) with log priors, for one set of enrolled labels."""

    labels: list[str]
    commands: list[Command]
    command_of: np.ndarray  # (N,) index into commands
    units: np.ndarray  # (N, U) label ids, -1 = none
    lengths: np.ndarray  # (N,)
    log_prior: np.ndarray  # (N,) normalised over the hypotheses
    phrases: list[str]  # the likeliest phrase of each hypothesis
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {label: i for i, label in enumerate(self.labels)}

    def label_id(self, label: str) -> int | None:
        return self._index.get(label_key(label))

    @classmethod
    def build(cls, phrases: Sequence[Phrase], labels: Sequence[str],
              log_probs: np.ndarray | None = None) -> "CommandPrior":
        """Group phrases by (command, units). ``log_probs`` of the phrases under the language model; None gives
        the decoder without a language model: every command equally likely, and each of its unit patterns."""
        keys = sorted({label_key(x) for x in labels})
        index = {tuple(k.split()): i for i, k in enumerate(keys)}
        longest = max((len(k) for k in index), default=1)
        groups: dict[tuple[Command, tuple[int, ...]], list[int]] = {}
        for n, p in enumerate(phrases):
            groups.setdefault((p.command, project(p.words, index, longest)), []).append(n)
        commands = sorted({c for c, _ in groups}, key=lambda c: c.name)
        cmd_index = {c: i for i, c in enumerate(commands)}
        hyp = list(groups.items())
        if log_probs is None:
            patterns = np.bincount([cmd_index[c] for (c, _), _ in hyp], minlength=len(commands))
            prior = np.array([-math.log(len(commands) * patterns[cmd_index[c]]) for (c, _), _ in hyp])
            best = [members[0] for _, members in hyp]
        else:
            lp = np.asarray(log_probs, dtype=np.float64)
            prior = np.array([_logsumexp(lp[members]) for _, members in hyp])
            best = [members[int(np.argmax(lp[members]))] for _, members in hyp]
        width = max((len(u) for (_, u), _ in hyp), default=0)
        units = np.full((len(hyp), max(width, 1)), -1, dtype=np.int64)
        for n, ((_, u), _) in enumerate(hyp):
            units[n, : len(u)] = u
        return cls(keys, commands, np.array([cmd_index[c] for (c, _), _ in hyp]), units,
                   np.array([len(u) for (_, u), _ in hyp]), prior - _logsumexp(prior), [phrases[b].text for b in best])


@dataclass(frozen=True)
class CommandEvent:
    command: Command
    confidence: float
    words: tuple[str, ...]  # the detected labels the decision read
    phrase: str  # the likeliest wording of the decoded command
    t: float  # time of the last detection
    start_t: float  # time of the first

    def to_event(self) -> dict:
        """The daemon's JSON event."""
        return {"event": "command", "command": self.command.name, "intent": self.command.intent,
                "slots": dict(self.command.slots), "phrase": self.phrase, "words": list(self.words),
                "confidence": round(self.confidence, 4), "t": round(self.t, 3), "start_t": round(self.start_t, 3)}


def log_likelihoods(prior: CommandPrior, label_ids: np.ndarray, scores: np.ndarray,
                    channel: ChannelModel) -> np.ndarray:
    """(N,) log P(detections | hypothesis), summed over alignments."""
    n_labels = max(len(prior.labels), 2)
    e = channel.confidence(scores)
    match = np.where(prior.units[:, :, None] == label_ids[None, None, :], np.log(e), np.log((1 - e) / (n_labels - 1)))
    log_del = math.log(min(max(channel.deletion, 1e-4), 1 - 1e-4))
    log_keep = math.log(1 - min(max(channel.deletion, 1e-4), 1 - 1e-4))
    log_ins = math.log(max(channel.insertion, 1e-4) / n_labels)
    n, width = prior.units.shape
    m = len(label_ids)
    f = np.full((n, width + 1, m + 1), -np.inf)
    f[:, 0, :] = log_ins * np.arange(m + 1)
    for i in range(1, width + 1):
        f[:, i, 0] = f[:, i - 1, 0] + log_del
        for j in range(1, m + 1):
            f[:, i, j] = np.logaddexp(np.logaddexp(f[:, i - 1, j] + log_del, f[:, i, j - 1] + log_ins),
                                      f[:, i - 1, j - 1] + log_keep + match[:, i - 1, j - 1])
    return f[np.arange(n), prior.lengths, m]


def decode(prior: CommandPrior, detections: Sequence[WordDetection], channel: ChannelModel) -> CommandEvent | None:
    """The most likely command given a group of detections (unknown labels ignored), or None for none."""
    heard = [(d, prior.label_id(d.label)) for d in detections]
    heard = [(d, i) for d, i in heard if i is not None]
    if not heard or not len(prior.commands):
        return None
    ids = np.array([i for _, i in heard])
    scores = np.array([d.score for d, _ in heard])
    log_post = prior.log_prior + math.log(1 - channel.null_prior) + log_likelihoods(prior, ids, scores, channel)
    null = math.log(channel.null_prior) + len(ids) * math.log(max(channel.insertion, 1e-4) / max(len(prior.labels), 2))
    total = np.logaddexp(_logsumexp(log_post), null)
    per_command = np.full(len(prior.commands), -np.inf)
    np.logaddexp.at(per_command, prior.command_of, log_post)
    best = int(np.argmax(per_command))
    members = np.flatnonzero(prior.command_of == best)
    phrase = prior.phrases[int(members[np.argmax(log_post[members])])]
    return CommandEvent(prior.commands[best], float(math.exp(per_command[best] - total)),
                        tuple(d.label for d, _ in heard), phrase, float(heard[-1][0].t), float(heard[0][0].t))


@dataclass(frozen=True)
class DecoderConfig:
    gap_s: float = 1.5  # a pause this long after a word ends the command
    max_words: int = 8  # ... and so does this many words
    min_confidence: float = 0.5  # commands below it are not emitted


class CommandDecoder:
    """Streaming: groups word detections into utterances and decodes each one.

    ``push(detection)`` returns the events it completes (the previous utterance, when the pause before
    this word was long enough); ``advance(t)`` closes an utterance when stream time t is past its pause
    (call it per hop, or on a timer); ``flush()`` at the end of the stream."""

    def __init__(self, prior: CommandPrior, channel: ChannelModel | None = None,
                 config: DecoderConfig | None = None, report: Collection[str] | None = None) -> None:
        """``report``: the intents whose events are emitted (None: all). The others still compete in decoding,
        so that a word of another command ("stop") is read as that command and dropped, not forced into one
        that is reported."""
        self.prior, self.channel, self.cfg = prior, channel or ChannelModel(), config or DecoderConfig()
        self.report = report
        self.pending: list[WordDetection] = []

    def push(self, detection: WordDetection) -> list[CommandEvent]:
        if self.prior.label_id(detection.label) is None:
            return []
        out = self.advance(detection.t)
        self.pending.append(detection)
        if len(self.pending) >= self.cfg.max_words:
            out += self.flush()
        return out

    def advance(self, t: float) -> list[CommandEvent]:
        if self.pending and t - self.pending[-1].t > self.cfg.gap_s:
            return self.flush()
        return []

    def flush(self) -> list[CommandEvent]:
        group, self.pending = self.pending, []
        event = decode(self.prior, group, self.channel) if group else None
        if event is None or event.confidence < self.cfg.min_confidence:
            return []
        return [event] if self.report is None or event.command.intent in self.report else []
