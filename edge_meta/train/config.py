"""Training configuration as plain data: a TOML file maps onto these dataclasses, nothing more.

Relative paths in a config are taken from the directory you run ``edge-meta train`` in (the
project root for the shipped recipes, which name ``../shared/data/...``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_meta.config_file import read_toml
from edge_meta.errors import ConfigError
from edge_meta.frontend import FrontendSpec
from edge_meta.train.augment import AugmentConfig
from edge_meta.train.data import CorpusSpec
from edge_meta.train.distill import DistillConfig
from edge_meta.train.speaker import SpeakerConfig


@dataclass
class EncoderConfig:
    name: str = "dscnn"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LearnerConfig:
    name: str = "protonet"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpisodeConfig:
    n_way: int = 32
    k_shot: int = 5
    q_query: int = 5
    mode: str = "any"
    real_ratio: float = 0.5  # share of episodes drawn from real (not synthetic) corpora
    weight: float = 1.0  # share of the episodic loss in each step's total; 0 = distillation only


@dataclass
class OptimConfig:
    steps: int = 3000
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    grad_clip: float = 5.0


@dataclass
class ValidationConfig:
    every: int = 250
    episodes: int = 300
    n_way: int = 10
    shots: list[int] = field(default_factory=lambda: [1, 3])
    q_query: int = 5
    # share of the real words held out of training altogether (seeded): validated as *new* words (any speakers), what the
    # device is used for (FSDD's digits are new words); best.pt is then chosen on them alone
    new_words: float = 0.0


@dataclass
class SynthConfig:
    """Make (or top up) a synthetic-speech corpus before training."""

    vocabulary: str = ""
    out: str = ""
    voices_per_word: int = 16
    takes: int = 1


@dataclass
class TrainConfig:
    out: str = "runs/default"
    seed: int = 0
    device: str = "auto"
    # "fp32", "bf16" (mixed precision: convolutions in bf16, losses in fp32), or "auto": bf16 on a CUDA
    # GPU that supports it, fp32 on CPU (a CPU without native bf16 would emulate it slowly)
    precision: str = "auto"
    cache_dir: str = "cache"
    init: str = ""  # a checkpoint whose encoder weights start this run (learner parameters start fresh)
    corpora: list[CorpusSpec] = field(default_factory=list)
    synth: SynthConfig | None = None
    frontend: FrontendSpec = field(default_factory=FrontendSpec)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict:
        """The config in the shape of its TOML file, so `config_from_dict` reads it back."""
        d = asdict(self)
        for key in ("encoder", "learner"):
            d[key] = {"name": d[key]["name"], **d[key]["options"]}
        if d["synth"] is None:
            del d["synth"]
        return d


_NESTED = {
    "frontend": FrontendSpec, "encoder": EncoderConfig, "learner": LearnerConfig, "episodes": EpisodeConfig,
    "optim": OptimConfig, "augment": AugmentConfig, "validation": ValidationConfig, "synth": SynthConfig,
    "speaker": SpeakerConfig, "distill": DistillConfig,
}


def _build(cls: type, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"[{where}] has unknown keys {unknown}", f"known keys: {sorted(names)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from None


def config_from_dict(data: dict) -> TrainConfig:
    data = dict(data)
    kwargs: dict[str, Any] = {}
    for key, cls in _NESTED.items():
        section = data.pop(key, None)
        if section is not None:
            section = dict(section)
            if cls in (EncoderConfig, LearnerConfig):  # name + free-form options for the chosen class
                section = {"name": section.pop("name", cls().name), "options": section}
            if cls is AugmentConfig:
                section = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
            kwargs[key] = _build(cls, section, key)
    if "corpora" in data:
        kwargs["corpora"] = [_build(CorpusSpec, c, "corpora") for c in data.pop("corpora")]
    top = {f.name for f in fields(TrainConfig)} - set(_NESTED) - {"corpora"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ConfigError(f"unknown top-level keys {unknown}", f"known: {sorted(top | set(_NESTED) | {'corpora'})}")
    kwargs.update(data)
    return TrainConfig(**kwargs)


def load_config(path: str | Path) -> TrainConfig:
    return config_from_dict(read_toml(path, "export/recipes/default.toml"))
