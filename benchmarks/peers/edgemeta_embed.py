"""edge-meta worker (main venv): the bundle's numpy log-mel frontend + its int8 encoder, one thread.

Run as a subprocess like the peers so that its peak RSS and latency are measured the same way.
Options: ``bundle`` (directory or .tar), ``backend`` (onnx | tflite), ``precision`` (int8 | fp32).
"""

from __future__ import annotations

import numpy as np

from edge_meta import __version__
from edge_meta.device.takes import word_window
from edge_meta.bundle import Bundle
from edge_meta.device.backends import open_backend
from edge_meta.frontend import LogMel
from worker import serve


class EdgeMeta:
    context_s = 0.0

    def __init__(self, options: dict[str, str]) -> None:
        self.bundle = Bundle.open(options["bundle"])
        backend, precision = options.get("backend", "onnx"), options.get("precision", "int8")
        self.backend = open_backend(self.bundle, backend, precision, threads=1)
        self.logmel = LogMel(self.bundle.frontend)
        encoder = [path.name for path, _ in self.bundle.encoder_files(backend, precision)]
        self.model_bytes = sum(int(self.bundle.manifest["files"][name]["bytes"]) for name in encoder)
        self.info = {"package": f"edge-meta {__version__}",
                     "models": f"{' + '.join(encoder)} (bundle {self.bundle.bundle_id})"}

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        window = word_window(x, self.logmel.spec.window_samples)[None]
        out = self.backend.embed(self.logmel.batch(window), waveform=window)
        return {"pooled": out["word"][0], **({"voice": out["speaker"][0]} if "speaker" in out else {})}


if __name__ == "__main__":
    serve(EdgeMeta)
