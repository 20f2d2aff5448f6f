"""`edge-meta bench --learners ...`, the torch-free half: a learner's exported bundle evaluated through its
*device* head on FSDD (few-shot own/household, open set, speaker EER, head size), and the table.
The training half is `edge_meta.train.learner_bench`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_meta.bench.fewshot import FsddSet, embed_clips
from edge_meta.bench.protocols import fewshot, open_set, speaker_eer
from edge_meta.bundle import Bundle
from edge_meta.device.backends import open_backend
from edge_meta.device.heads import HEADS
from edge_meta.frontend import LogMel
from edge_meta.metrics import Estimate

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
