"""Streaming keyword detection: audio chunks in, detections out.

Per hop (100 ms) the detector looks at the last 1 s window. Log-mel frames are computed once, as
samples arrive (the hop is a whole number of frames, so each window is just the newest frames);
a cheap energy gate skips the encoder when the window holds nothing louder than the tracked noise
floor; otherwise one encoder pass scores every enrolled word. Scores are smoothed over a couple of
hops, the best word above its own threshold starts a candidate, the candidate's peak is emitted
once the score falls (or after a few hops), and a refractory period stops one utterance firing twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_meta.device.backends import EncoderBackend
from edge_meta.device.heads import PrototypeHead
from edge_meta.frontend import LogMel


@dataclass
class DetectorConfig:
    hop_s: float = 0.1
    smoothing: int = 2  # hops averaged
    max_wait: int = 3  # hops a candidate may keep rising before it is emitted
    refractory_s: float = 1.0
    gate_db: float = 6.0  # a window must be this much above the noise floor to be scored
    floor_dbfs: float = -60.0  # ... and above this absolute level


@dataclass(frozen=True)
class Detection:
    label: str
    user: str
    score: float
    start_s: float  # the scored 1 s window
    end_s: float

    @property
    def t(self) -> float:
        return (self.start_s + self.end_s) / 2


class StreamingDetector:
    def __init__(self, logmel: LogMel, backend: EncoderBackend, head: PrototypeHead, keys: list[tuple[str, str]],
                 thresholds: np.ndarray, config: DetectorConfig | None = None) -> None:
        self.logmel, self.backend, self.head = logmel, backend, head
        self.keys, self.thresholds = keys, np.asarray(thresholds, dtype=np.float32)
        self.cfg = config or DetectorConfig()
        spec = logmel.spec
        self.hop = int(round(self.cfg.hop_s * spec.sample_rate))
        if self.hop % spec.hop_length:
            raise ValueError(f"hop of {self.hop} samples is not a whole number of {spec.hop_length}-sample frames")
        self.n_frames, self.window = spec.n_frames, spec.window_samples
        self.pending = np.zeros(0, dtype=np.float32)  # samples from the next frame's start on
        self.tail = np.zeros(0, dtype=np.float32)  # the newest hop of samples, for the energy gate
        self.frames: deque[np.ndarray] = deque(maxlen=self.n_frames)
        self.frame_count = 0  # global index of the next frame
        self.sample_count = 0
        self.next_boundary = self.hop  # every hop is gated from the start; scoring needs a full window
        self.hop_db: deque[float] = deque(maxlen=self.window // self.hop)
        self.noise_floor = 0.0  # dBFS; falls to the quietest hop at once, rises slowly
        self.recent: deque[np.ndarray] = deque(maxlen=self.cfg.smoothing)
        self.candidate: tuple[float, int, float, int] | None = None  # (margin, word, score, boundary)
        self.candidate_age = 0
        self.quiet_until = 0
        self.encoder_calls = 0
        self.hops = 0
        # Half a window of silence before the stream (and after it, in flush) so a word at the very
        # start or end still gets a window centred on it. Stream time = sample index - lead.
        self.lead = (self.window // 2) // self.hop * self.hop
        self._feed(np.zeros(self.lead, dtype=np.float32))

    def process(self, chunk: np.ndarray) -> list[Detection]:
        """Feed samples (any chunk size); returns the detections completed by them."""
        return self._feed(np.asarray(chunk, dtype=np.float32).reshape(-1))

    def _feed(self, chunk: np.ndarray) -> list[Detection]:
        """Consume samples up to each hop boundary in turn, so every window sees exactly its own frames
        whatever the chunk size."""
        out: list[Detection] = []
        while len(chunk):
            take = min(len(chunk), self.next_boundary - self.sample_count)
            piece, chunk = chunk[:take], chunk[take:]
            self.pending = np.concatenate([self.pending, piece])
            self.tail = np.concatenate([self.tail, piece])[-self.hop :]
            self.sample_count += len(piece)
            self._add_frames()
            if self.sample_count == self.next_boundary:
                out += self._evaluate(self.next_boundary, self.tail)
                self.next_boundary += self.hop
        return out

    def flush(self) -> list[Detection]:
        """End of stream: score the last words with trailing silence and emit what is pending."""
        out = self._feed(np.zeros(self.lead + self.hop, dtype=np.float32))
        return out + ([self._emit()] if self.candidate else [])

    # -- framing ---------------------------------------------------------------------------------
    def _add_frames(self) -> None:
        s = self.logmel.spec
        if len(self.pending) < s.win_length:
            return
        n = 1 + (len(self.pending) - s.win_length) // s.hop_length
        used = (n - 1) * s.hop_length + s.win_length
        self.frames.extend(self.logmel.log_mel_frames(self.pending[:used]))
        self.pending = self.pending[n * s.hop_length :]
        self.frame_count += n

    # -- scoring ---------------------------------------------------------------------------------
    def _gate(self, hop_samples: np.ndarray) -> bool:
        """True when the window holds a hop clearly above the tracked noise floor (digital silence = -100 dBFS)."""
        power = float(np.mean(np.square(hop_samples, dtype=np.float64))) if len(hop_samples) else 0.0
        db = 10.0 * np.log10(max(power, 1e-10))
        self.hop_db.append(db)
        if db < self.noise_floor:
            self.noise_floor = db
        else:
            self.noise_floor += 0.02 * (db - self.noise_floor)  # the floor creeps up in steady noise
        loudest = max(self.hop_db)
        return loudest > self.cfg.floor_dbfs and loudest > self.noise_floor + self.cfg.gate_db

    def _evaluate(self, boundary: int, hop_samples: np.ndarray) -> list[Detection]:
        self.hops += 1
        n_words = len(self.keys)
        if n_words and self._gate(hop_samples) and len(self.frames) == self.n_frames:
            feats = self.logmel.normalise(np.stack(self.frames)).T[None, None]
            emb = self.backend.embed(feats)["word"]
            self.encoder_calls += 1
            scores = self.head.scores(emb)[0]
        else:
            if not n_words:
                return []
            scores = np.full(n_words, -1.0, dtype=np.float32)
        self.recent.append(scores)
        smoothed = np.mean(self.recent, axis=0)
        margins = smoothed - self.thresholds
        best = int(np.argmax(margins))
        out = []
        if boundary < self.quiet_until:
            self.candidate = None
            return out
        if margins[best] >= 0:
            if self.candidate is None or margins[best] > self.candidate[0]:
                self.candidate = (float(margins[best]), best, float(smoothed[best]), boundary)
            self.candidate_age += 1
            if self.candidate_age >= self.cfg.max_wait:
                out.append(self._emit())
        elif self.candidate is not None:
            out.append(self._emit())
        return out

    def _emit(self) -> Detection:
        assert self.candidate is not None
        _, word, score, boundary = self.candidate
        self.candidate, self.candidate_age = None, 0
        self.quiet_until = boundary + int(self.cfg.refractory_s * self.logmel.spec.sample_rate)
        sr = self.logmel.spec.sample_rate
        label, user = self.keys[word]
        return Detection(label, user, score, max(0.0, (boundary - self.window - self.lead) / sr), (boundary - self.lead) / sr)
