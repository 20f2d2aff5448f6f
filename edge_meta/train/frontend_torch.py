"""The torch twin of `edge_meta.frontend.LogMel`: the same spec and steps, differentiable and batched.

It reuses the numpy filterbank and window so the two can only differ in floating-point rounding;
`tests/test_frontend.py` holds them within 1e-4 on real speech.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edge_meta.frontend import FrontendSpec, hann_window, mel_filterbank


class LogMelTorch(nn.Module):
    def __init__(self, spec: FrontendSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("window", torch.from_numpy(hann_window(spec.win_length)), persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(mel_filterbank(spec)), persistent=False)
        self.dyn = spec.top_db * math.log(10.0) / 10.0

    def log_mel_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> un-normalised log-mel (B, n_frames, n_mels)."""
        s = self.spec
        frames = x.unfold(-1, s.win_length, s.hop_length) * self.window
        spectrum = torch.fft.rfft(frames, n=s.n_fft, dim=-1)
        power = spectrum.real.square() + spectrum.imag.square()
        return torch.log(power @ self.filterbank + s.log_floor)

    def normalise(self, log_mel: torch.Tensor) -> torch.Tensor:
        peak = log_mel.amax(dim=(-2, -1), keepdim=True)
        return torch.clamp(log_mel - peak, min=-self.dyn) / self.dyn + 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, window_samples) waveforms -> encoder input (B, 1, n_mels, n_frames)."""
        return self.normalise(self.log_mel_frames(x)).transpose(-1, -2).unsqueeze(1)
