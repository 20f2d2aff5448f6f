"""Waveform and spectrogram augmentation for training batches (runs on the training device).

Real rooms are noisy and people speak at different speeds and places in the window, so each
training clip gets, at random: a speed change, a time shift, background noise at a random SNR
(from the corpora's own noise recordings) and SpecAugment masks on its features. Microphones and
voices differ too: `log_mel` adds a random smooth equaliser curve (a channel) and warps the mel
axis (vocal tract length perturbation, a speaker) before the frontend's normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    speed: tuple[float, float] = (0.9, 1.1)
    shift_s: float = 0.1
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (0.0, 30.0)
    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bins: int = 5
    eq_db: float = 0.0  # amplitude of the random equaliser curve, in dB (0 = off)
    vtlp: tuple[float, float] = (1.0, 1.0)  # range of the mel-axis warp factor ((1, 1) = off)
    enabled: bool = True


class Augmenter:
    def __init__(self, config: AugmentConfig, noise: list[np.ndarray], sample_rate: int, seed: int = 0) -> None:
        self.cfg = config
        self.noise = [torch.from_numpy(n.astype(np.float32)) for n in noise if len(n) > 0]
        self.sample_rate = sample_rate
        self.gen = torch.Generator().manual_seed(seed)

    def _uniform(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=self.gen)

    def waveforms(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T): speed, shift, noise."""
        if not self.cfg.enabled:
            return x
        b, t = x.shape
        speeds = self._uniform(b, *self.cfg.speed)
        out = torch.zeros_like(x)
        max_shift = int(self.cfg.shift_s * self.sample_rate)
        shifts = torch.randint(-max_shift, max_shift + 1, (b,), generator=self.gen) if max_shift else torch.zeros(b, dtype=torch.long)
        for i in range(b):
            y = x[i]
            n = int(round(t / float(speeds[i])))
            if n != t:
                y = F.interpolate(y[None, None], size=n, mode="linear", align_corners=False)[0, 0]
            # centre the (possibly longer or shorter) clip in the window, then shift it
            start = (len(y) - t) // 2 - int(shifts[i])
            src_lo, src_hi = max(0, start), min(len(y), start + t)
            out[i, src_lo - start : src_hi - start] = y[src_lo:src_hi]
        if self.noise and self.cfg.noise_prob > 0:
            out = self._add_noise(out)
        return out

    def _add_noise(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape
        use = torch.rand(b, generator=self.gen) < self.cfg.noise_prob
        snr = self._uniform(b, *self.cfg.snr_db)
        for i in torch.nonzero(use).flatten().tolist():
            n = self.noise[int(torch.randint(len(self.noise), (1,), generator=self.gen))]
            if len(n) < t:
                n = n.repeat(t // len(n) + 1)
            off = int(torch.randint(len(n) - t + 1, (1,), generator=self.gen))
            seg = n[off : off + t].to(x.device)
            p_sig = x[i].square().mean().clamp_min(1e-10)
            p_noise = seg.square().mean().clamp_min(1e-10)
            x[i] = x[i] + seg * torch.sqrt(p_sig / (p_noise * 10 ** (snr[i] / 10)))
        return x

    def log_mel(self, lm: torch.Tensor) -> torch.Tensor:
        """Channel and speaker variation on un-normalised log-mel frames (B, n_frames, n_mels)."""
        if not self.cfg.enabled or (self.cfg.eq_db <= 0 and self.cfg.vtlp == (1.0, 1.0)):
            return lm
        b, _, n_mels = lm.shape
        if self.cfg.vtlp != (1.0, 1.0):
            alpha = self._uniform(b, *self.cfg.vtlp)
            # output bin m reads input bin m / alpha (formants move up when alpha > 1)
            src = torch.arange(n_mels, dtype=lm.dtype)[None, :] / alpha[:, None]
            lo = src.floor().clamp(0, n_mels - 1).long()
            hi = (lo + 1).clamp(max=n_mels - 1)
            w = (src - lo).clamp(0, 1)[:, None, :].to(lm.device)
            lm = torch.gather(lm, 2, lo[:, None, :].expand(-1, lm.shape[1], -1).to(lm.device)) * (1 - w) + \
                torch.gather(lm, 2, hi[:, None, :].expand(-1, lm.shape[1], -1).to(lm.device)) * w
        if self.cfg.eq_db > 0:
            nats = self.cfg.eq_db * np.log(10.0) / 10.0
            coeff = (torch.rand(b, 3, generator=self.gen) * 2 - 1) * nats
            basis = torch.cos(torch.pi * torch.arange(1, 4)[:, None] * (torch.arange(n_mels)[None, :] + 0.5) / n_mels)
            lm = lm + (coeff @ basis).to(lm.device)[:, None, :]
        return lm

    def features(self, f: torch.Tensor) -> torch.Tensor:
        """SpecAugment on (B, 1, n_mels, n_frames): masked cells take the mid value 0."""
        if not self.cfg.enabled:
            return f
        f = f.clone()
        b, _, n_mels, n_frames = f.shape
        for i in range(b):
            for _ in range(self.cfg.time_masks):
                w = int(torch.randint(self.cfg.time_mask_frames + 1, (1,), generator=self.gen))
                s = int(torch.randint(max(1, n_frames - w), (1,), generator=self.gen))
                f[i, :, :, s : s + w] = 0.0
            for _ in range(self.cfg.freq_masks):
                w = int(torch.randint(self.cfg.freq_mask_bins + 1, (1,), generator=self.gen))
                s = int(torch.randint(max(1, n_mels - w), (1,), generator=self.gen))
                f[i, :, s : s + w, :] = 0.0
        return f
