"""Cut one utterance out of a live stream: energy onset, hangover, pre-roll (for the enrollment prompts).

The level of each 20 ms frame is compared with a noise floor tracked since the prompt (it drops to
the quietest frame at once and creeps up slowly). Speech starts when two frames in a row are clearly
above the floor; the take ends after ``hangover_s`` of frames back near it. A little audio before
the onset is kept so soft first consonants survive. Nothing here looks at wall-clock time: all
durations are counted in samples, so a recorded stream behaves exactly like a microphone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_meta.audio import SAMPLE_RATE


@dataclass
class EndpointConfig:
    frame_s: float = 0.02
    onset_db: float = 12.0  # above the noise floor to start speech
    offset_db: float = 6.0  # within this of the floor counts as quiet again
    min_dbfs: float = -62.0  # onset needs at least this level (lower than the "too quiet" check, which then explains)
    hangover_s: float = 0.4
    pre_roll_s: float = 0.2
    max_s: float = 4.0  # speech still going after this: cut and report
    wait_s: float = 8.0  # no speech for this long: give up on this take


@dataclass(frozen=True)
class Captured:
    audio: np.ndarray
    outcome: str  # "take", "too_long", or "nothing" (no speech within wait_s)


class Endpointer:
    """Feed chunks; `feed` returns a `Captured` once the utterance (or the wait) is over, else None."""

    def __init__(self, config: EndpointConfig | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        self.cfg = config or EndpointConfig()
        self.frame = int(self.cfg.frame_s * sample_rate)
        self.sample_rate = sample_rate
        self.buffer = np.zeros(0, dtype=np.float32)  # samples not yet framed
        self.pre: list[np.ndarray] = []  # the last frames before an onset
        self.speech: list[np.ndarray] = []
        self.floor: float | None = None
        self.loud_run = 0
        self.quiet_run = 0
        self.frames_seen = 0
        self.level_db = -100.0  # the newest frame's level, for a meter

    def feed(self, chunk: np.ndarray) -> Captured | None:
        self.buffer = np.concatenate([self.buffer, np.asarray(chunk, dtype=np.float32)])
        while len(self.buffer) >= self.frame:
            frame, self.buffer = self.buffer[: self.frame], self.buffer[self.frame :]
            done = self._frame(frame)
            if done is not None:
                return done
        return None

    def _frame(self, frame: np.ndarray) -> Captured | None:
        c = self.cfg
        db = 10.0 * float(np.log10(np.mean(np.square(frame, dtype=np.float64)) + 1e-10))
        self.level_db = db
        self.frames_seen += 1
        if self.floor is None or db < self.floor:
            self.floor = db
        elif not self.speech:
            self.floor += 0.01 * (db - self.floor)
        per_s = 1.0 / c.frame_s
        if not self.speech:
            self.pre = (self.pre + [frame])[-max(1, int(c.pre_roll_s * per_s)) :]
            self.loud_run = self.loud_run + 1 if db > max(self.floor + c.onset_db, c.min_dbfs) else 0
            if self.loud_run >= 2:
                self.speech, self.pre = self.pre, []
            elif self.frames_seen >= c.wait_s * per_s:
                return Captured(np.zeros(0, np.float32), "nothing")
            return None
        self.speech.append(frame)
        self.quiet_run = self.quiet_run + 1 if db < self.floor + c.offset_db else 0
        if self.quiet_run >= c.hangover_s * per_s:
            return Captured(np.concatenate(self.speech), "take")
        if len(self.speech) >= c.max_s * per_s:
            return Captured(np.concatenate(self.speech), "too_long")
        return None
