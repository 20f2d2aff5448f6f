"""Interactive enrollment: prompt, tone, live level meter, end-pointing, and a retake when a take is bad.

"Say 'lights on' after the tone (2/5)": each take is cut from the audio source by the energy
end-pointer, then checked (too quiet, clipped, too short or too long, and, from the second take on,
unlike the takes so far by embedding) and either kept or asked for again with the reason and the fix.
Once all are in, the takes are calibrated as enrollment will: a take that sounds like background to
the others, or takes too unlike each other for the false-accept target, get the least alike take
asked for again (enrollment would refuse them).
The source is any `AudioSource`: the microphone, or a recording that holds the takes one after
another (the same prompts then run without a person, which is how the tests drive them).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, TextIO

import numpy as np

from edge_meta.device.endpoint import Captured, EndpointConfig, Endpointer
from edge_meta.device.quality import check_voice_take, loudest_frame_dbfs
from edge_meta.device.runtime import Runtime
from edge_meta.device.sources import AudioSource
from edge_meta.errors import AudioError

VOICE_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "I would like a cup of tea with some milk, please.",
    "Turn left at the second street after the bridge.",
    "My favourite season is autumn, when the leaves change colour.",
    "Please call me back tomorrow morning before nine.",
]
METER_WIDTH = 30
AFTER_TONE_S = 0.25  # audio discarded after the tone (the tone itself, picked up by the microphone)


class Prompter:
    """Records takes from ``source`` while talking to a person through ``out``."""

    def __init__(self, rt: Runtime, source: AudioSource, out: TextIO, tone: Callable[[], None] | None = None,
                 meter: bool | None = None, attempts: int = 4, endpoint: EndpointConfig | None = None) -> None:
        self.rt, self.out, self.tone = rt, out, tone
        self.meter = out.isatty() if meter is None else meter
        self.attempts = attempts
        self.endpoint = endpoint or EndpointConfig()
        self.sample_rate = source.sample_rate
        self.chunks: Iterator[np.ndarray] = iter(source.chunks())

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def word_takes(self, label: str, n: int, user: str = "", false_accept: float = 0.01) -> list[np.ndarray]:
        """``n`` good takes of ``label`` (for ``user``, at ``false_accept``); AudioError when the source ends or a
        take fails ``attempts`` times."""
        takes: list[np.ndarray] = []
        embeddings: list[np.ndarray] = []
        for i in range(n):
            x, emb = self._word_take(label, i, n, embeddings)
            takes.append(x)
            embeddings.append(emb)
        for _ in range(self.attempts):
            c = self.rt.calibrate_takes(label, user, np.stack(embeddings), false_accept)
            if not (c.odd or c.capped):
                break
            i = min(c.odd or range(n), key=lambda k: c.take_scores[k])
            self._retake(AudioError(f"take {i + 1}: is unlike the other takes (similarity {c.take_scores[i]:.2f})",
                                    f"say '{label}' again, the same way as the others"))
            takes[i], embeddings[i] = self._word_take(label, i, n, embeddings[:i] + embeddings[i + 1:])
        return takes

    def _word_take(self, label: str, i: int, n: int, others: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Take ``i`` and its embedding, asked for until it passes the checks and is not unlike ``others``."""
        for _ in range(self.attempts):
            x = self._capture(f"Say '{label}' after the tone ({i + 1}/{n})", max_s=self.rt.logmel.spec.window_s + 1.5)
            if x is None:
                continue
            try:
                self.rt.check_take(x, f"take {i + 1}")
            except AudioError as exc:
                self._retake(exc)
                continue
            emb = self.rt.embed([x])[0]
            if others:
                unlike, score = self.rt.unlike(emb, np.stack(others))
                if unlike:
                    self._retake(AudioError(f"take {i + 1}: is unlike the other takes (similarity {score:.2f})",
                                            f"say '{label}' the same way as before"))
                    continue
            self.say(f"  ok: {len(x) / self.sample_rate:.2f} s, loudest {loudest_frame_dbfs(x):.0f} dBFS")
            return x, emb
        raise AudioError(f"take {i + 1} of {label!r} failed {self.attempts} times",
                         "record in a quieter place, closer to the microphone, or enroll from files with --from")

    def voice_takes(self, user: str, n: int) -> list[np.ndarray]:
        """``n`` good voice takes (a sentence each) from ``user``."""
        takes: list[np.ndarray] = []
        for i in range(n):
            line = VOICE_LINES[i % len(VOICE_LINES)]
            for _ in range(self.attempts):
                x = self._capture(f"{user}, read this aloud after the tone ({i + 1}/{n}):\n  \"{line}\"", max_s=15.0)
                if x is None:
                    continue
                try:
                    check_voice_take(x, f"take {i + 1}")
                except AudioError as exc:
                    self._retake(exc)
                    continue
                takes.append(x)
                self.say(f"  ok: {len(x) / self.sample_rate:.1f} s")
                break
            else:
                raise AudioError(f"voice take {i + 1} of {user} failed {self.attempts} times",
                                 "record in a quieter place, closer to the microphone, or enroll from files with --from")
        return takes

    def _retake(self, problem: AudioError) -> None:
        """Say what was wrong with the take (its message without the "take N: is" prefix) and what to do."""
        what = problem.message.split(": ", 1)[-1].removeprefix("is ")
        self.say(f"  retake: {what} - {problem.hint}")

    def _capture(self, prompt: str, max_s: float) -> np.ndarray | None:
        """Prompt, tone, then the next utterance from the source; None (after saying why) when there was none."""
        self.say(prompt)
        if self.tone is not None:
            self.tone()
            self._discard(AFTER_TONE_S)
        ep = Endpointer(replace(self.endpoint, max_s=max_s), self.sample_rate)
        got: Captured | None = None
        for chunk in self.chunks:
            got = ep.feed(chunk)
            if self.meter and len(chunk):
                self._draw_meter(ep.level_db)
            if got is not None:
                break
        if self.meter:
            self.out.write("\r" + " " * (METER_WIDTH + 20) + "\r")
        if got is None:
            raise AudioError("the audio input ended before all takes were recorded",
                             "record more takes, or ask for fewer with --takes")
        if got.outcome == "nothing":
            self.say(f"  retake: heard nothing for {self.endpoint.wait_s:.0f} s - speak closer to the microphone")
            return None
        if got.outcome == "too_long":
            self.say(f"  retake: still hearing sound after {max_s:.1f} s - say only the prompt, in a quiet place")
            return None
        return got.audio

    def _draw_meter(self, db: float) -> None:
        filled = int(round(np.clip((db + 70.0) / 70.0, 0.0, 1.0) * METER_WIDTH))
        self.out.write(f"\r  level [{'#' * filled}{'-' * (METER_WIDTH - filled)}] {max(db, -99):4.0f} dBFS")
        self.out.flush()

    def _discard(self, seconds: float) -> None:
        left = int(seconds * self.sample_rate)
        while left > 0:
            chunk = next(self.chunks, None)
            if chunk is None:
                return
            left -= len(chunk)
