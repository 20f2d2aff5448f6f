"""openWakeWord 0.6 worker: its bundled melspectrogram + Google speech_embedding ONNX models.

Gives both the per-frame embeddings (one 96-d frame per 80 ms, each over 0.775 s of audio; for
DTW) and their mean (for a prototype head), as DESIGN.md's peer rows did.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import numpy as np
from openwakeword.utils import AudioFeatures

from worker import serve


class OpenWakeWord:
    context_s = 0.5

    def __init__(self, options: dict[str, str]) -> None:
        self.features = AudioFeatures(inference_framework="onnx", ncpu=1)
        models = Path(AudioFeatures.__init__.__code__.co_filename).parent / "resources" / "models"
        self.model_bytes = sum(os.path.getsize(models / f) for f in ("melspectrogram.onnx", "embedding_model.onnx"))
        self.info = {"package": f"openwakeword {importlib.metadata.version('openwakeword')}",
                     "models": "melspectrogram.onnx + embedding_model.onnx (ONNX, fp32)"}

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        frames = np.atleast_2d(self.features._get_embeddings(pcm))  # squeezes a single frame to (96,)
        return {"frames": frames, "pooled": frames.mean(axis=0)}


if __name__ == "__main__":
    serve(OpenWakeWord)
