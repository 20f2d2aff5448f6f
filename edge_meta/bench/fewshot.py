"""The FSDD few-shot benchmark (DESIGN.md "Evaluation protocol", rows 1-2 and the cost row).

FSDD is never seen in training, so its ten digits are new words to the encoder. Episodes are
10-way over all digits, k support takes per digit and 5 queries per digit, seeded:
- own speaker: support and queries from one randomly drawn speaker, disjoint takes;
- household: support from speaker A, queries from a different speaker B.
Classification is cosine to the normalised mean of the support embeddings (the device's
prototype head). The MFCC+DTW template baseline runs on the very same episodes.

Noisy protocol (``snrs``): every clip padded to 2 s at a seeded offset, real evaluation-only noise
mixed in at each SNR over the speech's active frames (edge_meta.noise), on support and queries
alike; a "2 s clean" row on the same padded clips separates the noise from the padding.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_meta.audio import fix_length, read_audio
from edge_meta.bundle import Bundle
from edge_meta.corpora import read_corpus, read_fsdd
from edge_meta.device.backends import EncoderBackend, open_backend
from edge_meta.device.takes import word_window
from edge_meta.episodes import EpisodeSampler
from edge_meta.frontend import LogMel
from edge_meta.metrics import Estimate, episode_accuracy, fewshot_accuracy
from edge_meta.noise import load_noise_part, noisy_clips
from edge_meta.resources import default_bundle_path

PROTOCOLS = (("own", 1), ("own", 5), ("household", 1), ("household", 5))


@dataclass
class FsddSet:
    clips: list[np.ndarray]  # 16 kHz, as recorded (variable length)
    labels: np.ndarray
    speakers: np.ndarray

    @classmethod
    def load(cls, root: str | Path) -> "FsddSet":
        corpus = read_fsdd(root)
        names = sorted({i.speaker for i in corpus.items})
        words = sorted({i.word for i in corpus.items})
        clips = [read_audio(i.path, announce=False) for i in corpus.items]
        return cls(clips, np.array([words.index(i.word) for i in corpus.items]),
                   np.array([names.index(i.speaker) for i in corpus.items]))


NOISE_CORPORA = ("speech_commands_test", "arabic_speech_commands")


def eval_noise(data_root: str | Path) -> list[np.ndarray]:
    """The evaluation share of the real noise recordings of the corpora beside FSDD."""
    root = Path(data_root)
    paths = sorted(p for name in NOISE_CORPORA if (root / name).is_dir() for p in read_corpus(root / name).noise)
    return load_noise_part(paths, "eval")


def embed_clips(backend: EncoderBackend, logmel: LogMel, clips: list[np.ndarray], batch: int = 64,
                output: str = "word") -> np.ndarray:
    """Embeddings of clips, each in the model window the device gives a take (`word_window`: centred on the word)."""
    n = logmel.spec.window_samples
    out = []
    for i in range(0, len(clips), batch):
        windows = np.stack([word_window(c, n) for c in clips[i : i + batch]])
        out.append(backend.embed(logmel.batch(windows), [output], waveform=windows)[output])
    return np.concatenate(out)


def encoder_latency_ms(backend: EncoderBackend, features: np.ndarray, runs: int = 30,
                       waveform: np.ndarray | None = None, outputs: list[str] | None = None) -> float:
    """Median single-window time after warm-up (the backend should have 1 thread); ``waveform``: the windows the
    features came from, for a graph that takes samples; ``outputs``: only these (default: all)."""
    def one(i: int) -> None:
        backend.embed(features[i][None], outputs, waveform=None if waveform is None else waveform[i][None])

    for _ in range(5):
        one(0)
    times = []
    for i in range(runs):
        t = time.perf_counter()
        one(i % len(features))
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


@dataclass
class BenchResult:
    rows: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        heads = [f"{m} {k}-shot" for m, k in PROTOCOLS]
        lines = [f"FSDD 10-way few-shot accuracy, % (mean ± 95% CI over {self.meta.get('episodes')} episodes, "
                 f"seed {self.meta.get('seed')}, 5 queries per digit)",
                 "| system | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
        for name, row in self.rows.items():
            lines.append(f"| {name} | " + " | ".join(row[h].pct() if h in row else "-" for h in heads) + " |")
        if self.cost:
            lines += ["", "| cost | value |", "|---|---|"]
            lines += [f"| {k} | {v:,.3f} |" if isinstance(v, float) else f"| {k} | {v:,} |" for k, v in self.cost.items()]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"rows": {n: {h: vars(e) for h, e in r.items()} for n, r in self.rows.items()},
                "cost": self.cost, "meta": self.meta}


def run_protocols(score_rows: dict[str, object], data: FsddSet, episodes: int, seed: int) -> dict[str, dict[str, Estimate]]:
    """Accuracy of each system on the same seeded episodes. A system is embeddings (N, D) or a scorer factory."""
    rows: dict[str, dict[str, Estimate]] = {}
    for name, system in score_rows.items():
        row = {}
        for mode, k in PROTOCOLS:
            if isinstance(system, np.ndarray):
                est = fewshot_accuracy(system, data.labels, data.speakers, 10, k, 5, episodes, mode, seed)
            else:
                sampler = EpisodeSampler(data.labels, data.speakers, 10, k, 5, mode, seed)
                est = episode_accuracy(system, sampler, episodes)
            row[f"{mode} {k}-shot"] = est
        rows[name] = row
    return rows


def dtw_scorer(data: FsddSet, spec, cache_dir: Path | None):
    """Nearest-template scorer over a precomputed (and cached) MFCC+DTW distance matrix."""
    from edge_meta.bench.dtw import dtw_distance_matrix, mfcc_sequence

    cache = cache_dir / f"fsdd-dtw-{len(data.clips)}.npy" if cache_dir else None
    if cache and cache.exists():
        dist = np.load(cache, allow_pickle=False)
    else:
        seqs = [mfcc_sequence(c, spec) for c in data.clips]
        dist = dtw_distance_matrix(seqs, progress=True)
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, dist)

    def score(ep):
        d = dist[np.ix_(ep.query, ep.support)].reshape(len(ep.query), len(ep.classes), -1)
        return -d.min(axis=2)

    return score


def run_bench(bundle: str | Path | None, fsdd: str | Path, episodes: int = 1000, seed: int = 0,
              baseline: bool = True, out: str | Path | None = None, cache_dir: str | Path | None = "cache",
              precisions: tuple[str, ...] = ("fp32", "int8"), verbose: bool = True,
              snrs: tuple[float, ...] = ()) -> BenchResult:
    """The table for a bundle; with ``snrs``, also each system on 2 s padded clips, clean and at each SNR."""
    b = Bundle.open(bundle or default_bundle_path())
    try:
        data = FsddSet.load(fsdd)
        logmel = LogMel(b.frontend)
        result = BenchResult(meta={"bundle": b.bundle_id, "episodes": str(episodes), "seed": str(seed),
                                   "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.system()}"})
        systems: dict[str, object] = {}
        pool = eval_noise(Path(fsdd).parent) if snrs else []
        conditions = {f"2 s {snr:g} dB" if snr is not None else "2 s clean": noisy_clips(data.clips, pool, snr, seed)
                      for snr in ((None, *snrs) if snrs else ())}
        windows = np.stack([fix_length(c, logmel.spec.window_samples) for c in data.clips[:30]])
        probe = logmel.batch(windows)
        for entry in b.manifest["encoder"]["files"]:
            backend_name, precision = entry["backend"], entry["precision"]
            if precision not in precisions:
                continue
            backend = open_backend(b, backend_name, precision, threads=1)
            label = f"{backend_name.upper() if backend_name == 'onnx' else 'TFLite'} {precision}"
            systems[f"edge-meta {label}"] = embed_clips(backend, logmel, data.clips)
            for condition, clips in conditions.items():
                systems[f"edge-meta {label}, {condition}"] = embed_clips(backend, logmel, clips)
            result.cost[f"encoder ms/window, {label}, 1 thread"] = encoder_latency_ms(backend, probe, waveform=windows)
        if baseline:
            systems["MFCC + DTW templates"] = dtw_scorer(data, logmel.spec, Path(cache_dir) if cache_dir else None)
        result.rows = run_protocols(systems, data, episodes, seed)
        t = time.perf_counter()
        for _ in range(30):
            logmel(fix_length(data.clips[0], logmel.spec.window_samples))
        result.cost["frontend ms/window (numpy)"] = 1000 * (time.perf_counter() - t) / 30
        result.cost["bundle bytes"] = sum(e["bytes"] for e in b.manifest["files"].values())
        for entry in b.manifest["encoder"]["files"]:
            result.cost[f"{entry['file']} bytes"] = b.manifest["files"][entry["file"]]["bytes"]
        if verbose:
            print(result.table())
        if out:
            Path(out).write_text(json.dumps(result.to_json(), indent=2) + "\n")
        return result
    finally:
        b.close()
