"""The device API, small enough to hold in your head:

    rt = Runtime.open("bundle/", store="profiles.db")
    rt.enroll_word("lights on", [pcm1, pcm2, pcm3], user="alice")
    for d in rt.listen(WavSource("test.wav")):
        print(d.label, d.score, d.start_s)

Enrollment checks every take (speech present, not clipped, fits the window), embeds it, calibrates
the word's threshold against the bundle's background bank, and stores takes and embeddings in the
profile store in one transaction. Words enrolled with an older bundle are re-embedded from their
kept audio when a new bundle opens the store.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edge_meta.audio import SAMPLE_RATE, active_speech, fix_length, read_audio, require_speech
from edge_meta.bundle import Bundle
from edge_meta.device.backends import EncoderBackend, open_backend
from edge_meta.device.detector import Detection, DetectorConfig, StreamingDetector
from edge_meta.device.heads import Calibration, PrototypeHead, calibrate_threshold
from edge_meta.device.sources import AudioSource, WavSource
from edge_meta.device.store import ProfileStore
from edge_meta.errors import AudioError, StoreError
from edge_meta.frontend import LogMel
from edge_meta.resources import default_bundle_path

Clip = np.ndarray | str | Path


@dataclass
class EnrolledWord:
    label: str
    user: str
    takes: int
    calibration: Calibration


class Runtime:
    def __init__(self, bundle: Bundle, backend: EncoderBackend, store: ProfileStore) -> None:
        self.bundle = bundle
        self.backend = backend
        self.store = store
        self.logmel = LogMel(bundle.frontend)
        heads = bundle.load_heads()
        self.background = heads.get("background.word", np.zeros((0, 0))).astype(np.float32)
        self.default_threshold = float(bundle.manifest.get("thresholds", {}).get("word", 0.5))
        self._reembed_stale_words()

    @classmethod
    def open(cls, bundle: str | Path | None = None, store: str | Path = ":memory:", backend: str = "onnx",
             precision: str = "int8", threads: int = 1) -> "Runtime":
        """Open and verify a bundle (default: the one shipped with edge-meta) and a profile store."""
        b = Bundle.open(bundle or default_bundle_path())
        return cls(b, open_backend(b, backend, precision, threads), ProfileStore(store))

    def close(self) -> None:
        self.store.close()
        self.bundle.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- embedding ---------------------------------------------------------------------------------
    def load_clip(self, clip: Clip, name: str = "take") -> np.ndarray:
        """A take as 16 kHz float32 mono, from a path or an array."""
        if isinstance(clip, (str, Path)):
            return read_audio(clip)
        x = np.asarray(clip, dtype=np.float32)
        if x.ndim != 1 or len(x) == 0:
            raise AudioError(f"{name}: expected a non-empty 1-D array of 16 kHz samples", "pass mono float32 audio")
        if not np.all(np.isfinite(x)):
            raise AudioError(f"{name}: contains NaN or infinite samples", "record it again")
        return x

    def embed(self, clips: Sequence[np.ndarray], output: str = "word") -> np.ndarray:
        """Unit-length embeddings of clips, each fitted to the model window."""
        n = self.logmel.spec.window_samples
        windows = np.stack([fix_length(c, n) for c in clips])
        return self.backend.embed(self.logmel.batch(windows))[output]

    def check_take(self, x: np.ndarray, name: str) -> None:
        """Refuse a take that is silent, clipped, or holds more speech than fits in the window."""
        require_speech(x, name)
        active = np.flatnonzero(active_speech(x))
        span = (active[-1] - active[0] + 1) * 0.02
        if span > self.logmel.spec.window_s + 0.25:
            raise AudioError(f"{name}: holds {span:.1f} s of sound; a keyword must fit in {self.logmel.spec.window_s:.1f} s",
                             "record only the word, with little silence around it")

    # -- enrollment --------------------------------------------------------------------------------
    def enroll_word(self, label: str, clips: Sequence[Clip], user: str = "", keep_audio: bool = True,
                    false_accept: float = 0.01) -> EnrolledWord:
        label = label.strip()
        if not label:
            raise StoreError("the word to enroll has an empty label", "give the word as text, e.g. \"lights on\"")
        if not clips:
            raise AudioError(f"no takes given for {label!r}", "give 1-10 recordings of the word (3-5 work best)")
        names = [str(c) if isinstance(c, (str, Path)) else f"take {i + 1}" for i, c in enumerate(clips)]
        takes = [self.load_clip(c, n) for c, n in zip(clips, names)]
        for x, n in zip(takes, names):
            self.check_take(x, n)
        emb = self.embed(takes)
        cal = calibrate_threshold(emb, self.background, self.default_threshold, false_accept)
        self.store.add_word(label, user, cal.threshold, emb, self.bundle.bundle_id,
                            takes if keep_audio else None, SAMPLE_RATE)
        return EnrolledWord(label, user, len(takes), cal)

    def remove_word(self, label: str, user: str = "") -> None:
        if not self.store.remove_word(label, user):
            raise StoreError(f"no enrolled word {label!r}" + (f" for user {user!r}" if user else ""),
                             "see the enrolled words with `edge-meta device list`")

    def _reembed_stale_words(self) -> None:
        for w in self.store.words():
            if all(b == self.bundle.bundle_id for b in w.bundle_ids):
                continue
            audio = self.store.takes_audio(w.label, w.user)
            if not audio:
                warnings.warn(f"word {w.label!r} was enrolled with another model and its audio was not kept: "
                              "enroll it again", stacklevel=2)
                continue
            emb = self.embed(audio)
            cal = calibrate_threshold(emb, self.background, self.default_threshold)
            self.store.add_word(w.label, w.user, cal.threshold, emb, self.bundle.bundle_id, audio, SAMPLE_RATE)

    # -- detection ---------------------------------------------------------------------------------
    def detector(self, config: DetectorConfig | None = None) -> StreamingDetector:
        words = [w for w in self.store.words() if all(b == self.bundle.bundle_id for b in w.bundle_ids)]
        head = PrototypeHead().fit({f"{w.label}\0{w.user}": w.embeddings for w in words})
        keys = [(w.label, w.user) for w in words]
        return StreamingDetector(self.logmel, self.backend, head, keys, np.array([w.threshold for w in words]), config)

    def listen(self, source: AudioSource, config: DetectorConfig | None = None) -> Iterator[Detection]:
        det = self.detector(config)
        for chunk in source.chunks():
            yield from det.process(chunk)
        yield from det.flush()

    def detect_file(self, path: str | Path, config: DetectorConfig | None = None) -> list[Detection]:
        return list(self.listen(WavSource(path), config))
