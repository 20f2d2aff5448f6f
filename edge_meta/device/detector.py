"""Streaming keyword detection: audio chunks in, detections (word, score, who spoke) out.

Per hop (100 ms) the detector looks at the last 1 s window. Log-mel frames are computed once per
sample (the hop is a whole number of frames, so each window is just the newest frames of a ring
buffer). Three things spare the encoder: a cheap energy gate skips it, and the frames too, when the
window holds nothing louder than the tracked noise floor (the frames are computed when it opens);
the hops after one where every word scored far below its threshold keep that hop's scores (`Hold`);
and voices are scored only when a word passes its threshold (a bundle whose word and speaker
encoders are separate graphs, `EncoderBackend.separable`, then runs the speaker graph on just those
hops and the one before them that the smoothing averages; a one-graph bundle gets both embeddings
from its one pass). The decisions (`Trigger`) use only those scores: scores are smoothed over a
couple of hops, a word bound to a voice counts only while that voice passes its threshold, the
best word above its own threshold starts a candidate once the template check
(`edge_meta.device.verifier`) agrees that the window's frames line up with one of its takes, the
candidate's peak is emitted once the score falls (or after a few hops), and a refractory period
stops one utterance firing twice. Everything per hop works in fixed-size numpy buffers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge_meta.device.backends import EncoderBackend
from edge_meta.device.scorer import UNSCORED, Scorer, Vocabulary
from edge_meta.device.verifier import TemplateVerifier
from edge_meta.errors import ConfigError
from edge_meta.frontend import FrontendSpec, LogMel


@dataclass
class DetectorConfig:
    hop_s: float = 0.1
    smoothing: int = 2  # hops averaged
    max_wait: int = 3  # hops a candidate may keep rising before it is emitted
    refractory_s: float = 1.0
    gate_db: float = 6.0  # a window must be this much above the noise floor to be scored
    floor_dbfs: float = -60.0  # ... and above this absolute level
    template_ratio: float = 1.3  # a candidate must match a take this well (x its own takes' spread); inf = off
    template_slope: float = 5.0  # ... plus this much per unit of encoder score above the word's threshold
    template_context_s: float = 0.3  # audio before the scored window that the template may align into
    hold_below: float | None = None  # a hop whose every word is this far under its threshold lets the next ones
    hold_hops: int = 2  # skip the encoder, this many of them (`Hold`); None: the margin the bundle's export measured
    # (`Bundle.hold_below`, resolved by `Runtime.detector`); hold_below = inf or hold_hops = 0 scores every hop


@dataclass(frozen=True)
class Detection:
    label: str
    user: str
    score: float
    start_s: float  # the scored 1 s window, in seconds of stream
    end_s: float
    speaker: str | None = None  # the enrolled voice that passed its threshold (best one), else None
    speaker_score: float | None = None  # cosine to the best enrolled voice; None when no voice is enrolled

    @property
    def t(self) -> float:
        return (self.start_s + self.end_s) / 2

    def to_event(self) -> dict:
        """The daemon's JSON event."""
        return {"event": "word", "word": self.label, "user": self.user or None, "score": round(self.score, 4),
                "speaker": self.speaker,
                "speaker_score": None if self.speaker_score is None else round(self.speaker_score, 4),
                "t": round(self.t, 3), "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}


@dataclass(frozen=True)
class HopScores:
    """What one hop contributes to the decisions (a benchmark can record these and replay `Trigger`)."""

    boundary: int  # sample index (stream + lead) at the end of the window
    words: np.ndarray  # (W,)
    voices: np.ndarray | Callable[[], np.ndarray]  # (V,), or what scores them if a decision needs them
    gated: bool = False  # below the energy gate: not scored
    held: bool = False  # the previous hop's scores, kept (see `Hold`)


class Hold:
    """Which hops skip the encoder: the ``hops`` hops after one whose every word scored at least ``below``
    under its threshold keep that hop's scores. A window moves 0.1 s a hop, so a word's score climbs over
    several hops, and from that far below it does not reach its peak before the next scored hop; far from
    every word, windows are scored every 0.3 s instead of every 0.1 s (``hops=2``). None is held after a
    gated hop. On the FSDD streams this ran the encoder on 40% of hops instead of 93%, at the same FRR and
    false accepts to 0.1 point (benchmarks/RESULTS.md)."""

    def __init__(self, thresholds: np.ndarray, below: float, hops: int = 1) -> None:
        self.limit = thresholds.astype(np.float32) - np.float32(below)
        self.hops = hops
        self.pending: HopScores | None = None
        self.left = 0

    def take(self, hop_boundary: int, gated: bool) -> HopScores | None:
        """The held scores for this hop, or None when it must be scored (or is gated)."""
        if self.pending is None or gated or self.left == 0:
            self.pending = None
            return None
        self.left -= 1
        return HopScores(hop_boundary, self.pending.words, self.pending.voices, held=True)

    def offer(self, hop: HopScores) -> None:
        """A freshly scored hop: the next ones keep its scores if every word is far below its threshold."""
        if len(self.limit) and np.all(hop.words < self.limit):
            self.pending, self.left = hop, self.hops
        else:
            self.pending = None

    def replay(self, hops: list[HopScores]) -> list[HopScores]:
        """What a detector holding hops would have scored, from every hop scored (a benchmark's recording)."""
        out = []
        for hop in hops:
            held = self.take(hop.boundary, hop.gated)
            out.append(hop if held is None else held)
            if held is None and not hop.gated:
                self.offer(hop)
        return out


Verify = Callable[[int, int, float], bool]  # (word index, window end in samples, margin over its threshold) -> pass


class Trigger:
    """Decisions from per-hop scores: smoothing, per-word thresholds, voice binding, the template check of a new
    candidate (``verify``, None: none), peak picking, refractory."""

    def __init__(self, vocabulary: Vocabulary, config: DetectorConfig, sample_rate: int, window: int, lead: int,
                 threshold_offset: float = 0.0, verify: Verify | None = None) -> None:
        self.v, self.cfg, self.verify = vocabulary, config, verify
        self.sample_rate, self.window, self.lead = sample_rate, window, lead
        self.thresholds = vocabulary.thresholds.astype(np.float32) + np.float32(threshold_offset)
        n_words, n_voices = len(vocabulary.keys), len(vocabulary.voices)
        self.recent_words = np.full((config.smoothing, n_words), UNSCORED, np.float32)
        self.recent_voices = np.full((config.smoothing, n_voices), UNSCORED, np.float32)
        self.pending_voices: list[Callable[[], np.ndarray] | None] = [None] * config.smoothing
        self.slot = 0
        self.bound = vocabulary.bound >= 0
        self.candidate: tuple[float, int, float, int, str | None, float | None] | None = None
        self.candidate_age = 0
        self.quiet_until = 0

    def step(self, hop: HopScores) -> list[Detection]:
        if not len(self.thresholds):
            return []
        self.recent_words[self.slot] = hop.words
        self.pending_voices[self.slot] = hop.voices if callable(hop.voices) else None
        if not callable(hop.voices):
            self.recent_voices[self.slot] = hop.voices
        self.slot = (self.slot + 1) % len(self.recent_words)
        words = self.recent_words.mean(axis=0)
        margins = words - self.thresholds
        if hop.boundary < self.quiet_until:
            self.candidate = None
            return []
        if margins.max() >= 0:  # voices matter only now: binding, and who said the candidate
            voices = self._voices()
            voice_ok = voices >= self.v.voice_thresholds
            if self.bound.any():
                margins[self.bound & ~voice_ok[np.maximum(self.v.bound, 0)]] = -np.inf
            if margins.max() >= 0:
                self._consider(margins, words, voices, voice_ok, hop.boundary)
                if self.candidate is not None:
                    self.candidate_age += 1
                    if self.candidate_age >= self.cfg.max_wait:
                        return [self.emit()]
                return []
        return [self.emit()] if self.candidate is not None else []

    def _voices(self) -> np.ndarray:
        """The smoothed voice scores, scoring first the recent hops whose voices were left for later."""
        for k, pending in enumerate(self.pending_voices):
            if pending is not None:
                self.recent_voices[k] = pending()
                self.pending_voices[k] = None
        return self.recent_voices.mean(axis=0)

    def _consider(self, margins: np.ndarray, words: np.ndarray, voices: np.ndarray, voice_ok: np.ndarray,
                  boundary: int) -> None:
        """The best word above its threshold and above the pending candidate that passes the template check
        becomes the candidate (a word that fails it leaves the next best its chance)."""
        for w in np.argsort(-margins):
            if margins[w] < 0 or (self.candidate is not None and margins[w] <= self.candidate[0]):
                return
            if self.verify is None or self.verify(int(w), boundary, float(margins[w])):
                speaker, speaker_score = self._speaker(int(w), voices, voice_ok)
                self.candidate = (float(margins[w]), int(w), float(words[w]), boundary, speaker, speaker_score)
                return

    def _speaker(self, word: int, voices: np.ndarray, voice_ok: np.ndarray) -> tuple[str | None, float | None]:
        """The bound voice for a bound word; else the voice furthest above its threshold, if any passes."""
        if not len(voices):
            return None, None
        v = int(self.v.bound[word]) if self.bound[word] else int(np.argmax(voices - self.v.voice_thresholds))
        return (self.v.voices[v] if voice_ok[v] else None), float(voices[v])

    def emit(self) -> Detection:
        assert self.candidate is not None
        _, word, score, boundary, speaker, speaker_score = self.candidate
        self.candidate, self.candidate_age = None, 0
        self.quiet_until = boundary + int(self.cfg.refractory_s * self.sample_rate)
        label, user = self.v.keys[word]
        return Detection(label, user, score, max(0.0, (boundary - self.window - self.lead) / self.sample_rate),
                         (boundary - self.lead) / self.sample_rate, speaker, speaker_score)


def verified_frames(spec: FrontendSpec, config: DetectorConfig) -> int:
    """How many of the newest log-mel frames the template check sees: the scored window and some context before."""
    return spec.n_frames + int(round(config.template_context_s * spec.sample_rate / spec.hop_length))


class StreamingDetector:
    def __init__(self, logmel: LogMel, backend: EncoderBackend, scorer: Scorer,
                 config: DetectorConfig | None = None, verifier: TemplateVerifier | None = None) -> None:
        self.logmel, self.backend = logmel, backend
        self.cfg = config or DetectorConfig()
        if self.cfg.hold_below is None:
            raise ValueError("hold_below is None: resolve it against the bundle first (Runtime.detector does)")
        spec = logmel.spec
        self.hop = int(round(self.cfg.hop_s * spec.sample_rate))
        if self.hop <= 0 or self.hop % spec.hop_length:
            raise ConfigError(f"detector.hop_s = {self.cfg.hop_s} s is not a whole number of this bundle's "
                              f"{spec.hop_length / spec.sample_rate * 1000:g} ms frames",
                              f"use a multiple of {spec.hop_length / spec.sample_rate:g} s, e.g. 0.1")
        self.n_frames, self.window = spec.n_frames, spec.window_samples
        self.pending = np.zeros(0, dtype=np.float32)  # samples from the next frame's start on
        self.tail = np.zeros(0, dtype=np.float32)  # the newest hop of samples, for the energy gate
        # the newest window of samples, kept only for a graph that takes them (the trunk flavour's word graph)
        self.recent = np.zeros(spec.window_samples, dtype=np.float32) if backend.takes_waveform else None
        self.history = verified_frames(spec, self.cfg)  # frames kept: the window, and the template check's context
        self.ring = np.zeros((2 * self.history, spec.n_mels), dtype=np.float32)  # log-mel frames; newest at [end-1]
        self.end = 0
        self.sample_count = 0
        self.next_boundary = self.hop  # every hop is gated from the start; scoring needs a full window
        self.hop_db = np.full(max(1, self.window // self.hop), -100.0)  # level of the hops in the window
        self.noise_floor = 0.0  # dBFS; falls to the quietest hop at once, rises slowly
        self.encoder_calls = 0
        self.speaker_calls = 0  # hops whose speaker embedding was computed on its own (separable encoders)
        self.hops = 0
        # Half a window of silence before the stream (and after it, in flush) so a word at the very
        # start or end still gets a window centred on it. Stream time = sample index - lead.
        self.lead = (self.window // 2) // self.hop * self.hop
        self.use(scorer, verifier)
        self._feed(np.zeros(self.lead, dtype=np.float32))

    def use(self, scorer: Scorer, verifier: TemplateVerifier | None) -> None:
        """Listen for the scorer's words from the next hop on, keeping the stream (frames, noise floor, clock): the
        daemon's words changed under it. A candidate of the words before is dropped, not emitted."""
        self.scorer, self.verifier = scorer, verifier
        v = scorer.vocabulary
        self.trigger = Trigger(v, self.cfg, self.logmel.spec.sample_rate, self.window, self.lead,
                               verify=self._verify if verifier is not None else None)
        self.unscored = (np.full(len(v.keys), UNSCORED, np.float32), np.full(len(v.voices), UNSCORED, np.float32))
        self.hold = Hold(v.thresholds, self.cfg.hold_below, self.cfg.hold_hops)

    def process(self, chunk: np.ndarray) -> list[Detection]:
        """Feed samples (any chunk size, float32 mono at the bundle's rate); returns the detections they complete."""
        return self._feed(np.asarray(chunk, dtype=np.float32).reshape(-1))

    @property
    def settled_s(self) -> float:
        """Stream time (s) before which no detection is still to come: the centre of the pending candidate's
        window, else of the next window to be scored. Detections come out half a window and a few hops after
        the word, so a consumer timing pauses between words (the command decoder) must wait on this, not on
        the newest sample."""
        boundary = self.trigger.candidate[3] if self.trigger.candidate else self.next_boundary
        return max(0.0, (boundary - self.window / 2 - self.lead) / self.logmel.spec.sample_rate)

    def flush(self) -> list[Detection]:
        """End of stream: score the last words with trailing silence and emit what is pending."""
        out = self._feed(np.zeros(self.lead + self.hop, dtype=np.float32))
        return out + ([self.trigger.emit()] if self.trigger.candidate else [])

    def hop_scores(self, chunk: np.ndarray) -> list[HopScores]:
        """Like `process`, but return every hop's scores instead of decisions (for benchmarks' DET curves)."""
        return self._feed(np.asarray(chunk, dtype=np.float32).reshape(-1), decide=False)

    def _feed(self, chunk: np.ndarray, decide: bool = True) -> list:
        """Consume samples up to each hop boundary in turn, so every window sees exactly its own frames
        whatever the chunk size."""
        out: list = []
        while len(chunk):
            take = min(len(chunk), self.next_boundary - self.sample_count)
            piece, chunk = chunk[:take], chunk[take:]
            self.pending = np.concatenate([self.pending, piece])
            self.tail = np.concatenate([self.tail, piece])[-self.hop :]
            if self.recent is not None:
                self.recent = np.concatenate([self.recent, piece])[-self.window :]
            self.sample_count += len(piece)
            if self.sample_count == self.next_boundary:
                hop = self._score(self.next_boundary, self.tail, live=decide)
                if decide:
                    out += self.trigger.step(hop)
                else:
                    out.append(hop)
                self.next_boundary += self.hop
        return out

    # -- framing ---------------------------------------------------------------------------------
    def _add_frames(self) -> None:
        """Log-mel frames of every whole frame of the pending samples into the ring."""
        s = self.logmel.spec
        if len(self.pending) < s.win_length:
            return
        n = 1 + (len(self.pending) - s.win_length) // s.hop_length
        used = (n - 1) * s.hop_length + s.win_length
        frames = self.logmel.log_mel_frames(self.pending[:used])[-self.history :]
        self.pending = self.pending[n * s.hop_length :]
        k = len(frames)
        if self.end + k > len(self.ring):  # keep the newest frames at the front, then append
            keep = self.history - k
            self.ring[:keep] = self.ring[self.end - keep : self.end]
            self.end = keep
        self.ring[self.end : self.end + k] = frames
        self.end += k

    def _skip_frames(self) -> None:
        """Below the gate nothing reads the frames: keep only the samples of the newest ``history`` of them, to be
        computed (all at once) if the gate opens while they are still in the window."""
        s = self.logmel.spec
        excess = len(self.pending) - ((self.history - 1) * s.hop_length + s.win_length)
        if excess > 0:
            whole_frames = -(-excess // s.hop_length) * s.hop_length  # dropped from the front, keeping frame starts
            self.pending = self.pending[whole_frames:]

    def _verify(self, word: int, boundary: int, margin: float) -> bool:
        """The template check on the newest frames (a candidate is always the hop just scored)."""
        assert self.verifier is not None and boundary == self.next_boundary
        return self.verifier.accepts(word, self.ring[max(0, self.end - self.history) : self.end], margin)

    # -- scoring ---------------------------------------------------------------------------------
    def _gate(self, hop_samples: np.ndarray) -> bool:
        """True when the window holds a hop clearly above the tracked noise floor (digital silence = -100 dBFS)."""
        power = float(np.mean(np.square(hop_samples, dtype=np.float64))) if len(hop_samples) else 0.0
        db = 10.0 * np.log10(max(power, 1e-10))
        self.hop_db[self.hops % len(self.hop_db)] = db
        if db < self.noise_floor:
            self.noise_floor = db
        else:
            self.noise_floor += 0.02 * (db - self.noise_floor)  # the floor creeps up in steady noise
        loudest = float(self.hop_db.max())
        return loudest > self.cfg.floor_dbfs and loudest > self.noise_floor + self.cfg.gate_db

    def _score(self, boundary: int, hop_samples: np.ndarray, live: bool) -> HopScores:
        """One hop's scores. Live (`process`), a hop far below every threshold lets the next keep its scores and
        voices are scored only if a decision asks; `hop_scores` scores every hop and voice, for replays."""
        gated = not self._gate(hop_samples)
        self.hops += 1
        if gated:
            self._skip_frames()
        else:
            self._add_frames()
        held = self.hold.take(boundary, gated) if live else None
        if held is not None:
            return held
        if gated or not self.scorer.vocabulary.keys or self.end < self.n_frames:
            return HopScores(boundary, *self.unscored, gated=True)
        window = self.ring[self.end - self.n_frames : self.end]
        feats = np.ascontiguousarray(self.logmel.normalise(window).T[None, None])  # a copy: the ring moves on
        wave = None if self.recent is None else self.recent[None]  # replaced, never changed in place
        self.encoder_calls += 1
        if (live and self.backend.separable and self.scorer.vocabulary.voices
                and self.scorer.speaker_output != "word"):
            hop = HopScores(boundary, self.scorer.words(self.backend.embed(feats, ["word"], waveform=wave)),
                            functools.cache(lambda: self._speaker_scores(feats, wave)))
        else:
            needed = None if self.scorer.vocabulary.voices else ["word"]
            hop = HopScores(boundary, *self.scorer.score(self.backend.embed(feats, needed, waveform=wave)))
        if live:
            self.hold.offer(hop)
        return hop

    def _speaker_scores(self, feats: np.ndarray, wave: np.ndarray) -> np.ndarray:
        self.speaker_calls += 1
        return self.scorer.voices(self.backend.embed(feats, [self.scorer.speaker_output], waveform=wave))
