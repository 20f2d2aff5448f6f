"""The worker half of a peer adapter: read clips, embed each one, time a window, write an .npz.

Each peer runs in its own virtual environment (they pin conflicting numpy/torch/onnxruntime), so
this module uses only the standard library, numpy, scipy and soundfile, never edge_meta.
A worker script defines an adapter and calls `serve`:

    python <peer>_embed.py --files LIST.txt --out OUT.npz [--option KEY=VALUE ...]

The .npz holds, for N clips in the order of LIST.txt: ``pooled`` (N, D) and/or ``frames``
(sum of T_i, D) with ``lengths`` (N,) for per-frame embeddings, ``voice`` (N, D) when the model
has a separate speaker output, and the cost figures ``latency_ms``, ``peak_rss_bytes``,
``model_bytes`` plus ``info`` (a JSON string: versions, window).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000
LATENCY_CLIPS = 30  # DESIGN.md: median over 30 one-second clips after warm-up
WARMUP = 5


class Adapter(Protocol):
    model_bytes: int
    info: dict
    context_s: float  # silence added either side of a corpus clip (not of the timed windows)

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Embeddings of one 16 kHz float32 clip: any of 'pooled' (D,), 'frames' (T, D), 'voice' (D,)."""
        ...


def read_clip(path: str | Path) -> np.ndarray:
    """Float32 mono at 16 kHz; other rates by polyphase resampling (8 kHz FSDD: resample_poly(x, 2, 1))."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = data.mean(axis=1)
    if sr != SAMPLE_RATE:
        g = math.gcd(sr, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, sr // g)
    return np.ascontiguousarray(x, dtype=np.float32)


def one_second(x: np.ndarray) -> np.ndarray:
    """The clip centred in (or cut to the middle of) exactly one second."""
    n = SAMPLE_RATE
    if len(x) >= n:
        start = (len(x) - n) // 2
        return x[start : start + n]
    left = (n - len(x)) // 2
    return np.pad(x, (left, n - len(x) - left))


def pad_silence(x: np.ndarray, seconds: float) -> np.ndarray:
    """The clip with ``seconds`` of digital silence either side: a model whose every frame needs
    ~0.8 s of audio (Google's speech_embedding) yields no frame at all for a short word otherwise."""
    n = int(seconds * SAMPLE_RATE)
    return np.pad(x, (n, n)) if n else x


def latency_ms(adapter: Adapter, clips: list[np.ndarray]) -> float:
    """Median wall time of one embedding of a one-second window, after warm-up."""
    windows = [one_second(c) for c in clips[:LATENCY_CLIPS]]
    for w in windows[:WARMUP]:
        adapter.embed(w)
    times = []
    for w in windows:
        t = time.perf_counter()
        adapter.embed(w)
        times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


def peak_rss_bytes() -> int:
    """This process's high-water resident set: /proc's VmHWM on Linux. Not ru_maxrss there: the kernel
    keeps that across fork + exec, so a worker would report its parent's peak when the parent is larger."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # no /proc: the BSDs' KiB


def collect(outputs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack per-clip outputs into the .npz arrays (frames concatenated, with their lengths)."""
    arrays: dict[str, np.ndarray] = {}
    for key in ("pooled", "voice"):
        if key in outputs[0]:
            arrays[key] = np.stack([o[key] for o in outputs]).astype(np.float32)
    if "frames" in outputs[0]:
        arrays["frames"] = np.concatenate([o["frames"] for o in outputs]).astype(np.float32)
        arrays["lengths"] = np.array([len(o["frames"]) for o in outputs], dtype=np.int64)
    return arrays


def serve(make_adapter: Callable[[dict[str, str]], Adapter]) -> None:
    """Parse the command line, embed the listed clips and write the .npz (the whole worker main)."""
    p = argparse.ArgumentParser()
    p.add_argument("--files", required=True, help="text file, one audio path per line")
    p.add_argument("--out", required=True)
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE passed to the adapter")
    args = p.parse_args()
    options = dict(o.split("=", 1) for o in args.option)
    paths = [line for line in Path(args.files).read_text().splitlines() if line]
    adapter = make_adapter(options)
    # Cost first: the peak RSS is the model's, not that of the corpus held in memory below.
    probe = [read_clip(p) for p in paths[:LATENCY_CLIPS]]
    cost = {"latency_ms": latency_ms(adapter, probe), "peak_rss_bytes": peak_rss_bytes()}
    outputs = [adapter.embed(pad_silence(read_clip(p), adapter.context_s)) for p in paths]
    info = {**adapter.info, "threads": os.environ.get("OMP_NUM_THREADS", "")}
    np.savez(args.out, **collect(outputs), **cost, model_bytes=adapter.model_bytes, info=json.dumps(info))
