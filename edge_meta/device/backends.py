"""Encoder backends: run the bundle's encoder on log-mel features, nothing else.

Every backend takes features (B, 1, n_mels, n_frames) float32 and returns unit-length embeddings
per output name ("word", and "speaker" when the bundle has a speaker projection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edge_meta.bundle import REBUILD_HINT, Bundle
from edge_meta.errors import BundleError


class EncoderBackend(Protocol):
    name: str
    outputs: list[str]

    def embed(self, features: np.ndarray) -> dict[str, np.ndarray]: ...


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)).astype(np.float32)


def onnx_session(model_path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads (1 keeps a Pi responsive); a model
    onnxruntime cannot load is a damaged bundle."""
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
        return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        raise BundleError(f"{model_path}: onnxruntime cannot load it ({str(exc)[:200]})", REBUILD_HINT) from None


class OnnxBackend:
    """The encoder in onnxruntime on the CPU."""

    name = "onnx"

    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        self.session = onnx_session(model_path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def embed(self, features: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self.outputs, {self.input_name: np.ascontiguousarray(features, dtype=np.float32)})
        return {name: _unit(v) for name, v in zip(self.outputs, values)}


BACKENDS = ("onnx", "tflite")


def open_backend(bundle: Bundle, backend: str = "onnx", precision: str = "int8", threads: int = 1) -> EncoderBackend:
    """The bundle's encoder in onnxruntime or a TFLite interpreter (imported only when asked for)."""
    if backend not in BACKENDS:
        raise BundleError(f"unknown backend {backend!r}", f"choose one of {list(BACKENDS)}")
    path = bundle.encoder_file(backend, precision)
    outputs = bundle.manifest["encoder"].get("outputs", ["word"])
    if backend == "tflite":
        from edge_meta.device.tflite_backend import TfliteBackend

        tfl = TfliteBackend(path, threads, outputs=outputs)
        _check_encoder(path, bundle, tfl.input["shape"], outputs, tfl.outputs, len(tfl.output_details))
        return tfl
    onnx = OnnxBackend(path, threads=threads)
    _check_encoder(path, bundle, onnx.session.get_inputs()[0].shape, outputs, onnx.outputs, len(onnx.outputs))
    return onnx


def _check_encoder(path: Path, bundle: Bundle, shape, wanted: list[str], outputs: list[str], n_outputs: int) -> None:
    """Refuse an encoder that cannot take this bundle's features or lacks an output the manifest promises: found
    at open, not at the first window."""
    spec = bundle.frontend
    dims = [int(d) if isinstance(d, (int, np.integer)) else None for d in shape]  # None: a symbolic (batch) axis
    if len(dims) != 4 or any(d is not None and d != w for d, w in zip(dims[1:], (1, spec.n_mels, spec.n_frames))):
        raise BundleError(f"{path}: the encoder takes input {list(shape)}, but the frontend makes "
                          f"(batch, 1, {spec.n_mels}, {spec.n_frames})", REBUILD_HINT)
    if not set(wanted) <= set(outputs) or len(outputs) != n_outputs:
        raise BundleError(f"{path}: the encoder's outputs {outputs} do not match the manifest's {wanted}", REBUILD_HINT)
