"""The meta-training loop: episodes in, a checkpoint out. One readable loop, no framework.

Per step: draw an episode (from real or synthetic corpora, at the configured ratio), augment its
waveforms, compute log-mel features with the torch twin of the device frontend, and let the
learner turn it into a loss; with teachers configured, add the distillation loss on a batch of
augmented clips (edge_meta.train.distill). Every ``validation.every`` steps the encoder embeds the
clips of held-out speakers and few-shot accuracy on fixed episodes is printed and logged; the best
checkpoint by validation accuracy is kept.

A run survives interruptions: ``max_minutes`` stops it cleanly with ``last.pt`` written, and
``resume`` continues it exactly (weights, optimizer, the step the schedule is at, every sampler's
and augmenter's random state, torch's RNG), so a long run can be a series of short pieces.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge_meta.episodes import EpisodeSampler
from edge_meta.errors import ConfigError, DataError
from edge_meta.bench.protocols import speaker_eer
from edge_meta.metrics import fewshot_accuracy, unit
from edge_meta.train.augment import Augmenter
from edge_meta.train.config import TrainConfig
from edge_meta.train.data import ClipBank, build_bank, load_noise
from edge_meta.train.checkpoint import save_checkpoint
from edge_meta.train.distill import DistillObjective, centred
from edge_meta.train.distributed import Distributed
from edge_meta.train.encoders import build_encoder, count_parameters
from edge_meta.train.frontend_torch import LogMelTorch
from edge_meta.train.learners import Learner, build_learner
from edge_meta.train.learners.base import EpisodeResult
from edge_meta.train.speaker import SpeakerObjective
from edge_meta.train.teachers import TEACHERS, build_teacher, teacher_targets
from edge_meta.train.trunk_head import within_word_whitening
from edge_meta.train.windows import sentence_windows


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available", "use device = 'auto' or 'cpu'")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}", "use 'auto', 'fp32' or 'bf16'")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def encoder_state(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The encoder's weights from a trainer checkpoint (projections it lacks stay freshly initialised)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["learner"]
    return {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only: decaying biases, norms and the learners'
    log-space scalars (temperatures, step sizes) would pull them toward arbitrary values."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@dataclass
class SubsetSampler:
    """An EpisodeSampler over a subset of the bank, returning bank indices."""

    index: np.ndarray
    sampler: EpisodeSampler

    @classmethod
    def over(cls, bank: ClipBank, mask: np.ndarray, n_way: int, k: int, q: int, mode: str, seed: int,
             classes: str = "word") -> "SubsetSampler | None":
        """Episodes whose classes are words, or (``classes="speaker"``) speakers."""
        index = np.flatnonzero(mask)
        if index.size == 0:
            return None
        labels = bank.labels if classes == "word" else bank.speakers
        try:
            return cls(index, EpisodeSampler(labels[index], bank.speakers[index], n_way, k, q, mode, seed))
        except ValueError as exc:
            raise DataError(f"cannot draw training episodes: {exc}", "lower n_way/k_shot/q_query or add data") from None

    def sample(self):
        ep = self.sampler.sample()
        return ep, self.index[ep.support], self.index[ep.query]


def embed_all(encoder: torch.nn.Module, frontend: LogMelTorch, bank: ClipBank, device: torch.device,
              batch: int = 256, projection: str = "word") -> np.ndarray:
    """Unit-length embeddings (N, D) of every clip of ``bank``, no augmentation."""
    encoder.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(bank.clips), batch):
            x = torch.from_numpy(bank.waveforms(np.arange(i, min(i + batch, len(bank.clips))))).to(device)
            out.append(encoder.embed(frontend(x), projection).float().cpu().numpy())
    encoder.train()
    return np.concatenate(out) if out else np.zeros((0, encoder.embed_dim), np.float32)


def new_words(bank: ClipBank, share: float, seed: int) -> np.ndarray:
    """Class ids of a seeded ``share`` of the bank's real words said by at least two speakers (so a support from
    one speaker and queries from another exist): held out of training to validate as new words."""
    if share <= 0:
        return np.zeros(0, dtype=np.int64)
    words_of_pairs = np.unique(np.stack([bank.labels, bank.speakers]), axis=1)[0]  # one per (word, speaker)
    speakers = np.bincount(words_of_pairs, minlength=len(bank.class_names))
    eligible = np.flatnonzero(~bank.synthetic & (speakers >= 2))
    picked = np.random.default_rng(seed + 7).permutation(eligible)[: int(round(share * len(eligible)))]
    return np.sort(picked)


def keep_log_until(path: Path, step: int) -> None:
    """Drop the log's rows after ``step``: a run killed between checkpoints logged steps its resume repeats."""
    rows = path.read_text().splitlines(keepends=True)
    kept = rows[:1] + [r for r in rows[1:] if r.split(",", 1)[0].isdigit() and int(r.split(",", 1)[0]) <= step]
    if len(kept) < len(rows):
        path.write_text("".join(kept))


def tensorboard_writer(folder: Path):
    """TensorBoard event files beside log.csv when tensorboard is installed (`tensorboard --logdir runs/`)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


class EpisodeObjective(torch.nn.Module):
    """One training step's loss as a module's forward, so DistributedDataParallel can wrap it: the
    weighted learner's episode loss, speaker-episode loss and distillation loss."""

    def __init__(self, learner: Learner, speaker: SpeakerObjective | None, distill: DistillObjective | None,
                 config: TrainConfig) -> None:
        super().__init__()
        self.learner, self.speaker, self.distill, self.cfg = learner, speaker, distill, config

    def forward(self, word: tuple[torch.Tensor, ...] | None, voice: tuple[torch.Tensor, ...] | None,
                taught: tuple[torch.Tensor, dict[str, torch.Tensor]] | None):
        if word is None:  # distillation (and speaker episodes) only: no word episode to pay for
            result = EpisodeResult(torch.zeros((), device=next(self.parameters()).device), float("nan"))
        else:
            result = self.learner.episode_loss(*word, self.cfg.episodes.n_way)
        loss = self.cfg.episodes.weight * result.loss
        if self.speaker is not None and voice is not None:
            loss = loss + self.cfg.speaker.weight * self.speaker.episode_loss(
                self.learner.encoder, *voice, self.cfg.speaker.n_way).loss
        if self.distill is not None and taught is not None:
            loss = loss + self.cfg.distill.weight * self.distill.loss(self.learner.encoder, *taught)
        return loss, result.accuracy


class Trainer:
    def __init__(self, config: TrainConfig, progress: bool = True) -> None:
        self.cfg = config
        self.dist = Distributed.from_env()
        self.progress = progress and self.dist.main
        self.out = Path(config.out)
        self.device = self.dist.device(pick_device(config.device))
        torch.manual_seed(config.seed)
        self.frontend = LogMelTorch(config.frontend).to(self.device)
        encoder = build_encoder(config.encoder.name, n_mels=config.frontend.n_mels, **config.encoder.options)
        if config.init:
            encoder.load_state_dict(encoder_state(config.init), strict=False)
        encoder.autocast_dtype = torch.bfloat16 if resolve_precision(config.precision, self.device) == "bf16" else None
        self.learner: Learner = build_learner(config.learner.name, encoder, **config.learner.options).to(self.device)
        self.speaker = SpeakerObjective().to(self.device) if config.speaker.weight > 0 else None
        if self.speaker and "speaker" not in encoder.projections:
            raise ConfigError("the speaker objective needs a 'speaker' projection",
                              'add projections = ["word", "speaker"] to [encoder]')
        teachers = config.distill.teachers
        unknown = sorted(set(teachers.values()) - set(TEACHERS))
        if unknown:
            raise ConfigError(f"[distill] names unknown teachers {unknown}", f"choose from {sorted(TEACHERS)}")
        missing = sorted(set(teachers) - set(encoder.projections))
        if missing:
            raise ConfigError(f"[distill] teaches projections the encoder lacks: {missing}",
                              f"add them to [encoder] projections (it has {sorted(encoder.projections)})")
        if config.episodes.weight <= 0 and not teachers and config.speaker.weight <= 0:
            raise ConfigError("[episodes] weight = 0 leaves nothing to train",
                              "give [distill] a teacher, [speaker] a weight, or [episodes] a weight > 0")
        self.distill = DistillObjective(encoder.embed_dim, {p: TEACHERS[t].dim for p, t in teachers.items()},
                                        config.distill.relational).to(self.device) if teachers else None
        parts = [self.learner] + [m for m in (self.speaker, self.distill) if m is not None]
        self.trainable = torch.nn.ModuleList(parts)
        self.trainable.to(memory_format=torch.channels_last)  # ~1.6x faster convolutions on CPU (oneDNN), same maths
        self.optimizer = torch.optim.AdamW(param_groups(self.trainable, config.optim.weight_decay), lr=config.optim.lr)
        self.objective = self.dist.wrap(EpisodeObjective(self.learner, self.speaker, self.distill, config))
        self.step = 0
        self.best_val = -1.0
        self.episodes_per_s = 0.0
        self.stopped_early = False
        self.clock = time.monotonic  # what `max_minutes` is measured on
        self._resume_rng: dict | None = None

    # -- data ---------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        cfg = self.cfg
        if not self.dist.main:
            self.dist.barrier()  # rank 0 reads the corpora and writes the caches first
        if cfg.synth and cfg.synth.vocabulary:
            from edge_meta.train.synth import build_cache

            build_cache(cfg.synth.vocabulary, cfg.synth.out, cfg.synth.voices_per_word, cfg.synth.takes,
                        seed=cfg.seed, progress=self.progress)
        self.bank = build_bank(cfg.corpora, cfg.frontend.window_samples, Path(cfg.cache_dir), self.progress)
        if self.dist.main:
            self.dist.barrier()
        seed = cfg.seed + 1000 * self.dist.rank  # every process draws its own episodes
        e = cfg.episodes
        synthetic_clip = self.bank.synthetic[self.bank.labels]
        held_out = new_words(self.bank, cfg.validation.new_words, cfg.seed)
        new_word_clip = np.isin(self.bank.labels, held_out)
        train = ~self.bank.validation & ~new_word_clip
        self.real = SubsetSampler.over(self.bank, train & ~synthetic_clip, e.n_way, e.k_shot, e.q_query, e.mode, seed)
        self.synth = SubsetSampler.over(self.bank, train & synthetic_clip, e.n_way, e.k_shot, e.q_query, "any", seed + 1)
        if self.real is None and self.synth is None:
            raise DataError("no training clips left after the validation split", "add corpora")
        if self.speaker:
            sp = cfg.speaker
            self.real_voices = SubsetSampler.over(self.bank, train & ~synthetic_clip, sp.n_way, sp.k_shot, sp.q_query,
                                                  "any", seed + 3, classes="speaker")
            self.synth_voices = SubsetSampler.over(self.bank, train & synthetic_clip, sp.n_way, sp.k_shot, sp.q_query,
                                                   "any", seed + 4, classes="speaker")
        self.val = self.bank.subset(self.bank.validation & ~new_word_clip)
        self.val_new = self.bank.subset(new_word_clip)
        self.augmenter = Augmenter(cfg.augment, load_noise(cfg.corpora), cfg.frontend.sample_rate, seed)
        self.rng = np.random.default_rng(seed + 2)
        self.distill_rng = np.random.default_rng(seed + 5)
        self.train_index = np.flatnonzero(train)
        self.windows = np.zeros((0, cfg.frontend.window_samples), np.int16)
        if self.distill and cfg.distill.sentences:
            self.windows, self.windows_key = sentence_windows(
                cfg.distill.sentences, cfg.frontend.window_samples, int(cfg.distill.hop_s * cfg.frontend.sample_rate),
                {self.bank.class_names[c].split(":", 1)[1] for c in held_out}, Path(cfg.cache_dir), self.progress)
        self.targets = self._teacher_targets() if self.distill else {}
        if self._resume_rng is not None:
            self._set_rng_state(self._resume_rng)

    def _teacher_targets(self) -> dict[str, torch.Tensor]:
        """Centred teacher targets of the distillation pool (training clips, then sentence windows), per taught
        projection, whitened within class first with ``[distill] whiten`` (fitted on the training clips); the raw
        targets are cached per bank (or set of windows) and teacher."""
        out = {}
        cache_dir = Path(self.cfg.cache_dir)
        for projection, name in self.cfg.distill.teachers.items():
            teacher = build_teacher(name)
            clips = teacher_targets(teacher, self.bank.clips,
                                    cache_dir / f"teacher-{name}-{self.bank.key}.npy" if self.bank.key else None,
                                    progress=self.progress)[self.train_index]
            raw = clips
            if len(self.windows):
                raw = np.concatenate([raw, teacher_targets(teacher, self.windows,
                                                           cache_dir / f"teacher-{name}-windows-{self.windows_key}.npy",
                                                           progress=self.progress)])
            if self.cfg.distill.whiten:  # fitted on the labelled clips, applied to the whole pool
                classes = (self.bank.labels if projection == "word" else self.bank.speakers)[self.train_index]
                raw = within_word_whitening(clips, classes)(unit(raw))
            out[projection] = torch.from_numpy(centred(raw)).to(self.device)
        return out

    def _next_episode(self):
        use_real = self.synth is None or (self.real is not None and self.rng.random() < self.cfg.episodes.real_ratio)
        return (self.real if use_real else self.synth).sample()

    # -- loop ----------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        o = self.cfg.optim
        if step < o.warmup:
            return o.lr * (step + 1) / o.warmup
        progress = (step - o.warmup) / max(1, o.steps - o.warmup)
        return o.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def _features(self, waveforms: np.ndarray) -> torch.Tensor:
        """Augmented features (B, 1, n_mels, n_frames) of float waveforms (B, window), on the device."""
        x = torch.from_numpy(waveforms).to(self.device)
        with torch.no_grad():
            lm = self.augmenter.log_mel(self.frontend.log_mel_frames(self.augmenter.waveforms(x)))
            feats = self.augmenter.features(self.frontend.normalise(lm).transpose(-1, -2).unsqueeze(1))
        return feats.contiguous(memory_format=torch.channels_last)

    def _episode_tensors(self, drawn) -> tuple[torch.Tensor, ...]:
        """Augmented features of an episode's support and query, and their labels, on the device."""
        ep, s_idx, q_idx = drawn
        feats = self._features(self.bank.waveforms(np.concatenate([s_idx, q_idx])))
        ns = len(s_idx)
        sy = torch.from_numpy(ep.support_y).to(self.device)
        qy = torch.from_numpy(ep.query_y).to(self.device)
        return feats[:ns], sy, feats[ns:], qy

    def _next_voice_episode(self):
        use_real = self.synth_voices is None or (
            self.real_voices is not None and self.rng.random() < self.cfg.speaker.real_ratio)
        return (self.real_voices if use_real else self.synth_voices).sample()

    def _distill_batch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Augmented clips drawn uniformly from the pool (training clips, then sentence windows), and their
        teachers' (clean) targets."""
        n = len(self.train_index)
        pick = np.sort(self.distill_rng.choice(n + len(self.windows), self.cfg.distill.batch, replace=False))
        clips, windows = pick[pick < n], pick[pick >= n] - n
        wave = np.concatenate([self.bank.waveforms(self.train_index[clips]),
                               self.windows[windows].astype(np.float32) / 32768.0])
        return self._features(wave), {p: t[pick] for p, t in self.targets.items()}

    def train_step(self) -> tuple[float, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        word = self._episode_tensors(self._next_episode()) if self.cfg.episodes.weight > 0 else None
        voice = self._episode_tensors(self._next_voice_episode()) if self.speaker else None
        taught = self._distill_batch() if self.distill else None
        loss, accuracy = self.objective(word, voice, taught)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        return float(loss.detach()), accuracy  # the whole objective: a distillation-only run has no episode loss

    def trained(self) -> set[str]:
        """The projections some loss of this run teaches: validation measures (and best.pt is chosen on) those."""
        teachers = self.cfg.distill.teachers
        return ({"word"} if self.cfg.episodes.weight > 0 or "word" in teachers else set()) | \
            ({"speaker"} if self.speaker or "speaker" in teachers else set())

    def _word_scores(self, prefix: str, bank: ClipBank) -> dict[str, float]:
        """Few-shot word accuracy on a held-out bank, per validation shot count it has clips for."""
        v = self.cfg.validation
        if not len(bank.clips):
            return {}
        emb = embed_all(self.learner.encoder, self.frontend, bank, self.device)
        scores = {}
        for k in v.shots:
            try:
                scores[f"{prefix}_{v.n_way}way_{k}shot"] = fewshot_accuracy(
                    emb, bank.labels, bank.speakers, v.n_way, k, v.q_query, v.episodes, seed=1234).mean
            except ValueError:
                continue  # too few held-out clips for this shot count
        return scores

    def validate(self) -> dict[str, float]:
        scores: dict[str, float] = {}
        if "word" in self.trained():
            for prefix, bank in (("val", self.val), ("val_new_words", self.val_new)):
                scores.update(self._word_scores(prefix, bank))
        if "speaker" in self.trained() and len(self.val.clips):
            voices = embed_all(self.learner.encoder, self.frontend, self.val, self.device, projection="speaker")
            try:
                scores["val_speaker_1-eer"] = 1.0 - speaker_eer(voices, self.val.labels, self.val.speakers,
                                                                draws_word=0)["eer any word"]
            except ValueError:
                pass  # too few held-out speakers with enough clips to enroll and try a voice
        return scores

    def run(self, max_minutes: float | None = None) -> Path:
        """Train to ``optim.steps``, or until ``max_minutes`` have passed (then ``last.pt`` holds the
        exact state to resume from and ``stopped_early`` is set)."""
        from tqdm import tqdm

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.prepare_data()
        n_params = count_parameters(self.learner.encoder)
        if self.dist.main:
            tqdm.write(f"device {self.device} ({resolve_precision(cfg.precision, self.device)}), encoder {cfg.encoder.name} ({n_params:,} parameters), "
                       f"learner {cfg.learner.name}, {len(self.bank.clips):,} clips of {len(self.bank.class_names):,} classes "
                       f"({len(self.train_index):,} train / {len(self.val.clips):,} held-out speakers"
                       + (f" / {len(self.val_new.clips):,} of {np.unique(self.val_new.labels).size} held-out new words"
                          if len(self.val_new.clips) else "") + ")"
                       + (f", {len(self.windows):,} sentence windows for distillation" if len(self.windows) else ""))
        if self.dist.world > 1 and self.dist.main:
            tqdm.write(f"{self.dist.world} processes (DistributedDataParallel), each drawing its own episodes")
        log_path = self.out / "log.csv"
        new_log = not log_path.exists() or self.step == 0
        if not new_log and self.dist.main:
            keep_log_until(log_path, self.step)
        log = open(log_path if self.dist.main else os.devnull, "w" if new_log else "a", newline="")
        writer = csv.writer(log)
        if new_log:
            writer.writerow(["step", "loss", "train_acc", "lr", "episodes_per_s", "val"])
        board = tensorboard_writer(self.out / "tensorboard") if self.dist.main else None
        bar = tqdm(total=cfg.optim.steps, initial=self.step, desc="meta-training", unit="ep", disable=not self.progress)
        losses, accs, t0, n0 = [], [], time.perf_counter(), self.step
        deadline = self.clock() + 60.0 * max_minutes if max_minutes is not None else math.inf
        try:
            while self.step < cfg.optim.steps:
                if self.clock() >= deadline:
                    self.stopped_early = True
                    if self.dist.main:
                        self.save(self.out / "last.pt", {})
                        tqdm.write(f"time budget of {max_minutes:g} min reached at step {self.step}: "
                                   f"{self.out / 'last.pt'} written; continue with --resume")
                    break
                loss, acc = self.train_step()
                losses.append(loss)
                accs.append(acc)
                bar.update(1)
                rate = (self.step - n0) / max(1e-9, time.perf_counter() - t0)
                if self.step % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", acc=f"{np.mean(accs[-50:]):.3f}",
                                    eps=f"{rate:.2f}/s", val=f"{self.best_val:.3f}")
                val = {}
                if self.dist.main and (self.step % cfg.validation.every == 0 or self.step == cfg.optim.steps):
                    val = self.validate()
                    chosen = {k: v for k, v in val.items() if "new_words" in k} or val  # new words when held out
                    score = float(np.mean(list(chosen.values()))) if chosen else -self.step
                    tqdm.write(f"step {self.step}: loss {np.mean(losses[-100:]):.3f} "
                               + " ".join(f"{k} {v:.4f}" for k, v in val.items()))
                    if score > self.best_val:
                        self.best_val = score
                        self.save(self.out / "best.pt", val)
                    self.save(self.out / "last.pt", val)
                writer.writerow([self.step, f"{loss:.5f}", f"{acc:.4f}", f"{self.lr_at(self.step):.6f}",
                                 f"{rate:.3f}", " ".join(f"{k}={v:.4f}" for k, v in val.items())])
                log.flush()
                if board is not None:
                    for name, value in (("train/loss", loss), ("train/accuracy", acc), ("train/lr", self.lr_at(self.step)),
                                        ("train/episodes_per_s", rate), *((f"val/{k}", v) for k, v in val.items())):
                        board.add_scalar(name, value, self.step)
        finally:
            bar.close()
            log.close()
            if board is not None:
                board.close()
        self.episodes_per_s = (self.step - n0) / max(1e-9, time.perf_counter() - t0)
        self.dist.barrier()  # the other processes wait for rank 0's last checkpoint
        self.dist.close()
        return self.out / "best.pt"

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path: Path, val: dict[str, float]) -> None:
        state = {
            "format": "edge-meta-checkpoint/1",
            "config": self.cfg.to_dict(),
            "learner": self.learner.state_dict(),
            "speaker_objective": self.speaker.state_dict() if self.speaker else {},
            "distill_objective": self.distill.state_dict() if self.distill else {},
            "optimizer": self.optimizer.state_dict(),
            "rng": self._rng_state(),
            "step": self.step,
            "best_val": self.best_val,
            "validation": val,
            "classes": len(self.bank.class_names),
            "corpora": [c.path for c in self.cfg.corpora],
            "processes": self.dist.world,
        }
        save_checkpoint(state, path)

    def resume(self, path: Path) -> None:
        """Continue from a checkpoint written by `save`: call before `run`. The random states are
        applied once the data is prepared (the samplers are made there)."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.learner.load_state_dict(state["learner"])
        if self.speaker and state.get("speaker_objective"):
            self.speaker.load_state_dict(state["speaker_objective"])
        if self.distill and state.get("distill_objective"):
            self.distill.load_state_dict(state["distill_objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.best_val = float(state["best_val"])
        self._resume_rng = state.get("rng")

    def _samplers(self) -> dict[str, EpisodeSampler]:
        named = {"real": getattr(self, "real", None), "synth": getattr(self, "synth", None),
                 "real_voices": getattr(self, "real_voices", None), "synth_voices": getattr(self, "synth_voices", None)}
        return {name: s.sampler for name, s in named.items() if s is not None}

    def _rng_state(self) -> dict:
        """Every random stream the next steps draw from. With several processes this is rank 0's;
        the other ranks then start their streams afresh from their seeds (gradients stay exact)."""
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "augmenter": self.augmenter.gen.get_state(),
            "episodes": self.rng.bit_generator.state,
            "distill": self.distill_rng.bit_generator.state,
            "samplers": {name: s.rng.bit_generator.state for name, s in self._samplers().items()},
        }

    def _set_rng_state(self, state: dict) -> None:
        if self.dist.world > 1 and not self.dist.main:
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        self.augmenter.gen.set_state(state["augmenter"])
        self.rng.bit_generator.state = state["episodes"]
        self.distill_rng.bit_generator.state = state["distill"]
        for name, sampler in self._samplers().items():
            sampler.rng.bit_generator.state = state["samplers"][name]
