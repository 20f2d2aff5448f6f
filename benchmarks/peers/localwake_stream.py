"""local-wake 0.1.2 streaming worker: the DTW distances its `lwake.listen` loop would compute.

The references are the takes as `lwake record` leaves them (padded to its MIN_SAMPLES; FSDD takes
are already trimmed, so its VAD trim is skipped), written as WAVs and loaded by its own
`load_support_set`, in file-name order (listen uses os.listdir's order, which is arbitrary).
Features and distance are its `extract_embedding_features` and `dtw_cosine_normalized_distance`;
buffer and slide default to its CLI's 2.0 s and 0.25 s.

listen zeroes its buffer after a detection, so what a step sees depends on the threshold. For a
grid of thresholds (ascending) the loop is replayed (`stream_rules.localwake_replay`), computing
each (step, slides in buffer) state once; the sweep stops above ``max_per_min`` detections per
minute of stream (far past any useful operating point). Every state any replayed threshold needs
is saved, so the main process can replay those thresholds exactly.

Options: buffer_s, slide_s, thresholds=LO:HI:STEP, max_per_min.
"""

from __future__ import annotations

import importlib.metadata
import math
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from lwake.features import dtw_cosine_normalized_distance, extract_embedding_features
from lwake.listen import load_support_set
from lwake.record import MIN_SAMPLES, pad_audio

from stream_rules import localwake_replay
from stream_worker import SAMPLE_RATE, busy_steps, median_ms, serve


def support_set(takes: dict[str, list[np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """(file name, features) per take, through local-wake's own loader."""
    with tempfile.TemporaryDirectory() as tmp:
        for word, clips in takes.items():
            for i, clip in enumerate(clips):
                sf.write(Path(tmp) / f"{word}_{i}.wav", pad_audio(clip[:, None], MIN_SAMPLES), SAMPLE_RATE,
                         subtype="FLOAT")
        return sorted(load_support_set(tmp), key=lambda item: item[0])


def score(audio: np.ndarray, takes: dict[str, list[np.ndarray]], options: dict[str, str]) -> dict:
    buffer_s, slide_s = float(options.get("buffer_s", 2.0)), float(options.get("slide_s", 0.25))
    lo, hi, step = (float(v) for v in options.get("thresholds", "0:0.4:0.0025").split(":"))
    max_per_min = float(options.get("max_per_min", 20))
    support = support_set(takes)
    labels = [name.rsplit("_", 1)[0] for name, _ in support]
    buffer_n, slide_n = int(buffer_s * SAMPLE_RATE), int(slide_s * SAMPLE_RATE)
    full, n_steps = math.ceil(buffer_n / slide_n), len(audio) // slide_n

    def distances(step: int, fill: int) -> np.ndarray:
        end = (step + 1) * slide_n
        real = min(fill * slide_n, buffer_n)
        buffer = np.zeros(buffer_n, dtype=np.float32)
        buffer[buffer_n - real :] = audio[end - real : end]
        features = extract_embedding_features(y=buffer, sample_rate=SAMPLE_RATE)
        return np.array([dtw_cosine_normalized_distance(features, ref) for _, ref in support])

    latency = median_ms(lambda s: distances(s, full), [s for s in busy_steps(audio, slide_n, n_steps) if s >= full])
    memo: dict[tuple[int, int], np.ndarray] = {}

    def lookup(step: int, fill: int) -> np.ndarray:
        if (step, fill) not in memo:
            memo[step, fill] = distances(step, fill)
        return memo[step, fill]

    swept = []
    for threshold in np.round(np.arange(lo, hi + step / 2, step), 6):
        n = len(localwake_replay(lookup, n_steps, full, float(threshold), labels, slide_s))
        swept.append(threshold)
        if n > max_per_min * len(audio) / SAMPLE_RATE / 60:
            break
    keys = sorted(memo)
    return {"step": np.array([k[0] for k in keys]), "fill": np.array([k[1] for k in keys]),
            "dist": np.stack([memo[k] for k in keys]), "thresholds": np.array(swept), "labels": np.array(labels),
            "n_steps": n_steps, "full": full, "slide_s": slide_s, "latency_ms": latency,
            "info": {"package": f"local-wake {importlib.metadata.version('local-wake')}", "buffer_s": buffer_s,
                     "slide_s": slide_s, "references": [name for name, _ in support], "states": len(keys),
                     "step_work": f"speech_embedding on the {buffer_s:g} s buffer + DTW to {len(support)} references"}}


if __name__ == "__main__":
    serve(score)
