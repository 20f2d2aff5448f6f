"""Meta-train the command language model on synthetic users: one readable loop, config as plain data.

    .venv/bin/python -m edge_meta.train.command_train --config export/recipes/commands.toml

Each step draws fresh users, adapts to each one's 1/3/5 example phrases and minimises the loss on
their other phrases (plus the un-adapted loss). Every ``eval_every`` steps the query perplexity of
held-out users (own words from the evaluation pools) is measured; the best step is kept.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edge_meta.commands.grammar import Grammar, default_grammar
from edge_meta.commands.vocabulary import Vocabulary
from edge_meta.config_file import read_toml
from edge_meta.errors import ConfigError
from edge_meta.commands.users import held_out_users
from edge_meta.train.command_episodes import EpisodeStream, draw_episode, encode_episodes, make_episode
from edge_meta.train.command_lm import CommandLM

FORMAT = "edge-meta-command-lm/1"


@dataclass
class CommandTrainConfig:
    out: str = "runs/commands"
    seed: int = 0
    embed_dim: int = 32
    hidden: int = 64
    generator_hidden: int = 64
    placeholders: int = 8
    steps: int = 3000
    batch_users: int = 32
    shots: list[int] = field(default_factory=lambda: [1, 3, 5])
    queries: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_users: int = 200
    eval_queries: int = 10


def load_train_config(path: str | Path) -> CommandTrainConfig:
    data = read_toml(path, "export/recipes/commands.toml")
    known = {f.name for f in fields(CommandTrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}", f"known keys: {sorted(known)}")
    return CommandTrainConfig(**data)


class Validation:
    """Fixed held-out users with nested supports (the 1-shot examples are the first of the 5-shot ones)."""

    def __init__(self, grammar: Grammar, vocab: Vocabulary, cfg: CommandTrainConfig) -> None:
        self.vocab, self.shots = vocab, cfg.shots
        users = held_out_users(grammar, cfg.eval_users, cfg.seed + 7919)
        rng = np.random.default_rng(cfg.seed + 104729)
        full = [draw_episode(u, max(cfg.shots), cfg.eval_queries, vocab, rng, shuffle_placeholders=False)
                for u in users]
        self.batches = {}
        for k in cfg.shots:
            episodes = [make_episode(e.user, e.support[:k], e.query, vocab) for e in full]
            self.batches[k] = encode_episodes(episodes, vocab)

    @torch.no_grad()
    def __call__(self, model: CommandLM) -> dict[str, float]:
        model.eval()
        out = {}
        for k, (support, query) in self.batches.items():
            out[f"nll_adapted_{k}"] = float(model.query_nll(query, model.adapt(support)))
            out[f"nll_plain_{k}"] = float(model.query_nll(query, None))  # differs by k only through <unk>/placeholders
        model.train()
        return out


def build_model(cfg: CommandTrainConfig, vocab: Vocabulary) -> CommandLM:
    return CommandLM(len(vocab), cfg.embed_dim, cfg.hidden, cfg.generator_hidden)


def save_checkpoint(path: Path, cfg: CommandTrainConfig, model: CommandLM, vocab: Vocabulary, grammar: Grammar,
                    step: int, validation: dict[str, float]) -> None:
    tmp = path.with_suffix(".part")
    torch.save({"format": FORMAT, "config": asdict(cfg), "state": model.state_dict(), "vocabulary": vocab.to_dict(),
                "grammar": grammar.to_dict(), "step": step, "validation": validation}, tmp)
    tmp.replace(path)


def load_command_checkpoint(path: str | Path) -> tuple[CommandTrainConfig, CommandLM, Vocabulary, Grammar, dict]:
    """(config, model in eval mode, vocabulary, grammar, raw checkpoint) of a checkpoint written by training."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: command model checkpoint not found", "train one: .venv/bin/python -m "
                          "edge_meta.train.command_train --config export/recipes/commands.toml")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a command model checkpoint", "give best.pt written by command training")
    cfg = CommandTrainConfig(**state["config"])
    vocab, grammar = Vocabulary.from_dict(state["vocabulary"]), Grammar.from_dict(state["grammar"])
    model = build_model(cfg, vocab)
    model.load_state_dict(state["state"])
    model.eval()
    return cfg, model, vocab, grammar, state


@dataclass
class TrainResult:
    best: Path  # the checkpoint with the lowest mean adapted validation loss
    history: list[dict[str, float]]  # per validation: step, mean training losses since the last one, validation


def train_command_lm(cfg: CommandTrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Meta-train, validating every ``eval_every`` steps."""
    torch.manual_seed(cfg.seed)
    grammar = default_grammar()
    vocab = Vocabulary(grammar.known_words(), cfg.placeholders)
    model = build_model(cfg, vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup)) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / max(1, cfg.steps)))))
    stream = EpisodeStream(grammar, vocab, cfg.shots, cfg.queries, cfg.batch_users, cfg.seed)
    validate = Validation(grammar, vocab, cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    best, best_path, start = math.inf, out / "best.pt", time.perf_counter()
    history: list[dict[str, float]] = []
    recent: list[dict[str, float]] = []
    for step in range(1, cfg.steps + 1):
        support, query = stream.next()
        loss, parts = model.episode_loss(support, query)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        schedule.step()
        recent.append(parts)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            v = validate(model)
            train = {f"train_{k}": float(np.mean([r[k] for r in recent])) for k in recent[0]}
            history.append({"step": step, **train, **v})
            recent = []
            log(f"step {step}: train adapted {train['train_nll_adapted']:.3f} plain {train['train_nll_plain']:.3f} | "
                "held-out ppl " + " ".join(f"{k}-shot {math.exp(v[f'nll_plain_{k}']):.2f}->"
                                           f"{math.exp(v[f'nll_adapted_{k}']):.2f}" for k in cfg.shots)
                + f" | {time.perf_counter() - start:.0f} s")
            save_checkpoint(out / "last.pt", cfg, model, vocab, grammar, step, v)
            score = float(np.mean([v[f"nll_adapted_{k}"] for k in cfg.shots]))
            if score < best:
                best = score
                save_checkpoint(best_path, cfg, model, vocab, grammar, step, v)
    return TrainResult(best_path, history)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="export/recipes/commands.toml")
    p.add_argument("--out", help="run directory (overrides the config)")
    p.add_argument("--steps", type=int, help="training steps (overrides the config)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the box is shared)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_train_config(args.config)
    if args.out:
        cfg.out = args.out
    if args.steps:
        cfg.steps = args.steps
    print(f"best checkpoint: {train_command_lm(cfg).best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
