"""`edge-meta bench --learners ...`: every meta-learner on the same data and episodes, one table.

Meta-training eleven learners from scratch is a GPU job; on a CPU the comparison that fits is
this one: each learner starts from the same meta-trained encoder (``--init``, the default
checkpoint) and is meta-trained for the same number of episodes with the same episode shape; it is
then exported (int8 ONNX encoder + its own head) and evaluated through its *device* head on FSDD:
few-shot own/household, open set, speaker EER; plus training episodes/s and the head's size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from edge_meta.bench.fewshot import FsddSet, embed_clips
from edge_meta.bench.protocols import fewshot, open_set, speaker_eer
from edge_meta.bundle import Bundle
from edge_meta.device.backends import open_backend
from edge_meta.device.heads import HEADS
from edge_meta.frontend import LogMel
from edge_meta.metrics import Estimate

# Outer learning rates for fine-tuning a meta-trained encoder; Reptile's update is a small fraction
# of its inner-loop displacement, so it needs a larger step to move at all.
OUTER_LR = {"reptile": 1e-2}
DEFAULT_LR = 1e-3


@dataclass
class LearnerRow:
    fewshot: dict[str, Estimate] = field(default_factory=dict)
    open_set: dict[str, float] = field(default_factory=dict)
    eer: dict[str, float] = field(default_factory=dict)
    episodes_per_s: float = 0.0
    head_bytes: int = 0


def head_factory(bundle: Bundle):
    """A fresh device head of the bundle's kind, as the runtime builds it."""
    spec = bundle.manifest["heads"]["word"]
    arrays = {k.removeprefix("word."): v for k, v in bundle.load_heads().items() if k.startswith("word.")}
    graphs = {n: bundle.path_of(p) for n, p in spec.get("graphs", {}).items()}
    return lambda: HEADS[spec["kind"]].from_bundle(arrays, graphs)


def evaluate_bundle(bundle_dir: Path, data: FsddSet, episodes: int, seed: int) -> LearnerRow:
    b = Bundle.open(bundle_dir)
    try:
        logmel = LogMel(b.frontend)
        backend = open_backend(b, "onnx", "int8")
        word = embed_clips(backend, logmel, data.clips)
        voice = embed_clips(backend, logmel, data.clips, output="speaker") if "speaker" in backend.outputs else word
        make = head_factory(b)
        row = LearnerRow()
        for mode in ("own", "household"):
            for k in (1, 5):
                row.fewshot[f"{mode} {k}-shot"] = fewshot(make, word, data.labels, data.speakers, k, mode, episodes, seed)
        row.open_set = open_set(make, word, data.labels, data.speakers, episodes, seed)
        row.eer = speaker_eer(voice, data.labels, data.speakers, seed)
        graphs = b.manifest["heads"]["word"].get("graphs", {}).values()
        row.head_bytes = b.manifest["files"]["heads.npz"]["bytes"] + sum(b.manifest["files"][g]["bytes"] for g in graphs)
        return row
    finally:
        b.close()


def bench_learners(names: list[str], config_path: str | Path, init: str | Path, steps: int, out_dir: str | Path,
                   fsdd: str | Path, calibration: str | Path, episodes: int = 1000, seed: int = 0,
                   progress: bool = True) -> dict[str, LearnerRow]:
    import torch

    from edge_meta.export.exporter import export_bundle
    from edge_meta.train.config import LearnerConfig, load_config
    from edge_meta.train.trainer import Trainer

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
        torch.manual_seed(seed)
        trainer = Trainer(cfg, progress=progress)
        trainer.run()
        export_bundle(Path(cfg.out) / "last.pt", Path(cfg.out) / "bundle", calibration, formats=("onnx",),
                      progress=False)
        rows[name] = evaluate_bundle(Path(cfg.out) / "bundle", data, episodes, seed)
        rows[name].episodes_per_s = trainer.episodes_per_s
        if progress:
            print(table({name: rows[name]}, episodes))
    return rows


def table(rows: dict[str, LearnerRow], episodes: int) -> str:
    if not rows:
        return ""
    few = list(next(iter(rows.values())).fewshot)
    opens = list(next(iter(rows.values())).open_set)
    heads = few + [f"open set {k}" for k in opens] + ["EER any word", "EER same word", "train ep/s", "head bytes"]
    lines = [f"FSDD, int8 ONNX encoder + each learner's device head; %, mean ± 95% CI over {episodes} episodes",
             "| learner | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for name, r in rows.items():
        cells = [r.fewshot[h].pct() for h in few]
        cells += [f"{r.open_set[k]:.3f}" if k == "auroc" else f"{100 * r.open_set[k]:.1f}" for k in opens]
        cells += [f"{100 * r.eer['eer any word']:.1f}", f"{100 * r.eer['eer same word']:.1f}",
                  f"{r.episodes_per_s:.2f}", f"{r.head_bytes:,}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
