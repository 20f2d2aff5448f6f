"""speechocean762 (CC BY 4.0): 5,000 read English sentences by 250 non-native speakers, cut into word clips.

Its Kaldi folders (``train/`` and ``test/``: text, wav.scp, utt2spk) become two corpora,
``<out>_train`` and ``<out>_test``. The test split's speakers are reserved as held-out negatives
for stream benchmarks, so they live in their own corpus that no training recipe names.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edge_meta.errors import DataError
from edge_meta.importers.align import read_lexicon
from edge_meta.importers.layout import require_source, write_source
from edge_meta.importers.sentences import Utterance, describe, import_sentences

SPLITS = ("train", "test")
LICENSE = "Creative Commons Attribution 4.0 (CC BY 4.0)"
UPSTREAM = ("speechocean762 by Junbo Zhang et al. (\"speechocean762: An Open-Source Non-native English Speech "
            "Corpus For Pronunciation Assessment\", Interspeech 2021; github.com/jimbozhang/speechocean762, "
            "openslr.org/101)")


def _table(path: Path) -> dict[str, str]:
    """A Kaldi ``key value...`` file as a dict."""
    require_source(path, "Kaldi table", "point at the unpacked speechocean762 folder (it holds train/ and test/)")
    rows = (line.split(maxsplit=1) for line in path.read_text(encoding="utf-8").splitlines())
    return {r[0]: r[1].strip() for r in rows if len(r) == 2}


def read_split(root: Path, split: str) -> list[Utterance]:
    """One Kaldi split folder as utterances (audio paths in wav.scp are relative to ``root``)."""
    text, wavs, speakers = (_table(root / split / name) for name in ("text", "wav.scp", "utt2spk"))
    lacking = [u for u in text if u not in wavs or u not in speakers]
    if lacking:
        raise DataError(f"{root / split}: {len(lacking)} utterances in 'text' lack a wav.scp or utt2spk entry "
                        f"(e.g. {lacking[0]})", "the Kaldi folder is incomplete: unpack the corpus again")
    return [Utterance(u, speakers[u], root / wavs[u], tuple(text[u].split())) for u in sorted(text)]


def import_speechocean762(src: Path, out: Path, jobs: int = 1, progress: bool = True) -> dict[str, dict[str, int]]:
    """Write ``<out>_train`` and ``<out>_test``; the counts of each (see `write_source`) plus sentence statuses."""
    src = require_source(Path(src), "speechocean762 folder",
                         "unpack github.com/jimbozhang/speechocean762 and give its path")
    lexicon_file = src / "resource" / "lexicon.txt"
    lexicon = read_lexicon(lexicon_file) if lexicon_file.exists() else {}
    splits = {s: read_split(src, s) for s in SPLITS}
    shared = {u.speaker for u in splits["train"]} & {u.speaker for u in splits["test"]}
    if shared:
        raise DataError(f"{src}: speakers {sorted(shared)[:5]} are in both train and test", "is this speechocean762?")
    report = {}
    for split, utterances in splits.items():
        dest = out.parent / f"{out.name}_{split}"
        status = import_sentences(utterances, dest, lexicon, jobs, progress)
        report[split] = write_source(dest, f"speechocean762, {split} split: word clips by forced alignment",
                                     _about(split, utterances, status, out.name)) | dict(status)
    return report


def _about(split: str, utterances: list[Utterance], status: Counter, stem: str) -> list[str]:
    speakers = len({u.speaker for u in utterances})
    role = (f"Its speakers are reserved as held-out negatives for stream benchmarks: no training recipe names "
            f"this corpus (the train split is `{stem}_train`)." if split == "test" else
            f"The test split's speakers are in `{stem}_test` and never here: it is safe to train on this corpus.")
    return [
        f"Real read English speech by non-native speakers (Mandarin L1, adults and children): the {split} split "
        f"of {UPSTREAM}: {len(utterances)} sentences by {speakers} speakers, 16 kHz.",
        f"- License: {LICENSE}. Audio unchanged except cutting and FLAC encoding.",
        f"- {role}",
        *describe("speechocean762", status),
    ]
