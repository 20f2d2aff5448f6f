"""The log-mel frontend: one spec (stored in every bundle manifest), implemented here in numpy.

`edge_meta.train.frontend_torch` is its torch twin; a test holds the two within 1e-4 on real
speech. Both compute the same steps, in this order:

1. frames of ``win_length`` samples every ``hop_length`` (no centre padding), periodic Hann window;
2. power spectrum with an ``n_fft``-point real FFT;
3. HTK-mel triangular filterbank between ``f_min`` and ``f_max``;
4. natural log of ``power + log_floor``;
5. per window: subtract the window's maximum and clamp at ``-top_db`` decibels, then scale
   to [-0.5, 0.5]. This makes features independent of input gain, so a quiet microphone and a
   loud one look the same to the encoder, and gives int8 quantisation a fixed input range.

``f_max`` defaults to 4 kHz (telephone band) so that 8 kHz recordings such as FSDD look the same
as 16 kHz microphone audio; the spec is data, so a bundle may choose otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from edge_meta.errors import BundleError


@dataclass(frozen=True)
class FrontendSpec:
    sample_rate: int = 16_000
    window_s: float = 1.0
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float = 4000.0
    log_floor: float = 1e-10
    top_db: float = 60.0

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return 1 + (self.window_samples - self.win_length) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrontendSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise BundleError(
                f"frontend spec has unknown fields {sorted(unknown)}", "upgrade edge-meta to read this bundle"
            )
        spec = cls(**d)
        spec.check()
        return spec

    def check(self) -> None:
        """ValueError unless every field has its type and a usable range: a bundle's spec is read from a file,
        and a wrong one would otherwise fail deep inside the frontend, or allocate without bound."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = int if f.type in (int, "int") else float
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                raise ValueError(f"{f.name} = {value!r} is not {'an integer' if kind is int else 'a number'}")
            if not math.isfinite(value):
                raise ValueError(f"{f.name} = {value!r} is not finite")
        if self.sample_rate != 16_000:
            raise ValueError(f"sample_rate = {self.sample_rate}: the device records 16000 Hz")
        limits = {"window_s": (0.1, 10.0), "n_fft": (16, 8192), "win_length": (16, self.n_fft),
                  "hop_length": (1, self.win_length), "n_mels": (1, 256), "log_floor": (1e-30, 1.0), "top_db": (1.0, 200.0)}
        for name, (low, high) in limits.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name} = {getattr(self, name)} is outside [{low}, {high}]")
        if not 0.0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= {self.sample_rate / 2:g} Hz, got {self.f_min}, {self.f_max}")
        if self.window_samples < self.win_length:
            raise ValueError(f"a window of {self.window_samples} samples is shorter than one frame ({self.win_length})")


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(spec: FrontendSpec) -> np.ndarray:
    """(n_fft//2+1, n_mels) triangular filters, peak 1, on the HTK mel scale."""
    freqs = np.linspace(0.0, spec.sample_rate / 2.0, spec.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(spec.f_min), hz_to_mel(spec.f_max), spec.n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    fb = np.clip(np.minimum(rising, falling), 0.0, None).T
    if np.any(fb.sum(axis=0) == 0):
        raise ValueError("a mel filter covers no FFT bin: use fewer mels or a larger n_fft")
    return fb.astype(np.float32)


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (as torch.hann_window's default)."""
    return (0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(n) / n)).astype(np.float32)


class LogMel:
    """Numpy log-mel frontend for one spec; `__call__` turns a window of samples into features."""

    def __init__(self, spec: FrontendSpec) -> None:
        self.spec = spec
        self.window = hann_window(spec.win_length)
        self.filterbank = mel_filterbank(spec)
        self.dyn = spec.top_db * math.log(10.0) / 10.0  # decibels of power -> nats

    def log_mel_frames(self, x: np.ndarray) -> np.ndarray:
        """Un-normalised log-mel, (n_frames, n_mels), for every full frame of ``x``."""
        s = self.spec
        n = 1 + (len(x) - s.win_length) // s.hop_length if len(x) >= s.win_length else 0
        if n == 0:
            return np.zeros((0, s.n_mels), dtype=np.float32)
        idx = np.arange(s.win_length)[None, :] + s.hop_length * np.arange(n)[:, None]
        frames = x.astype(np.float32, copy=False)[idx] * self.window
        spectrum = np.fft.rfft(frames, n=s.n_fft, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        return np.log(power @ self.filterbank + s.log_floor).astype(np.float32)

    def normalise(self, log_mel: np.ndarray) -> np.ndarray:
        """Gain-independent features from log-mel frames of one window, shape (..., n_frames, n_mels)."""
        peak = log_mel.max(axis=(-2, -1), keepdims=True)
        return (np.maximum(log_mel - peak, -self.dyn) / self.dyn + 0.5).astype(np.float32)

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """Features (n_mels, n_frames) of one window of exactly ``spec.window_samples`` samples."""
        if len(window) != self.spec.window_samples:
            raise ValueError(f"expected {self.spec.window_samples} samples, got {len(window)}")
        return self.normalise(self.log_mel_frames(window)).T

    def batch(self, windows: np.ndarray) -> np.ndarray:
        """Encoder input (B, 1, n_mels, n_frames) for a (B, window_samples) array of windows."""
        return np.stack([self(w) for w in windows])[:, None]
