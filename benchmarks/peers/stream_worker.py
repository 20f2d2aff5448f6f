"""The worker half of a peer's streaming run: read a stream and the enrollment takes, let the peer
score every step, write the scores to an .npz for benchmarks/peers_stream.py to sweep thresholds on.

Runs in the peer's venv (standard library, numpy and the peer only, never edge_meta):

    python <peer>_stream.py --stream STREAM.npy --takes TAKES.npz --out OUT.npz [--option KEY=VALUE ...]

STREAM.npy is float32 mono 16 kHz; TAKES.npz holds one array per take named ``<keyword>_<take>``.
Each worker writes its own score arrays plus ``latency_ms`` (median wall time of one step, one
thread, after warm-up) and ``info`` (a JSON string: package version, settings).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

SAMPLE_RATE = 16_000
LATENCY_STEPS, WARMUP = 30, 5


def read_takes(path: Path) -> dict[str, list[np.ndarray]]:
    """Takes per keyword, in take order."""
    z = np.load(path, allow_pickle=False)
    names = sorted(z.files, key=lambda n: (n.rsplit("_", 1)[0], int(n.rsplit("_", 1)[1])))
    takes: dict[str, list[np.ndarray]] = {}
    for name in names:
        takes.setdefault(name.rsplit("_", 1)[0], []).append(z[name].astype(np.float32))
    return takes


def median_ms(step: Callable[[int], object], steps: list[int]) -> float:
    """Median wall time of ``step(i)`` over ``steps`` after the first few as warm-up."""
    for i in steps[:WARMUP]:
        step(i)
    times = []
    for i in steps[:LATENCY_STEPS]:
        t = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


def busy_steps(audio: np.ndarray, step_samples: int, n_steps: int) -> list[int]:
    """Steps whose newest slide is among the loudest: timing on speech, not on the pauses."""
    energy = [float(np.mean(audio[i * step_samples : (i + 1) * step_samples] ** 2)) for i in range(n_steps)]
    return sorted(np.argsort(energy)[::-1][: LATENCY_STEPS].tolist())


def serve(score: Callable[[np.ndarray, dict[str, list[np.ndarray]], dict[str, str]], dict]) -> None:
    """The whole worker main: ``score(audio, takes, options)`` returns the arrays (and info dict) to save."""
    p = argparse.ArgumentParser()
    p.add_argument("--stream", required=True, help=".npy, float32 mono 16 kHz")
    p.add_argument("--takes", required=True, help=".npz, one array per take named <keyword>_<take>")
    p.add_argument("--out", required=True)
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE for the peer")
    args = p.parse_args()
    audio = np.load(args.stream, allow_pickle=False).astype(np.float32)
    result = score(audio, read_takes(Path(args.takes)), dict(o.split("=", 1) for o in args.option))
    info = result.pop("info")
    np.savez(args.out, **result, info=json.dumps(info))
