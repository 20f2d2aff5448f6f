"""Encoder backends: run the bundle's encoder on log-mel features (or the window's samples), nothing else.

Every backend takes features (B, 1, n_mels, n_frames) float32 and returns unit-length embeddings
per output name ("word", and "speaker" when the bundle has a speaker projection). A backend whose
outputs come from separate graphs (`separable`) computes only the outputs asked for: the detector
runs the word graph on every hop and the speaker graph only when a word may fire.

A graph whose manifest entry says ``"input": "waveform"`` (the trunk flavour's word graph: a pretrained trunk
that makes its own frontend) takes the window's samples (B, window_samples) instead, so callers pass both; one
that says ``"waveform+features"`` (the trunk and the tiny word graph fused) takes both, in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from edge_meta.bundle import REBUILD_HINT, Bundle
from edge_meta.errors import BundleError, ConfigError


class EncoderBackend(Protocol):
    name: str
    outputs: list[str]
    separable: bool  # True: asking for fewer outputs costs less
    takes_waveform: bool  # True: some graph needs the window's samples (pass waveform=)

    def embed(self, features: np.ndarray, outputs: list[str] | None = None,
              waveform: np.ndarray | None = None) -> dict[str, np.ndarray]: ...


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)).astype(np.float32)


Graph = Path | bytes  # an ONNX graph file, or its bytes as `Bundle.read` checked them


def onnx_session(model: str | Graph, threads: int = 1, name: str | None = None):
    """An onnxruntime CPU session with ``threads`` intra-op threads (1 keeps a Pi responsive) of a model file or its
    bytes (``name`` for messages); a model onnxruntime cannot load is a damaged bundle."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BundleError("onnxruntime is not installed", "pip install 'edge-meta[device]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        source = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        label = name or (f"an ONNX graph of {len(model)} bytes" if isinstance(model, bytes) else model)
        raise BundleError(f"{label}: onnxruntime cannot load it ({str(exc)[:200]})", REBUILD_HINT) from None


class OnnxBackend:
    """The encoder in onnxruntime on the CPU: one session per graph file of the bundle."""

    name = "onnx"

    def __init__(self, paths: list[Path] | str | Path, threads: int = 1,
                 read: Callable[[Path], bytes] | None = None, inputs: list[str] | None = None) -> None:
        """``read``: how to get a graph's bytes (a bundle's `Bundle.read`, which checks them); default: by path.
        ``inputs``: what each graph takes, "features" (the default) or "waveform"."""
        paths = [paths] if isinstance(paths, (str, Path)) else paths
        self.sessions = []  # (session, its output names, what it takes)
        for path, kind in zip(paths, inputs or ["features"] * len(paths)):
            session = onnx_session(read(path) if read else path, threads, str(path))
            self.sessions.append((session, [o.name for o in session.get_outputs()], kind))
        self.outputs = [o for _, names, _ in self.sessions for o in names]
        self.separable = len(self.sessions) > 1
        self.takes_waveform = any(kind != "features" for _, _, kind in self.sessions)

    def embed(self, features: np.ndarray, outputs: list[str] | None = None,
              waveform: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = {}
        for session, names, kind in self.sessions:
            if outputs is None or not set(names).isdisjoint(outputs):
                xs = [features if k == "features" else waveform for k in kind.split("+")]
                if any(x is None for x in xs):
                    raise ValueError(f"the graph computing {names} takes the window's samples: pass waveform=")
                feed = {i.name: np.ascontiguousarray(x, dtype=np.float32) for i, x in zip(session.get_inputs(), xs)}
                out.update(zip(names, map(_unit, session.run(names, feed))))
        return out


BACKENDS = ("onnx", "tflite")
MAX_THREADS = 64  # more encoder threads than any board has cores (2**63 reached onnxruntime as it was)


def open_backend(bundle: Bundle, backend: str = "onnx", precision: str = "int8", threads: int = 1) -> EncoderBackend:
    """The bundle's encoder in onnxruntime or a TFLite interpreter (imported only when asked for)."""
    if backend not in BACKENDS:
        raise BundleError(f"unknown backend {backend!r}", f"choose one of {list(BACKENDS)}")
    if not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"{threads} encoder threads is out of range (1-{MAX_THREADS})",
                          "1 keeps a Pi responsive; at most its number of cores")
    parts = bundle.encoder_files(backend, precision)
    inputs = bundle.encoder_inputs(backend, precision)
    outputs = bundle.manifest["encoder"].get("outputs", ["word"])
    if backend == "tflite":
        from edge_meta.device.tflite_backend import TfliteBackend

        if len(parts) != 1 or inputs != ["features"]:
            raise BundleError(f"{bundle.root}: a TFLite encoder must be one graph file on log-mel features", REBUILD_HINT)
        tfl = TfliteBackend(parts[0][0], threads, outputs=outputs, read=bundle.read)
        _check_encoder(parts[0][0], bundle, tfl.input["shape"], outputs, tfl.outputs, len(tfl.output_details))
        return tfl
    onnx = OnnxBackend([path for path, _ in parts], threads=threads, read=bundle.read, inputs=inputs)  # bytes verified
    for (path, wanted), (session, names, kind) in zip(parts, onnx.sessions):
        shapes = [i.shape for i in session.get_inputs()]
        if len(shapes) != len(kind.split("+")):
            raise BundleError(f"{path}: the encoder has {len(shapes)} inputs, but the manifest says it takes {kind}",
                              REBUILD_HINT)
        for given, shape in zip(kind.split("+"), shapes):
            _check_encoder(path, bundle, shape, wanted, names, len(names), given)
    return onnx


def _check_encoder(path: Path, bundle: Bundle, shape, wanted: list[str], outputs: list[str], n_outputs: int,
                   kind: str = "features") -> None:
    """Refuse an encoder that cannot take this bundle's features (or windows) or lacks an output the manifest
    promises: found at open, not at the first window."""
    spec = bundle.frontend
    dims = [int(d) if isinstance(d, (int, np.integer)) else None for d in shape]  # None: a symbolic axis
    expected = (spec.window_samples,) if kind == "waveform" else (1, spec.n_mels, spec.n_frames)
    if len(dims) != 1 + len(expected) or any(d is not None and d != w for d, w in zip(dims[1:], expected)):
        raise BundleError(f"{path}: the encoder takes input {list(shape)}, but the device gives it "
                          f"(batch, {', '.join(map(str, expected))})", REBUILD_HINT)
    if not set(wanted) <= set(outputs) or len(outputs) != n_outputs:
        raise BundleError(f"{path}: the encoder's outputs {outputs} do not match the manifest's {wanted}", REBUILD_HINT)
