"""Resemblyzer 0.1.4 worker: its bundled GE2E speaker encoder (256-d utterance embeddings).

`preprocess_wav` normalises the level and trims long silences with WebRTC VAD, as the package
does before every embedding. Torch is held to one thread.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import torch
from resemblyzer import VoiceEncoder, preprocess_wav

from worker import SAMPLE_RATE, serve


class Resemblyzer:
    context_s = 0.0

    def __init__(self, options: dict[str, str]) -> None:
        torch.set_num_threads(1)
        self.encoder = VoiceEncoder("cpu", verbose=False)
        weights = Path(VoiceEncoder.__init__.__code__.co_filename).parent / "pretrained.pt"
        self.model_bytes = weights.stat().st_size
        self.info = {"package": f"resemblyzer {importlib.metadata.version('resemblyzer')}, torch {torch.__version__}",
                     "models": "pretrained.pt (GE2E LSTM, fp32)"}

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        wav = preprocess_wav(x, source_sr=SAMPLE_RATE)
        if len(wav) == 0:  # VAD found no speech: embed the clip as it is
            wav = x
        return {"pooled": self.encoder.embed_utterance(wav)}


if __name__ == "__main__":
    serve(Resemblyzer)
