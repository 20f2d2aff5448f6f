"""EfficientWord-Net 1.0.5 worker: its bundled ResNet-50 ArcFace model on a 1.5 s window.

The clip is fitted to the window by the package's own `fixPaddingIssues` (strip zero padding, then
pad or crop at a random offset): `random` is seeded so reruns give the same embeddings. The ONNX
session is reopened on one thread (the package's own uses every core).
"""

from __future__ import annotations

import importlib.metadata
import os
import random

import numpy as np
import onnxruntime as ort
from eff_word_net.audio_processing import LIB_FOLDER_LOCATION, Resnet50_Arc_loss

from worker import serve

MODEL = "models/resnet_50_arc/slim_93%_accuracy_72.7390%.onnx"  # what Resnet50_Arc_loss loads


class EfficientWord:
    context_s = 0.0

    def __init__(self, options: dict[str, str]) -> None:
        random.seed(int(options.get("seed", "0")))
        self.model = Resnet50_Arc_loss()
        path = os.path.join(LIB_FOLDER_LOCATION, MODEL)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.model.onnx_sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.model_bytes = os.path.getsize(path)
        self.info = {"package": f"efficientword-net {importlib.metadata.version('efficientword-net')}",
                     "models": "resnet_50_arc (ONNX, fp32)", "window_s": self.model.window_length}

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        window = np.float32(self.model.fixPaddingIssues(x))
        return {"pooled": np.asarray(self.model.audioToVector(window)).reshape(-1)}


if __name__ == "__main__":
    serve(EfficientWord)
