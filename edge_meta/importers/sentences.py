"""Read sentences with transcripts -> word clips, in parallel, resumable, with a manifest of every sentence.

OUT/sentences.tsv gets one row per sentence as it finishes (source path, speaker, seconds, status,
clips written, text). It is both the resume log (a rerun skips the sentences it lists) and the
list of unaligned sentence audio that distillation windows and stream negatives can draw from.
"""

from __future__ import annotations

import csv
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

from edge_meta.audio import SAMPLE_RATE, read_audio
from edge_meta.errors import AudioError
from edge_meta.importers.align import Aligner, cut_words
from edge_meta.importers.layout import clip_path, is_eval_word, write_flac

MANIFEST = "sentences.tsv"
COLUMNS = ("utterance", "speaker", "path", "seconds", "status", "clips", "text")
# Statuses: "cut" (aligned, clips written), "unknown-word" (a word with no pronunciation),
# "no-alignment" (the decoder found no path), "unreadable" (the audio file).


@dataclass(frozen=True)
class Utterance:
    uid: str
    speaker: str
    path: Path
    words: tuple[str, ...]


_aligner: Aligner | None = None  # one per worker process


def _start_worker(lexicon: dict[str, str]) -> None:
    global _aligner
    _aligner = Aligner(lexicon)


def _cut(job: tuple[Utterance, Path, str]) -> dict[str, str]:
    """One sentence: read, align, write its word clips; its manifest row."""
    utt, out, language = job
    row = {"utterance": utt.uid, "speaker": utt.speaker, "path": str(utt.path.resolve()), "seconds": "0",
           "clips": "0", "text": " ".join(utt.words)}
    try:
        audio = read_audio(utt.path, announce=False)
    except AudioError:
        return row | {"status": "unreadable"}
    row["seconds"] = f"{len(audio) / SAMPLE_RATE:.2f}"
    if not all(_aligner.knows(w) for w in utt.words):
        return row | {"status": "unknown-word"}
    spans = _aligner.align(audio, list(utt.words))
    if spans is None:
        return row | {"status": "no-alignment"}
    written = 0
    for k, (word, clip) in enumerate(zip(utt.words, cut_words(audio, spans))):
        if not is_eval_word(word, language):
            write_flac(clip_path(out, word, utt.speaker, f"{utt.uid}-{k}"), clip)
            written += 1
    return row | {"status": "cut", "clips": str(written)}


def read_manifest(out: Path) -> list[dict[str, str]]:
    path = out / MANIFEST
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def import_sentences(utterances: list[Utterance], out: Path, lexicon: dict[str, str] | None = None,
                     jobs: int = 1, progress: bool = True, language: str = "en") -> Counter:
    """Align and cut every utterance not yet in OUT's manifest; the status count over all of them."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    done = {r["utterance"] for r in read_manifest(out)}
    todo = [(u, out, language) for u in utterances if u.uid not in done]
    path = out / MANIFEST
    new = not path.exists()
    with path.open("a", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        if new:
            writer.writeheader()
        bar = tqdm(total=len(todo), desc=f"aligning {out.name}", unit="sentence", disable=not progress)
        parallel = jobs > 1 and len(todo) > 1
        _start_worker(lexicon or {})  # here first: a missing pocketsphinx is one clear error, not failing workers
        with Pool(jobs, _start_worker, (lexicon or {},)) if parallel else nullcontext() as pool:
            for row in pool.imap_unordered(_cut, todo, chunksize=4) if parallel else map(_cut, todo):
                writer.writerow(row)
                f.flush()
                bar.update()
        bar.close()
    return Counter(r["status"] for r in read_manifest(out))


def describe(command: str, status: Counter) -> list[str]:
    """The SOURCE.md lines every aligned import shares: how it was cut and what became of each sentence."""
    return [
        f"- Cut by `edge-meta data {command}`: pocketsphinx's en-us model aligns each sentence to its transcript "
        "(words missing from its dictionary take the given lexicon's pronunciation); each word keeps up to 50 ms of "
        "silence either side, never audio of a neighbouring word.",
        f"- Sentences: {status.get('cut', 0)} cut, {status.get('unknown-word', 0)} skipped for a word with no "
        f"pronunciation, {status.get('no-alignment', 0)} not aligned, {status.get('unreadable', 0)} unreadable.",
        "- FSDD's evaluation words (zero..nine, oh) and their soundalikes (to, too, for, won, ate, owe, ...) are never "
        "written: FSDD stays evaluation-only.",
        f"- `{MANIFEST}`: every sentence (source path, speaker, seconds, status, clips, text): the unaligned sentence "
        "audio for distillation windows and stream negatives.",
    ]
