"""The clip sets every system embeds, and the protocols each one supports.

- FSDD: every protocol (6 speakers x 10 digits x 50 takes; never seen in edge-meta's training).
- Speech Commands test, digits only: edge-meta's recipe drops the digits from its training words,
  so these are unseen *words* from 118 speakers; with 1-2 takes per speaker only "any speaker"
  episodes fit (support and queries from random, mostly different, speakers).
- Arabic Speech Commands, validation speakers (`is_validation_speaker`): unseen *voices*, but their
  words were trained on other speakers' takes; 4 takes per word, so 1-shot with 3 queries.
- FSDD in noise (``snrs``): the noisy protocol of edge_meta.noise (each take padded to 2 s at a seeded
  offset, evaluation-only real noise at each SNR over its active speech), written once as FLAC files
  so that every system, in its own process, reads exactly the same audio; a "2 s clean" set on the
  same padded takes separates the noise from the padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_meta.audio import read_audio
from edge_meta.bench.fewshot import eval_noise
from edge_meta.corpora import DIGIT_WORDS, Item, is_validation_speaker, read_corpus, read_fsdd
from edge_meta.noise import noisy_clips
FewshotSpec = tuple[str, int, int]  # (episode mode, k support takes, q queries per word)
FSDD_FEWSHOT: tuple[FewshotSpec, ...] = (("own", 1, 5), ("own", 5, 5), ("household", 1, 5), ("household", 5, 5))
NOISY_FEWSHOT: tuple[FewshotSpec, ...] = (("own", 1, 5), ("household", 5, 5))


@dataclass
class ClipSet:
    name: str
    note: str
    items: list[Item]
    fewshot: tuple[FewshotSpec, ...]
    full: bool = False  # open set and speaker EER too (FSDD only)

    @property
    def files(self) -> list[str]:
        return [str(i.path) for i in self.items]

    def ids(self, values: list[str]) -> np.ndarray:
        names = sorted(set(values))
        return np.array([names.index(v) for v in values])

    @property
    def labels(self) -> np.ndarray:
        return self.ids([i.word for i in self.items])

    @property
    def speakers(self) -> np.ndarray:
        return self.ids([i.speaker for i in self.items])


def noisy_fsdd_sets(root: Path, snrs: tuple[float, ...], seed: int, cache: Path) -> list[ClipSet]:
    """FSDD padded to 2 s, clean and at each SNR, as files under ``cache`` (written once per seed)."""
    import soundfile as sf

    items = read_fsdd(root / "fsdd").items
    clips = None
    pool = eval_noise(root)
    sets = []
    for snr in (None, *snrs):
        name = "2 s clean" if snr is None else f"2 s {snr:g} dB"
        folder = cache / f"noisy_fsdd_seed{seed}" / name.replace(" ", "_")
        paths = [folder / f"{i.path.stem}.flac" for i in items]
        if not all(p.exists() for p in paths):
            clips = clips or [read_audio(i.path, announce=False) for i in items]
            folder.mkdir(parents=True, exist_ok=True)
            for path, x in zip(paths, noisy_clips(clips, pool, snr, seed)):
                sf.write(path, x, 16000, subtype="PCM_16")
        sets.append(ClipSet(f"FSDD, {name}", "FSDD takes padded to 2 s at a seeded offset" +
                            ("" if snr is None else ", real evaluation-only noise over their active speech"),
                            [Item(i.corpus, i.word, i.speaker, p) for i, p in zip(items, paths)], NOISY_FEWSHOT))
    return sets


def load_sets(data_root: str | Path, extra: bool = True, snrs: tuple[float, ...] = (), seed: int = 0,
              cache: Path = Path("cache/peers")) -> list[ClipSet]:
    """FSDD, plus the two held-out sets of the other corpora when ``extra`` and present, plus FSDD in
    noise at ``snrs``."""
    root = Path(data_root)
    sets = [ClipSet("FSDD", "10 digits, 6 speakers; words and voices never trained", read_fsdd(root / "fsdd").items,
                    FSDD_FEWSHOT, full=True)]
    if snrs:
        sets += noisy_fsdd_sets(root, snrs, seed, cache)
    if not extra:
        return sets
    if (root / "speech_commands_test").is_dir():
        items = read_corpus(root / "speech_commands_test").only_words(DIGIT_WORDS).items
        sets.append(ClipSet("Speech Commands digits", "words never trained; any speaker", items,
                            (("any", 1, 5), ("any", 5, 5))))
    if (root / "arabic_speech_commands").is_dir():
        items = [i for i in read_corpus(root / "arabic_speech_commands").items if is_validation_speaker(i)]
        sets.append(ClipSet("Arabic, validation speakers", "voices never trained, words trained", items,
                            (("own", 1, 3), ("household", 1, 3))))
    return sets
