"""Reading checkpoints written by the trainer (``torch.load(weights_only=True)``: no pickle code runs)."""

from __future__ import annotations

from pathlib import Path

import torch

from edge_meta.errors import ConfigError
from edge_meta.train.config import TrainConfig, config_from_dict
from edge_meta.train.encoders import build_encoder
from edge_meta.train.learners import Learner, build_learner

FORMAT = "edge-meta-checkpoint/1"


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[TrainConfig, Learner, dict]:
    """The config, the learner (in eval mode, weights loaded) and the raw checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found", "train one with `edge-meta train --config ...`")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise ConfigError(f"{path}: not a readable edge-meta checkpoint ({str(exc)[:160]})", "check the file") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an edge-meta checkpoint (format {state.get('format') if isinstance(state, dict) else '?'})",
                          "give a .pt file written by `edge-meta train`")
    cfg = config_from_dict(_tuples_to_lists(state["config"]))
    encoder = build_encoder(cfg.encoder.name, n_mels=cfg.frontend.n_mels, **cfg.encoder.options)
    learner = build_learner(cfg.learner.name, encoder, **cfg.learner.options)
    learner.load_state_dict(state["learner"])
    learner.eval()
    return cfg, learner, state


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (a reader, or a run killed mid-write, never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def _tuples_to_lists(d):
    if isinstance(d, dict):
        return {k: _tuples_to_lists(v) for k, v in d.items()}
    if isinstance(d, tuple):
        return list(d)
    return d
