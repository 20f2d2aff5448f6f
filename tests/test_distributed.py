"""Several processes through PyTorch's own engine (torchrun + DistributedDataParallel), on CPU with gloo:
two processes train one model; rank 0 alone writes the log and the checkpoints."""

import os
import subprocess
import sys

import torch


def test_torchrun_two_processes_train_one_model(tmp_path, gsc_dir):
    out = tmp_path / "run"
    config = tmp_path / "tiny.toml"
    config.write_text(f"""
out = "{out}"
cache_dir = "{tmp_path / 'cache'}"
seed = 3
[[corpora]]
path = "{gsc_dir}"
exclude_eval_words = true
[encoder]
name = "dscnn"
channels = 16
embed_dim = 32
[episodes]
n_way = 5
k_shot = 2
q_query = 3
real_ratio = 1.0
[optim]
steps = 12
lr = 0.005
warmup = 2
[validation]
every = 12
episodes = 10
n_way = 5
shots = [1]
""")
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
