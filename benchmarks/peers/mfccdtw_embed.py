"""MFCC + DTW template baseline worker (main venv): the project's `mfcc_sequence` per clip.

Uses the default frontend spec, not the bundle's, so the baseline stays put when the bundle changes.
"""

from __future__ import annotations

import numpy as np

from edge_meta.bench.dtw import mfcc_sequence
from edge_meta.frontend import FrontendSpec
from worker import serve


class MfccDtw:
    context_s = 0.0
    model_bytes = 0
    info = {"package": "edge_meta.bench.dtw", "models": "none (13 MFCCs of the default 40-mel frontend)"}

    def __init__(self, options: dict[str, str]) -> None:
        self.spec = FrontendSpec()

    def embed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"frames": mfcc_sequence(x, self.spec)}


if __name__ == "__main__":
    serve(MfccDtw)
