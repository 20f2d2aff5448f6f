"""Writing a corpus in the layout `edge_meta.corpora` reads, and the SOURCE.md that describes it."""

from __future__ import annotations

import os
import re
from collections import Counter
from contextlib import nullcontext
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_meta.audio import SAMPLE_RATE, read_audio
from edge_meta.corpora import ENGLISH_EVAL_WORDS, EVAL_SOUNDALIKES, is_validation_speaker, read_speech_commands
from edge_meta.errors import AudioError, DataError

_UNSAFE = re.compile(r"[^\w'\-]+")


def folder_word(word: str) -> str:
    """A word as a folder name: lower case, spaces as '_', no path characters, never a leading '_' (noise)."""
    return _UNSAFE.sub("_", word.strip().lower()).strip("_")


def speaker_id(speaker: str) -> str:
    """A speaker id that survives the ``<speaker>_nohash_<n>`` file name (no path characters, no '_nohash_')."""
    return _UNSAFE.sub("-", speaker.strip()).replace("_nohash_", "-") or "unknown"


def is_eval_word(word: str, language: str = "en") -> bool:
    """FSDD's words (and words that sound like them) in an English corpus: never imported, FSDD stays
    evaluation-only."""
    return language == "en" and folder_word(word) in ENGLISH_EVAL_WORDS | EVAL_SOUNDALIKES


def require_source(path: Path, what: str, hint: str) -> Path:
    """``path`` if it exists, else the DataError that says what the importer expected there."""
    if not path.exists():
        raise DataError(f"{path}: {what} not found", hint)
    return path


def clip_path(out: Path, word: str, speaker: str, n: str) -> Path:
    return out / folder_word(word) / f"{speaker_id(speaker)}_nohash_{n}.flac"


def write_flac(path: Path, audio: np.ndarray) -> None:
    """16-bit FLAC at 16 kHz, written beside and renamed into place so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    sf.write(tmp, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    tmp.replace(path)


def write_source(out: Path, title: str, about: list[str]) -> dict[str, int]:
    """Write OUT/SOURCE.md: ``about`` lines, the counts, and the speakers held out for validation.

    Held-out speakers are decided by `is_validation_speaker` from the corpus name, which is the
    folder's name: the list is only right while a recipe reads the folder without renaming it.
    """
    corpus = read_speech_commands(out)
    held_out = sorted({i.speaker for i in corpus.items if is_validation_speaker(i)})
    per_word = Counter(i.word for i in corpus.items)
    counts = {"clips": len(corpus.items), "words": len(per_word), "speakers": len(corpus.speakers),
              "held_out_speakers": len(held_out), "noise_files": len(corpus.noise)}
    lines = [f"# {title}", "", *about, "",
             f"- Layout: `<word>/<speaker>_nohash_<n>.flac`, 16 kHz mono 16-bit FLAC; corpus name `{corpus.name}`.",
             f"- {counts['clips']} clips of {counts['words']} words by {counts['speakers']} speakers"
             + (f"; {counts['noise_files']} noise files in `_background_noise_/`." if corpus.noise else "."),
             f"- Clips per word: median {int(np.median(list(per_word.values())))}, "
             f"max {max(per_word.values())} ({per_word.most_common(1)[0][0]}), "
             f"{sum(v >= 5 for v in per_word.values())} words with at least 5.",
             f"- Held out for validation (`edge_meta.corpora.is_validation_speaker` on corpus `{corpus.name}`; "
             f"renaming the corpus changes them): {len(held_out)} speakers: {' '.join(held_out)}", ""]
    (out / "SOURCE.md").write_text("\n".join(lines), encoding="utf-8")
    return counts


def _convert(job: tuple[Path, Path]) -> bool:
    """Decode one clip (any rate libsndfile reads, Opus included) into a 16 kHz FLAC; False if unreadable."""
    source, dest = job
    try:
        write_flac(dest, read_audio(source, announce=False))
    except AudioError:
        return False
    return True


def convert_clips(pairs: list[tuple[Path, Path]], jobs: int, progress: bool, desc: str) -> Counter:
    """(source, dest) pairs decoded into FLAC in parallel; dests that exist are skipped (a rerun resumes)."""
    from tqdm import tqdm

    todo = [p for p in pairs if not p[1].exists()]
    counts = Counter(skipped=len(pairs) - len(todo))
    with Pool(jobs) if jobs > 1 and len(todo) > 1 else nullcontext() as pool:
        done = pool.imap_unordered(_convert, todo, chunksize=16) if pool else map(_convert, todo)
        for ok in tqdm(done, total=len(todo), desc=desc, unit="clip", disable=not progress):
            counts["written" if ok else "unreadable"] += 1
    return counts
