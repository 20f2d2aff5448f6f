"""Google Speech Commands v0.02 (CC BY 4.0), the full download: ~105k one-second clips of 35 words.

Its own split is kept: clips named in testing_list.txt go to ``<out>_test``, all others (training
and validation_list.txt) to ``<out>_train`` with ``_background_noise_``; edge-meta holds out its own
validation speakers by `is_validation_speaker`. The digits are FSDD's words and are not imported.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edge_meta.corpora import AUDIO_EXTENSIONS
from edge_meta.importers.layout import clip_path, convert_clips, is_eval_word, require_source, write_source

LICENSE = "Creative Commons Attribution 4.0 (CC BY 4.0)"
UPSTREAM = ("Google's Speech Commands v0.02 (Pete Warden, \"Speech Commands: A Dataset for Limited-Vocabulary Speech "
            "Recognition\", 2018; download.tensorflow.org/data/speech_commands_v0.02.tar.gz)")


def plan(src: Path, out: Path) -> tuple[list[tuple[Path, Path]], Counter]:
    """(source, dest) for every clip and noise file to write, and how many of each kind were left out."""
    testing = set(require_source(src / "testing_list.txt", "testing_list.txt",
                                 "point at the unpacked Speech Commands v0.02 folder").read_text().split())
    train, test = out.parent / f"{out.name}_train", out.parent / f"{out.name}_test"
    pairs, left_out = [], Counter()
    for word_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(p for p in word_dir.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
        if word_dir.name.startswith("_"):  # _background_noise_: noise for augmentation, not a word
            pairs += [(f, train / word_dir.name / f"{f.stem}.flac") for f in files]
            continue
        if is_eval_word(word_dir.name):
            left_out["eval-word clips"] += len(files)
            continue
        for f in files:
            if "_nohash_" not in f.stem:
                left_out["misnamed clips"] += 1
                continue
            speaker, n = f.stem.split("_nohash_", 1)
            dest = test if f"{word_dir.name}/{f.name}" in testing else train
            pairs.append((f, clip_path(dest, word_dir.name, speaker, n)))
    return pairs, left_out


def import_speech_commands(src: Path, out: Path, jobs: int = 1, progress: bool = True) -> dict[str, dict[str, int]]:
    """Write ``<out>_train`` and ``<out>_test`` as FLAC; their counts."""
    src = require_source(Path(src), "Speech Commands folder", "unpack speech_commands_v0.02.tar.gz and give its path")
    pairs, left_out = plan(src, Path(out))
    written = convert_clips(pairs, jobs, progress, f"converting {Path(out).name}")
    report = {}
    for split in ("train", "test"):
        dest = Path(out).parent / f"{Path(out).name}_{split}"
        if not dest.is_dir():
            continue
        role = ("Clips named in testing_list.txt are in `{0}_test`, never here." if split == "train" else
                "Only the clips named in testing_list.txt: keep it out of training recipes ({0}_train is the rest).")
        report[split] = write_source(dest, f"Speech Commands v0.02, {split} part", [
            f"Real crowd-sourced speech, one-second clips: {UPSTREAM}.",
            f"- License: {LICENSE}. Audio unchanged, stored as FLAC by `edge-meta data speech-commands`.",
            "- " + role.format(Path(out).name),
            f"- Left out: {left_out.get('eval-word clips', 0)} clips of FSDD's evaluation words (zero..nine), "
            f"{left_out.get('misnamed clips', 0)} files not named <speaker>_nohash_<n>, "
            f"{written.get('unreadable', 0)} unreadable (both parts).",
        ])
    return report
