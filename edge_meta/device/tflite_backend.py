"""The encoder in a TFLite interpreter: `ai_edge_litert` (LiteRT), else the old `tflite_runtime`.

`tflite-runtime` 2.14 is a fallback only: it fails to import with numpy 2 (``_ARRAY_API not
found``), ran ~17x slower than ai-edge-litert on the development machine with numpy 1.26, and
cannot load models from newer converters. Install ``ai-edge-litert`` where it has wheels.
The int8 model takes int8 features and returns int8 embeddings; the tensors' own scales and zero
points convert them, so callers see float32 like every other backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edge_meta.bundle import REBUILD_HINT
from edge_meta.errors import BundleError


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise BundleError("no TFLite interpreter is installed",
                              "pip install ai-edge-litert (tflite-runtime works only as a slower fallback)") from None
    return Interpreter


def _quantise(x: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return x.astype(np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def _dequantise(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


class TfliteBackend:
    name = "tflite"
    separable = False  # one graph: every invoke computes every output

    def __init__(self, model_path: str | Path, threads: int = 1, outputs: list[str] | None = None,
                 read: Callable[[Path], bytes] | None = None) -> None:
        """``read``: how to get the model's bytes (a bundle's `Bundle.read`, which checks them); default: by path."""
        model = {"model_content": read(Path(model_path))} if read else {"model_path": str(model_path)}
        try:
            self.interpreter = _interpreter_class()(**model, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{model_path}: the TFLite interpreter cannot load it ({str(exc)[:200]})", REBUILD_HINT) from None
        self.input = self.interpreter.get_input_details()[0]
        details = self.interpreter.get_output_details()
        # TFLite names outputs by position (output_0, ...); the manifest gives their meaning in order
        self.outputs = outputs or [f"output_{i}" for i in range(len(details))]
        self.output_details = sorted(details, key=lambda d: d["name"])

    takes_waveform = False  # a TFLite encoder always takes log-mel features

    def embed(self, features: np.ndarray, outputs: list[str] | None = None,
              waveform: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One invoke per window (the converted graph has a fixed batch of 1); every output, whatever is asked.
        A TFLite encoder always takes log-mel features (``waveform`` is not used)."""
        rows: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for window in np.asarray(features, dtype=np.float32):
            self.interpreter.set_tensor(self.input["index"], _quantise(window[None], self.input))
            self.interpreter.invoke()
            for k, d in enumerate(self.output_details):
                rows[k].append(_dequantise(self.interpreter.get_tensor(d["index"]), d)[0])
        out = {}
        for name, r in zip(self.outputs, rows):
            e = np.stack(r)
            out[name] = (e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)).astype(np.float32)
        return out
