"""Unlabelled windows of read sentences, for distillation: a teacher needs no word label.

The word corpora hold ~2,000 word types; the student copies the teacher on those alone and drifts on any
other sound. Every second of read speech teaches it the teacher's geometry too, so the sentences an
importer aligned (its OUT/sentences.tsv, edge_meta.importers.sentences) are cut into overlapping windows
that join the distillation batch. Never into episodes, and never from:
- a sentence that says an evaluation word or a soundalike (FSDD's digits stay unheard);
- a sentence that says a word this run holds out as a new word, or a speaker it holds out for validation,
  so validation still measures what training never saw.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from edge_meta.audio import SAMPLE_RATE, active_speech, read_audio
from edge_meta.corpora import ENGLISH_EVAL_WORDS, EVAL_SOUNDALIKES, Item, is_validation_speaker
from edge_meta.errors import DataError
from edge_meta.importers.sentences import MANIFEST
from edge_meta.train.data import save_cache

MIN_SPEECH = 0.3  # share of a window's 20 ms frames that must be speech: not a window of the pauses between
FRAME = int(0.02 * SAMPLE_RATE)  # active_speech's frame


def sentences(folder: Path, held_out_words: set[str]) -> list[tuple[str, Path]]:
    """(speaker, audio path) of the manifest's sentences that training may hear."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise DataError(f"{folder}: has no {MANIFEST}, so its sentences are unknown",
                        "name a folder written by `edge-meta data speechocean762` (or `librispeech`)")
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line.strip()]
    banned = ENGLISH_EVAL_WORDS | EVAL_SOUNDALIKES | held_out_words
    kept = []
    for row in rows:
        _, speaker, path, *_, text = row
        words = set(re.findall(r"[a-z']+", text.lower()))
        if words & banned or is_validation_speaker(Item(folder.name, "", speaker, Path(path))):
            continue
        kept.append((speaker, Path(path)))
    return kept


def cut(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The windows of ``x`` (every ``hop`` samples) that are mostly speech, as (n, window) float32."""
    if len(x) < window:
        x = np.pad(x, (0, window - len(x)))
    speech = active_speech(x)
    out = []
    for start in range(0, len(x) - window + 1, hop):
        if speech[start // FRAME: (start + window) // FRAME].mean() >= MIN_SPEECH:
            out.append(x[start: start + window])
    return np.stack(out) if out else np.zeros((0, window), np.float32)


def sentence_windows(folders: list[str], window: int, hop: int, held_out_words: set[str], cache_dir: Path | None,
                     progress: bool = True) -> tuple[np.ndarray, str]:
    """(windows (N, window) int16, key naming exactly them): every allowed sentence of ``folders`` cut."""
    from tqdm import tqdm

    kept = [s for f in folders for s in sentences(Path(f), held_out_words)]
    if folders and not kept:
        raise DataError(f"no sentence of {folders} may be used", "check the folders' sentences.tsv")
    key = hashlib.sha256("\n".join([f"{window}|{hop}"] + [str(p) for _, p in kept]).encode()).hexdigest()[:16]
    cache = cache_dir / f"windows-{key}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        return np.load(cache, allow_pickle=False), key
    parts = [np.zeros((0, window), np.int16)]
    for _, path in tqdm(kept, desc="cutting sentences", unit="sentence", disable=not progress):
        w = cut(read_audio(path, announce=False), window, hop)
        parts.append(np.clip(np.round(w * 32767.0), -32768, 32767).astype(np.int16))
    windows = np.concatenate(parts)
    if cache is not None:
        save_cache(cache, windows)
    return windows, key
