"""Fold a within-class whitening into a trained encoder's projection (`edge-meta whiten`).

An encoder trained on a few thousand words still lets who spoke move a word's embedding (and what was said move a
voice's). Fitted on the training corpora's real clips, the within-class whitening of edge_meta.train.trunk_head
(words for the word projection, speakers for the speaker one) shrinks the directions in which one class's clips
vary and keeps those in which classes differ, as the trunk flavour's head does for its trunk. It is fitted on the
projection's raw output (the graph's output: the device takes the unit length), so it folds exactly into the
projection's linear layer: the exported graphs keep their size and speed, and everything computed from them at
export (background bank, thresholds, hold margin) follows. Measured on FSDD in benchmarks/RESULTS.md.

    edge-meta whiten runs/word/best.pt --recipe export/recipes/word_whiten.toml --out runs/word/whitened.pt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_meta.errors import ConfigError
from edge_meta.train.checkpoint import load_checkpoint, save_checkpoint
from edge_meta.train.config import load_config
from edge_meta.train.data import ClipBank, build_bank
from edge_meta.train.frontend_torch import LogMelTorch
from edge_meta.train.trunk_head import TrunkHead, within_word_whitening

RESUME_ONLY = ("optimizer", "rng", "speaker_objective", "distill_objective", "best_val")


def _owner(encoder: nn.Module, projection: str) -> nn.Module:
    """The encoder (or the part of an `EncoderPair`) whose trunk feeds ``projection``."""
    parts = getattr(encoder, "parts", None)
    return parts[projection] if parts is not None else encoder


def raw_outputs(encoder: nn.Module, frontend: LogMelTorch, bank: ClipBank, index: np.ndarray, projection: str,
                batch: int = 256) -> np.ndarray:
    """(N, D) outputs of ``projection`` before unit length (what the exported graph outputs), no augmentation."""
    part = _owner(encoder, projection)
    part.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(index), batch):
            x = torch.from_numpy(bank.waveforms(index[i:i + batch]))
            out.append(part.projections[projection](part.trunk(frontend(x))).float().numpy())
    return np.concatenate(out)


def fold(projection: nn.Linear, head: TrunkHead) -> None:
    """Make ``projection`` output ``(z - head.mean) @ head.matrix`` for its old output ``z``."""
    m = torch.from_numpy(head.matrix.astype(np.float64))
    with torch.no_grad():
        weight, bias = projection.weight.double(), projection.bias.double()
        projection.weight.copy_((m.T @ weight).float())
        projection.bias.copy_(((bias - torch.from_numpy(head.mean.astype(np.float64))) @ m).float())


def whiten_checkpoint(checkpoint: str | Path, recipe: str | Path, out: str | Path, projection: str = "word",
                      clips: int = 12000, shrink: float = 1.0, seed: int = 0,
                      progress: bool = True) -> tuple[TrunkHead, dict]:
    """Write ``out``: ``checkpoint`` with ``projection`` whitened within its classes on ``clips`` real training clips
    of ``recipe``'s corpora (never a validation speaker's). Returns the whitening and what it was fitted on (kept
    in the checkpoint, and in the manifest of a bundle exported from it).
    The result is for export and pairing; its optimizer state is dropped, so training cannot resume from it."""
    if projection not in ("word", "speaker"):
        raise ConfigError(f"unknown projection {projection!r}", "choose word (classes: words) or speaker (classes: voices)")
    if not shrink > 0:
        raise ConfigError(f"shrink {shrink} must be > 0", "1.0 (the default) keeps directions few classes span in check")
    cfg, learner, state = load_checkpoint(checkpoint)
    if projection not in learner.encoder.projections:
        raise ConfigError(f"{checkpoint}: the encoder has no {projection!r} projection",
                          f"choose one of {sorted(learner.encoder.projections)}")
    fit_cfg = load_config(recipe)
    if fit_cfg.frontend != cfg.frontend:
        raise ConfigError(f"{recipe}: its [frontend] differs from the checkpoint's",
                          "fit on a recipe with the frontend the encoder was trained with")
    bank = build_bank(fit_cfg.corpora, cfg.frontend.window_samples, Path(fit_cfg.cache_dir), progress)
    pool = np.flatnonzero(~bank.validation & ~bank.synthetic[bank.labels])
    pick = np.sort(np.random.default_rng(seed).choice(pool, min(clips, len(pool)), replace=False))
    classes = (bank.labels if projection == "word" else bank.speakers)[pick]
    raw = raw_outputs(learner.encoder, LogMelTorch(cfg.frontend), bank, pick, projection)
    head = within_word_whitening(raw, classes, shrink, unit_inputs=False)
    fold(learner.encoder.projections[projection], head)
    fitted = {"kind": "within-class whitening", "projection": projection, "recipe": str(recipe),
              "corpora": [c.path for c in fit_cfg.corpora], "clips": int(len(pick)),
              "classes": int(len(np.unique(classes))), "shrink": shrink, "seed": seed}
    kept = {k: v for k, v in state.items() if k not in RESUME_ONLY}
    kept["learner"] = learner.state_dict()
    kept["whitened"] = {**state.get("whitened", {}), projection: fitted}
    save_checkpoint(kept, out)
    return head, fitted
