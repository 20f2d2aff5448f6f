"""The main-venv half of a peer adapter: run a worker in its own venv and cache what it wrote.

A cached .npz is reused only for the very same clip list, worker code and model fingerprint
(for edge-meta the bundle id), so a rerun after a new bundle re-embeds edge-meta alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass(frozen=True)
class Worker:
    """How to run one embedding worker: which interpreter, which script, with which options."""

    name: str
    python: Path
    script: Path
    options: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""  # anything that changes the embeddings but not the code (e.g. a bundle id)

    def available(self) -> bool:
        return self.python.exists()

    def cache_key(self, files: list[str]) -> str:
        h = hashlib.sha256()
        for part in (*files, self.script.read_bytes(), (HERE / "worker.py").read_bytes(),
                     json.dumps(self.options, sort_keys=True), self.fingerprint):
            h.update(part if isinstance(part, bytes) else part.encode())
            h.update(b"\0")
        return h.hexdigest()[:16]


def peer_worker(peer: str) -> Worker:
    """The worker of a peer installed by install.sh into ``.venvs/<peer>``."""
    return Worker(peer, VENVS / peer / "bin" / "python", HERE / f"{peer}_embed.py")


@dataclass
class WorkerOutput:
    pooled: np.ndarray | None  # (N, D)
    frames: list[np.ndarray] | None  # N arrays (T_i, D)
    voice: np.ndarray | None  # (N, D), a separate speaker output
    latency_ms: float
    peak_rss_bytes: int
    model_bytes: int
    info: dict

    @classmethod
    def load(cls, path: Path) -> "WorkerOutput":
        z = np.load(path, allow_pickle=False)
        frames = None
        if "frames" in z.files:
            frames = np.split(z["frames"], np.cumsum(z["lengths"])[:-1])
        return cls(z["pooled"] if "pooled" in z.files else None, frames, z["voice"] if "voice" in z.files else None,
                   float(z["latency_ms"]), int(z["peak_rss_bytes"]), int(z["model_bytes"]), json.loads(str(z["info"])))


class WorkerError(RuntimeError):
    """A worker exited non-zero; the message carries the tail of its stderr."""


def run_worker(worker: Worker, files: list[str], cache_dir: Path, log=print) -> WorkerOutput:
    """Embeddings of ``files`` by ``worker``, from the cache when the same run was done before."""
    out = cache_dir / f"{worker.name}-{worker.cache_key(files)}.npz"
    if not out.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        log(f"embedding {len(files)} clips with {worker.name} ...")
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            listing = Path(tmp) / "files.txt"
            listing.write_text("\n".join(files) + "\n")
            partial = Path(tmp) / "out.npz"
            cmd = [str(worker.python), str(worker.script), "--files", str(listing), "--out", str(partial)]
            cmd += [arg for k, v in worker.options.items() for arg in ("--option", f"{k}={v}")]
            proc = subprocess.run(cmd, env={**os.environ, **THREAD_ENV}, capture_output=True, text=True)
            if proc.returncode != 0:
                raise WorkerError(f"{worker.name} worker failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
            partial.replace(out)
    return WorkerOutput.load(out)
