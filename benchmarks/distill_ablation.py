"""What each part of the word encoder's training gives: episodic only / distillation only / both.

    nice .venv/bin/python benchmarks/distill_ablation.py [--config export/recipes/word_distil.toml]
        [--steps 300] [--episodes 1000] [--write]

Each variant trains the recipe's encoder from the same seed on the same data for the same number of
steps (the recipe's schedule squeezed into them), differing only in the loss: ProtoNet episodes alone
(`[episodes]`, no teacher), the speech_embedding teacher alone (`[episodes] weight = 0`), or both.
Then the fp32 encoder (torch, no export) is measured on the trainer's held-out validation speakers
and on FSDD's household and own-speaker protocols (edge_meta.bench.fewshot: same seeded episodes as
the bundle benchmark). The teacher itself (mean-pooled) is measured on the same FSDD episodes, as
the ceiling distillation aims at. FSDD never selects anything here: every variant is its last step.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edge_meta.audio import fix_length  # noqa: E402
from edge_meta.bench.fewshot import PROTOCOLS, FsddSet, run_protocols  # noqa: E402
from edge_meta.train.config import load_config  # noqa: E402
from edge_meta.train.teachers import SpeechEmbeddingTeacher  # noqa: E402
from edge_meta.train.trainer import Trainer  # noqa: E402
from results_md import write_section  # noqa: E402

VARIANTS = {
    "episodic only": {"episodes": 1.0, "teacher": ""},
    "distillation only": {"episodes": 0.0, "teacher": "speech_embedding"},
    "episodic + distillation": {"episodes": 1.0, "teacher": "speech_embedding"},
}


def fsdd_windows(data: FsddSet, n: int) -> np.ndarray:
    return np.stack([fix_length(c, n) for c in data.clips]).astype(np.float32)


def student_embeddings(trainer: Trainer, windows: np.ndarray) -> np.ndarray:
    encoder = trainer.learner.encoder.eval()
    with torch.no_grad():
        return np.concatenate([encoder.embed(trainer.frontend(torch.from_numpy(windows[i : i + 256]))).float().numpy()
                               for i in range(0, len(windows), 256)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="export/recipes/word_distil.toml")
    p.add_argument("--steps", type=int, default=300, help="training steps per variant")
    p.add_argument("--fsdd", default="../shared/data/fsdd")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args()

    base = load_config(args.config)
    data = FsddSet.load(args.fsdd)
    windows = fsdd_windows(data, base.frontend.window_samples)
    systems, validation = {}, {}
    for name, v in VARIANTS.items():
        cfg = copy.deepcopy(base)
        cfg.out = str(Path(args.out) / name.replace(" ", "_").replace("+", "and"))
        cfg.optim.steps = args.steps
        cfg.optim.warmup = min(cfg.optim.warmup, args.steps // 10)
        cfg.validation.every = args.steps  # validate once, at the end
        cfg.episodes.weight = v["episodes"]
        cfg.distill.word_teacher = v["teacher"]
        print(f"== {name}: {args.steps} steps", flush=True)
        trainer = Trainer(cfg, progress=True)
        trainer.run()
        validation[name] = trainer.validate()
        systems[name] = student_embeddings(trainer, windows)
    systems["teacher: speech_embedding, mean-pooled"] = SpeechEmbeddingTeacher().embed(windows)
    rows = run_protocols(systems, data, args.episodes, seed=0)

    heads = [f"{m} {k}-shot" for m, k in PROTOCOLS]
    val_keys = sorted({k for v in validation.values() for k in v})
    lines = [f"Word encoder `{base.encoder.name}` ({base.encoder.options}), {args.steps} steps each from seed "
             f"{base.seed}; FSDD fp32 (torch), % mean ± 95% CI over {args.episodes} episodes, seed 0; validation: "
             "the trainer's held-out speakers (%)",
             "| variant | " + " | ".join(heads) + " | " + " | ".join(val_keys) + " |",
             "|---" * (len(heads) + len(val_keys) + 1) + "|"]
    for name, row in rows.items():
        vals = [f"{100 * validation[name][k]:.1f}" if name in validation and k in validation[name] else "-"
                for k in val_keys]
        lines.append(f"| {name} | " + " | ".join(row[h].pct() for h in heads) + " | " + " | ".join(vals) + " |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = "nice .venv/bin/python " + " ".join(["benchmarks/distill_ablation.py", *sys.argv[1:]])
        write_section("distill-ablation", f"Measured {dt.date.today()} on {platform.machine()}, {os.cpu_count()} cores.\n"
                                          f"Command: `{cmd}`\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
