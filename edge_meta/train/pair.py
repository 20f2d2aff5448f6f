"""Join a word checkpoint and a speaker checkpoint into one two-encoder checkpoint (`EncoderPair`).

    edge-meta pair runs/default/best.pt runs/default_voice/last.pt --out runs/default_pair/best.pt

The word encoder (trunk + word projection) and its learner come from the first checkpoint, the
speaker encoder (trunk + speaker projection) from the second; the result exports like any checkpoint.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edge_meta.bundle import sha256_file
from edge_meta.errors import ConfigError
from edge_meta.train.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from edge_meta.train.encoders import DSCNN, build_encoder
from edge_meta.train.learners import build_learner


def _dscnn_options(cfg, path: Path, need: str) -> dict:
    if cfg.encoder.name != "dscnn":
        raise ConfigError(f"{path}: a pair is made of two dscnn encoders, not {cfg.encoder.name!r}",
                          "give checkpoints trained with [encoder] name = \"dscnn\"")
    options = {k: v for k, v in cfg.encoder.options.items() if k != "projections"}
    if need not in cfg.encoder.options.get("projections", ["word"]):
        raise ConfigError(f"{path}: this checkpoint has no {need!r} projection",
                          "the speaker checkpoint comes from a recipe with projections = [\"word\", \"speaker\"]")
    return options


def _part_state(encoder: DSCNN, keep: str) -> dict[str, torch.Tensor]:
    """The encoder's weights without the projections the pair does not take from it."""
    return {k: v for k, v in encoder.state_dict().items()
            if not k.startswith("projections.") or k.startswith(f"projections.{keep}.")}


def pair_checkpoints(word: str | Path, speaker: str | Path, out: str | Path) -> Path:
    word_cfg, word_learner, word_state = load_checkpoint(word)
    speaker_cfg, speaker_learner, speaker_state = load_checkpoint(speaker)
    if word_cfg.frontend != speaker_cfg.frontend:
        raise ConfigError(f"{word} and {speaker} use different frontends", "train both with the same [frontend]")
    cfg = copy.deepcopy(word_cfg)
    cfg.encoder.name = "pair"
    cfg.encoder.options = {"word": _dscnn_options(word_cfg, Path(word), "word"),
                           "speaker": _dscnn_options(speaker_cfg, Path(speaker), "speaker")}
    encoder = build_encoder("pair", n_mels=cfg.frontend.n_mels, **cfg.encoder.options)
    encoder.parts["word"].load_state_dict(_part_state(word_learner.encoder, "word"))
    encoder.parts["speaker"].load_state_dict(_part_state(speaker_learner.encoder, "speaker"))
    learner = build_learner(cfg.learner.name, encoder, **cfg.learner.options)
    rest = {k: v for k, v in word_learner.state_dict().items() if not k.startswith("encoder.")}
    learner.load_state_dict({**rest, **{f"encoder.{k}": v for k, v in encoder.state_dict().items()}})
    state = {"format": FORMAT, "config": cfg.to_dict(), "learner": learner.state_dict(), "speaker_objective": {},
             "step": word_state["step"], "validation": {**word_state.get("validation", {}),
                                                          **{k: v for k, v in speaker_state.get("validation", {}).items()
                                                             if "speaker" in k}},
             "classes": word_state.get("classes"), "corpora": sorted({*word_state.get("corpora", []),
                                                                      *speaker_state.get("corpora", [])}),
             "whitened": {name: fitted for name, part in (("word", word_state), ("speaker", speaker_state))
                          if (fitted := part.get("whitened", {}).get(name))},
             "pair": {"word": {"file": str(word), "sha256": sha256_file(Path(word)), "step": word_state["step"]},
                      "speaker": {"file": str(speaker), "sha256": sha256_file(Path(speaker)),
                                  "step": speaker_state["step"]}}}
    return save_checkpoint(state, out)
