"""The Multilingual Spoken Words Corpus (CC BY 4.0): one-second words cut from Common Voice, 50 languages.

One language at a time: ``<src>/<lang>/clips/<word>/*.opus`` and its ``<lang>_splits.csv``
(columns SET, LINK, WORD, VALID, SPEAKER, GENDER; LINK is relative to ``clips/``). TRAIN and DEV
rows go to ``<out>_train``, TEST rows to ``<out>_test``; rows MSWC marks invalid are skipped, and
in English FSDD's words are too. Opus (48 kHz) is decoded to 16 kHz FLAC.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from edge_meta.errors import DataError
from edge_meta.importers.layout import clip_path, convert_clips, is_eval_word, require_source, write_source

LICENSE = "Creative Commons Attribution 4.0 (CC BY 4.0)"
UPSTREAM = ("MLCommons' Multilingual Spoken Words Corpus (Mazumder et al., NeurIPS 2021 Datasets and Benchmarks; "
            "mlcommons.org/datasets/multilingual-spoken-words), cut from Mozilla Common Voice")
SPEAKER_CHARS = 16  # MSWC speakers are 128-hex-digit Common Voice ids; 16 digits stay unique and fit a file name
COLUMNS = {"SET", "LINK", "WORD", "VALID", "SPEAKER"}


def splits_file(src: Path, lang: str) -> Path:
    for path in (src / lang / f"{lang}_splits.csv", src / f"{lang}_splits.csv", src / "splits" / f"{lang}_splits.csv"):
        if path.exists():
            return path
    raise DataError(f"{src}: no {lang}_splits.csv (looked in {lang}/, ./ and splits/)",
                    f"download MSWC's splits archive for '{lang}' and unpack it beside the clips")


def plan(src: Path, lang: str, out: Path) -> tuple[list[tuple[Path, Path]], Counter]:
    """(source, dest) for every valid clip, and how many rows were left out and why."""
    clips = require_source(src / lang / "clips", f"MSWC clips for '{lang}'",
                           f"expected {src}/{lang}/clips/<word>/*.opus")
    path = splits_file(src, lang)
    pairs, left_out = [], Counter()
    with path.open(encoding="utf-8", newline="") as f:  # English has ~5M rows: read them one at a time
        reader = csv.DictReader(f)
        if not COLUMNS <= set(reader.fieldnames or []):
            raise DataError(f"{path}: expected columns {sorted(COLUMNS)}, found {reader.fieldnames}",
                            "is this an MSWC <lang>_splits.csv?")
        for row in reader:
            if row["VALID"].strip().lower() != "true":
                left_out["invalid rows"] += 1
            elif is_eval_word(row["WORD"], lang):
                left_out["eval-word rows"] += 1
            else:
                dest = out.parent / f"{out.name}_{'test' if row['SET'].strip().upper() == 'TEST' else 'train'}"
                speaker = row["SPEAKER"].strip()[:SPEAKER_CHARS]
                pairs.append((clips / row["LINK"], clip_path(dest, row["WORD"], speaker, Path(row["LINK"]).stem)))
    return pairs, left_out


def import_mswc(src: Path, lang: str, out: Path, jobs: int = 1, progress: bool = True) -> dict[str, dict[str, int]]:
    """Write ``<out>_train`` and ``<out>_test``; their counts."""
    src = require_source(Path(src), "MSWC folder", "unpack MSWC's audio and splits archives and give the folder")
    pairs, left_out = plan(src, lang, Path(out))
    written = convert_clips(pairs, jobs, progress, f"decoding {Path(out).name}")
    report = {}
    for split in ("train", "test"):
        dest = Path(out).parent / f"{Path(out).name}_{split}"
        if not dest.is_dir():
            continue
        role = ("TRAIN and DEV rows; the TEST rows are in `{0}_test`, never here." if split == "train" else
                "Only the TEST rows: keep it out of training recipes (`{0}_train` is the rest).")
        report[split] = write_source(dest, f"MSWC '{lang}', {split} part", [
            f"Real crowd-sourced speech, one-second word clips in language '{lang}': {UPSTREAM}.",
            f"- License: {LICENSE}. Decoded from Opus to 16 kHz FLAC by `edge-meta data mswc`.",
            "- " + role.format(Path(out).name),
            f"- Speaker ids are the first {SPEAKER_CHARS} hex digits of MSWC's SPEAKER column.",
            f"- Left out: {left_out.get('invalid rows', 0)} rows MSWC marks invalid, "
            f"{left_out.get('eval-word rows', 0)} rows of FSDD's evaluation words or their soundalikes, "
            f"{written.get('unreadable', 0)} unreadable clips (both parts).",
        ])
    return report
