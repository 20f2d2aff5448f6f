"""LibriSpeech-style folders (``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + one audio file per line),
cut into word clips by the same forced aligner as speechocean762.

Each folder is one corpus (import train-clean-100 and test-clean separately: LibriSpeech's own
splits have disjoint speakers). ``--lexicon`` adds pronunciations (e.g. LibriSpeech's
librispeech-lexicon.txt) for words pocketsphinx's dictionary lacks.
"""

from __future__ import annotations

from pathlib import Path

from edge_meta.corpora import AUDIO_EXTENSIONS
from edge_meta.errors import DataError
from edge_meta.importers.align import read_lexicon
from edge_meta.importers.layout import require_source, write_source
from edge_meta.importers.sentences import Utterance, describe, import_sentences


def read_folders(root: Path) -> list[Utterance]:
    """Every transcript line under ``root`` whose audio file is there (any extension libsndfile reads)."""
    utterances = []
    for trans in sorted(root.rglob("*.trans.txt")):
        speaker = trans.parent.parent.name
        for line in trans.read_text(encoding="utf-8").splitlines():
            uid, _, text = line.partition(" ")
            audio = next((trans.parent / f"{uid}{ext}" for ext in AUDIO_EXTENSIONS
                          if (trans.parent / f"{uid}{ext}").exists()), None)
            if audio and text.split():
                utterances.append(Utterance(uid, speaker, audio, tuple(text.split())))
    if not utterances:
        raise DataError(f"{root}: no <speaker>/<chapter>/*.trans.txt with audio beside them",
                        "point at a LibriSpeech split folder such as LibriSpeech/train-clean-100")
    return utterances


def import_librispeech(src: Path, out: Path, lexicon: Path | None = None, jobs: int = 1,
                       progress: bool = True) -> dict[str, dict[str, int]]:
    """Write the corpus ``out``; its counts plus sentence statuses."""
    src = require_source(Path(src), "LibriSpeech-style folder", "give a folder of <speaker>/<chapter>/ folders")
    words = read_lexicon(require_source(Path(lexicon), "lexicon", "give a WORD PHONES file")) if lexicon else {}
    utterances = read_folders(src)
    status = import_sentences(utterances, Path(out), words, jobs, progress)
    counts = write_source(Path(out), f"LibriSpeech-style read speech from {src.name}: word clips by forced alignment", [
        f"Read English speech from `{src}`: {len(utterances)} sentences by "
        f"{len({u.speaker for u in utterances})} speakers. LibriSpeech itself (Panayotov et al., ICASSP 2015; "
        "openslr.org/12) is CC BY 4.0; check the license of any other folder imported this way.",
        *describe("librispeech", status),
    ])
    return {Path(out).name: counts | dict(status)}
