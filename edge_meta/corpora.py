"""Corpus readers: every clip becomes an `Item` that knows its corpus, word, speaker and path.

Two layouts are understood:
- Speech Commands: ``<word>/<speaker>_nohash_<n>.<ext>`` (Google Speech Commands, the Arabic
  Speech Commands set, and the project's own synthetic-speech cache). Folders starting with ``_``
  (``_silence_``, ``_background_noise_``) are noise, not words.
- FSDD: ``recordings/{digit}_{speaker}_{take}.wav``.

A class is ``corpus:word``: classes never merge across corpora (an Arabic "zero" is not an English
"zero").
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge_meta.audio import fix_length, read_audio
from edge_meta.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The evaluation vocabulary (FSDD) in English: never a training word in an English corpus.
ENGLISH_EVAL_WORDS = frozenset(DIGIT_WORDS) | {"oh"}
# Words that sound like them: kept out of English training words as firmly as the words themselves.
EVAL_SOUNDALIKES = frozenset({"won", "to", "too", "for", "fore", "ate", "owe", "nein", "sicks", "tu", "ti"})


@dataclass(frozen=True)
class Item:
    corpus: str
    word: str
    speaker: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.corpus}:{self.word}"


@dataclass
class Corpus:
    name: str
    root: Path
    items: list[Item]
    noise: list[Path]

    @property
    def words(self) -> list[str]:
        return sorted({i.word for i in self.items})

    @property
    def speakers(self) -> list[str]:
        return sorted({i.speaker for i in self.items})

    def without_words(self, words: Iterable[str]) -> "Corpus":
        drop = set(words)
        return Corpus(self.name, self.root, [i for i in self.items if i.word not in drop], self.noise)

    def only_words(self, words: Iterable[str]) -> "Corpus":
        keep = set(words)
        return Corpus(self.name, self.root, [i for i in self.items if i.word in keep], self.noise)


def _require_dir(root: Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: {what} corpus not found", "check the path (shared data lives in ../shared/data)")
    return root


def read_speech_commands(root: str | Path, name: str | None = None) -> Corpus:
    """Read a Speech Commands style folder tree."""
    root = _require_dir(Path(root), "Speech Commands")
    items: list[Item] = []
    noise: list[Path] = []
    for word_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in word_dir.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
        if word_dir.name.startswith("_"):
            noise.extend(files)
            continue
        for f in files:
            speaker = f.stem.split("_nohash_")[0] if "_nohash_" in f.stem else f.stem
            items.append(Item(name or root.name, word_dir.name, speaker, f))
    if not items:
        raise DataError(f"{root}: no <word>/<speaker>_nohash_<n> audio files found", "is this a Speech Commands folder?")
    return Corpus(name or root.name, root, items, noise)


_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")


def read_fsdd(root: str | Path) -> Corpus:
    """Read the Free Spoken Digit Dataset (``root`` or ``root/recordings``)."""
    root = _require_dir(Path(root), "FSDD")
    rec = root / "recordings" if (root / "recordings").is_dir() else root
    items = []
    for f in sorted(rec.glob("*.wav")):
        m = _FSDD_NAME.match(f.stem)
        if m:
            items.append(Item("fsdd", DIGIT_WORDS[int(m.group(1))], m.group(2), f))
    if not items:
        raise DataError(f"{rec}: no {{digit}}_{{speaker}}_{{take}}.wav files found", "is this the FSDD recordings folder?")
    return Corpus("fsdd", root, items, [])


def read_corpus(root: str | Path, kind: str = "auto", name: str | None = None) -> Corpus:
    """Read a corpus by layout; ``kind`` is 'speech_commands', 'fsdd' or 'auto' (guess from the files)."""
    root = Path(root)
    if kind == "auto":
        kind = "fsdd" if (root / "recordings").is_dir() or root.name == "fsdd" else "speech_commands"
    if kind == "fsdd":
        return read_fsdd(root)
    if kind == "speech_commands":
        return read_speech_commands(root, name)
    raise DataError(f"unknown corpus kind {kind!r}", "use 'speech_commands' or 'fsdd'")


def is_validation_speaker(item: Item, every: int = 10) -> bool:
    """Stable speaker split: about one speaker in ``every`` is held out for validation."""
    return zlib.crc32(f"{item.corpus}/{item.speaker}".encode()) % every == 0


def load_clips(items: Sequence[Item], window_samples: int, announce: bool = False) -> np.ndarray:
    """(len(items), window_samples) float32 clips at 16 kHz, each fitted to the window."""
    out = np.zeros((len(items), window_samples), dtype=np.float32)
    for k, item in enumerate(items):
        out[k] = fix_length(read_audio(item.path, announce=announce), window_samples)
    return out
