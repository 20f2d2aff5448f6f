"""Several processes through PyTorch's own engine (torchrun + DistributedDataParallel), on CPU with gloo:
two processes train one model; rank 0 alone writes the log and the checkpoints."""

import os
import subprocess
import sys

import torch


def test_torchrun_two_processes_train_one_model(tmp_path, tiny_recipe):
    out = tmp_path / "run"
    config = tiny_recipe(out, steps=12, seed=3)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "edge_meta.cli", "train", "--config", str(config)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes (DistributedDataParallel)" in r.stdout + r.stderr
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["processes"] == 2 and state["step"] == 12
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 13  # header + one row per step, written by rank 0 only
