"""Forced alignment of read sentences with pocketsphinx: where each word of a known transcript starts and ends.

pocketsphinx ships its en-us acoustic model and CMU dictionary inside the wheel (no download at
run time) and aligns ~50x faster than real time on one core. Words missing from its dictionary
can come from a corpus lexicon in ARPABET (stress digits are dropped: the model's phones have
none); a sentence with a word neither knows is skipped, not guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_meta.audio import SAMPLE_RATE
from edge_meta.errors import DataError

FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate
MARGIN_S = 0.05  # kept either side of a word when the neighbour is silence, never into a neighbouring word
_ALTERNATE = re.compile(r"\(\d+\)$")


@dataclass(frozen=True)
class WordSpan:
    word: str
    start: float  # seconds
    end: float


def read_lexicon(path: Path) -> dict[str, str]:
    """``WORD<whitespace>PHONES`` lines (first pronunciation wins), phones without stress digits."""
    lexicon: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            lexicon.setdefault(parts[0].lower(), " ".join(re.sub(r"\d", "", p).upper() for p in parts[1:]))
    return lexicon


def _decoder():
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise DataError("forced alignment needs pocketsphinx, which is not installed",
                        "pip install 'edge-meta[data]'") from None
    return Decoder(lm=None, loglevel="FATAL")


class Aligner:
    """One pocketsphinx decoder in alignment mode; not shareable between processes (make one per worker)."""

    def __init__(self, lexicon: dict[str, str] | None = None) -> None:
        self._decoder = _decoder()
        self._lexicon = lexicon or {}

    def knows(self, word: str) -> bool:
        """True if ``word`` has a pronunciation: in the dictionary, or added now from the lexicon."""
        word = word.lower()
        if self._decoder.lookup_word(word) is not None:
            return True
        phones = self._lexicon.get(word)
        if not phones:
            return False
        try:
            self._decoder.add_word(word, phones, True)
        except RuntimeError:  # a phone the acoustic model does not have
            return False
        return True

    def align(self, audio: np.ndarray, words: list[str]) -> list[WordSpan] | None:
        """Each word's span in ``audio`` (float32, 16 kHz), in order; None when the decoder finds no path."""
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        d = self._decoder
        d.set_align_text(" ".join(w.lower() for w in words))
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            return None
        spans = [WordSpan(_ALTERNATE.sub("", s.word), s.start_frame / FRAMES_PER_SECOND,
                          (s.end_frame + 1) / FRAMES_PER_SECOND) for s in d.seg()]
        return spans if len([s for s in spans if not _is_filler(s.word)]) == len(words) else None


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "+"))


def cut_words(audio: np.ndarray, spans: list[WordSpan], margin: float = MARGIN_S) -> list[np.ndarray]:
    """Each aligned word's clip, in order, widened by ``margin`` only where the neighbour is silence."""
    clips = []
    for k, span in enumerate(spans):
        if _is_filler(span.word):
            continue
        before = k > 0 and not _is_filler(spans[k - 1].word)
        after = k + 1 < len(spans) and not _is_filler(spans[k + 1].word)
        start = span.start if before else max(0.0, span.start - margin)
        end = span.end if after else span.end + margin
        clips.append(audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)])
    return clips
