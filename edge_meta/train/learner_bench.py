"""Every meta-learner on the same data and episodes (`edge-meta bench --learners ...`), the training half.

Meta-training eleven learners from scratch is a GPU job; on a CPU the comparison that fits is
this one: each learner starts from the same meta-trained encoder (``--init``, the default
checkpoint) and is meta-trained for the same number of episodes with the same episode shape; it is
then exported (int8 ONNX encoder + its own head) and evaluated through its device head
(`edge_meta.bench.learners`), with its training episodes/s.
"""

from __future__ import annotations

import copy
from pathlib import Path

from edge_meta.bench.fewshot import FsddSet
from edge_meta.bench.learners import LearnerRow, evaluate_bundle, table
from edge_meta.export.exporter import export_bundle
from edge_meta.train.config import LearnerConfig, load_config
from edge_meta.train.trainer import Trainer

# Outer learning rates for fine-tuning a meta-trained encoder; Reptile's update is a small fraction
# of its inner-loop displacement, so it needs a larger step to move at all.
OUTER_LR = {"reptile": 1e-2}
DEFAULT_LR = 1e-3


def bench_learners(names: list[str], config_path: str | Path, init: str | Path, steps: int, out_dir: str | Path,
                   fsdd: str | Path, calibration: str | Path, episodes: int = 1000, seed: int = 0,
                   progress: bool = True) -> dict[str, LearnerRow]:
    base = load_config(config_path)
    data = FsddSet.load(fsdd)
    rows: dict[str, LearnerRow] = {}
    for name in names:
        cfg = copy.deepcopy(base)
        cfg.learner = LearnerConfig(name)
        cfg.init, cfg.out, cfg.synth = str(init), str(Path(out_dir) / name), None
        cfg.episodes.n_way = min(cfg.episodes.n_way, 16)  # the model-based heads hold up to 16 words
        cfg.optim.steps, cfg.optim.lr, cfg.optim.warmup = steps, OUTER_LR.get(name, DEFAULT_LR), max(1, steps // 10)
        cfg.validation.every = steps
        trainer = Trainer(cfg, progress=progress)
        trainer.run()
        export_bundle(Path(cfg.out) / "last.pt", Path(cfg.out) / "bundle", calibration, formats=("onnx",),
                      progress=False)
        rows[name] = evaluate_bundle(Path(cfg.out) / "bundle", data, episodes, seed)
        rows[name].episodes_per_s = trainer.episodes_per_s
        if progress:
            print(table({name: rows[name]}, episodes))
    return rows
