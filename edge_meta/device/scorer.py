"""What the detector asks of each scored window: how much it sounds like each word, and like each voice.

The word embedding is the bundle's "word" output; the voice embedding its "speaker" output (or the
word output again when the bundle has no speaker projection), asked for only when a decision needs
it. The word head is the one the bundle's learner trained (`edge_meta.device.heads.HEADS`).

Heads with open-set scores (prototype, matching, relation, last-layer) are thresholded directly.
Heads whose scores are probabilities over the enrolled words (memory, Meta Networks, SNAIL) say
*which* enrolled word a window is most like but not *whether* it is one, so they are combined with
the prototype head: a window counts for word w only if the head picks w (its highest probability)
and the prototype cosine to w passes w's threshold; the score compared with the threshold, and
reported, is that cosine. Voices are scored by cosine to each enrolled voice's prototype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_meta.device.heads import PrototypeHead

UNSCORED = -1.0  # the score of a window that was not scored (below the energy gate), or not picked by the head


@dataclass
class Vocabulary:
    """The enrolled words and voices the detector listens for, in a fixed order."""

    keys: list[tuple[str, str]]  # (label, user) per word
    thresholds: np.ndarray  # (W,) per-word threshold
    bound: np.ndarray  # (W,) index into `voices` of the voice a word is bound to, -1 when any voice may say it
    voices: list[str]  # user per enrolled voice
    voice_thresholds: np.ndarray  # (V,)

    @classmethod
    def empty(cls) -> "Vocabulary":
        return cls([], np.zeros(0, np.float32), np.zeros(0, np.int64), [], np.zeros(0, np.float32))


class Scorer:
    """Word and voice scores of a window's embeddings; called once per scored hop (voices only when asked)."""

    def __init__(self, vocabulary: Vocabulary, word_head, gate: PrototypeHead | None, voice_head: PrototypeHead,
                 speaker_output: str) -> None:
        self.vocabulary = vocabulary
        self.word_head, self.gate, self.voice_head = word_head, gate, voice_head
        self.speaker_output = speaker_output

    def score(self, emb: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(W,) word scores and (V,) voice scores of one window's embeddings ({output: (1, D)})."""
        return self.words(emb), self.voices(emb)

    def words(self, emb: dict[str, np.ndarray]) -> np.ndarray:
        word = emb["word"]
        if self.gate is None:
            return self.word_head.scores(word)[0]
        words = self.gate.scores(word)[0].copy()
        picked = int(np.argmax(self.word_head.scores(word)[0]))
        keep = words[picked]
        words[:] = UNSCORED
        words[picked] = keep
        return words

    def voices(self, emb: dict[str, np.ndarray]) -> np.ndarray:
        return self.voice_head.scores(emb[self.speaker_output])[0] if self.vocabulary.voices else np.zeros(0, np.float32)
