"""Training data in memory: every clip fitted to the window, as int16, with class and speaker ids.

Loading tens of thousands of FLAC files takes a while, so the decoded bank is cached as one .npy
beside the other caches, keyed by the exact list of files (a changed corpus gets a new cache).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_meta.audio import fix_length, read_audio
from edge_meta.corpora import ENGLISH_EVAL_WORDS, Corpus, Item, is_validation_speaker, read_corpus
from edge_meta.errors import DataError
from edge_meta.noise import load_noise_part


@dataclass
class CorpusSpec:
    """One corpus in a training config."""

    path: str
    kind: str = "auto"
    name: str | None = None
    synthetic: bool = False
    exclude_words: list[str] = field(default_factory=list)
    exclude_eval_words: bool = False  # drop the English digits and 'oh' (FSDD's words)
    # drop clips shorter than this: words cut from sentences by alignment include 0.1 s fragments ("a", "the")
    # that no one enrolls and that, zero-padded into a 1 s window, are mostly silence
    min_seconds: float = 0.0

    def read(self) -> Corpus:
        corpus = read_corpus(self.path, self.kind, self.name)
        drop = set(self.exclude_words) | (ENGLISH_EVAL_WORDS if self.exclude_eval_words else set())
        corpus = corpus.without_words(drop)
        if self.min_seconds > 0:
            corpus = replace(corpus, items=[i for i in corpus.items if sf.info(str(i.path)).duration >= self.min_seconds])
        return corpus


@dataclass
class ClipBank:
    """Clips (N, window) int16 with per-clip class id, speaker id and split; class names are corpus:word."""

    clips: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray
    validation: np.ndarray  # True for clips of held-out speakers
    synthetic: np.ndarray  # per class
    class_names: list[str]
    speaker_names: list[str]
    key: str = ""  # names the exact list of clips (the cache key), so per-clip caches can follow it

    def waveforms(self, idx: np.ndarray) -> np.ndarray:
        return self.clips[idx].astype(np.float32) / 32768.0

    def subset(self, mask: np.ndarray) -> "ClipBank":
        return ClipBank(self.clips[mask], self.labels[mask], self.speakers[mask], self.validation[mask],
                        self.synthetic, self.class_names, self.speaker_names)


def _decode(items: list[Item], window: int, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    out = np.zeros((len(items), window), dtype=np.int16)
    for k, item in enumerate(tqdm(items, desc="decoding clips", unit="clip", disable=not progress)):
        x = fix_length(read_audio(item.path, announce=False), window)
        out[k] = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    return out


def save_cache(path: Path, array: np.ndarray) -> None:
    """Write a cache .npy whole or not at all (a run killed mid-write leaves no half file to load next time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.npy")
    np.save(tmp, array)
    tmp.replace(path)


def build_bank(specs: list[CorpusSpec], window: int, cache_dir: Path | None, progress: bool = True) -> ClipBank:
    """Read every corpus, decode (or load from cache) its clips, and index classes and speakers."""
    corpora = [(s, s.read()) for s in specs]
    items = [i for _, c in corpora for i in c.items]
    if not items:
        raise DataError("the training config names no clips", "add corpora to the [[corpora]] list")
    key = hashlib.sha256("\n".join(f"{i.path}|{window}" for i in items).encode()).hexdigest()[:16]
    cache = cache_dir / f"bank-{key}.npy" if cache_dir else None
    if cache and cache.exists():
        clips = np.load(cache, allow_pickle=False)
    else:
        clips = _decode(items, window, progress)
        if cache:
            save_cache(cache, clips)
    class_names = sorted({i.label for i in items})
    speaker_names = sorted({f"{i.corpus}/{i.speaker}" for i in items})
    cls = {n: k for k, n in enumerate(class_names)}
    spk = {n: k for k, n in enumerate(speaker_names)}
    synthetic_corpora = {c.name for s, c in corpora if s.synthetic}
    return ClipBank(
        clips=clips,
        labels=np.array([cls[i.label] for i in items]),
        speakers=np.array([spk[f"{i.corpus}/{i.speaker}"] for i in items]),
        validation=np.array([is_validation_speaker(i) and i.corpus not in synthetic_corpora for i in items]),
        synthetic=np.array([n.split(":")[0] in synthetic_corpora for n in class_names]),
        class_names=class_names,
        speaker_names=speaker_names,
        key=key,
    )


def load_noise(specs: list[CorpusSpec], max_files: int = 1000) -> list[np.ndarray]:
    """Background recordings (``_silence_``, ``_background_noise_``) of the real corpora, for augmentation:
    only their training share (edge_meta.noise), so the noisy benchmark mixes in audio training never heard."""
    paths = [p for s in specs if not s.synthetic for p in read_corpus(s.path, s.kind, s.name).noise][:max_files]
    return load_noise_part(paths, "train")
