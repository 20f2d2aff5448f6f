"""Resemblyzer's GE2E speaker encoder (Apache-2.0, `pretrained.pt` in the resemblyzer 0.1.4 wheel) as one ONNX graph
on the window's samples, for the trunk flavour's voices (never the tiny default's).

The graph does what `edge_meta.train.teachers.GE2ETeacher` does in numpy and torch: quiet windows raised to
Resemblyzer's -30 dBFS, a centred zero-padded STFT (a convolution with the periodic-Hann-windowed DFT basis, so
onnxruntime needs no STFT operator), librosa's 40-band mel filterbank, the 3-layer LSTM, ReLU and unit length.
The upper two LSTM layers and the linear layer are quantised to int8 (dynamic, 7-bit weights as everywhere here);
the DFT, the filterbank and the first LSTM layer stay in float32: their inputs are linear power spanning 60 dB and
more, which one 8-bit activation scale per window flattens (quantising them too left cosines to the teacher of
0.3-0.7; as it is, 0.985 and more on FSDD windows, in 3.2 MB instead of 6.4).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

OPSET = 17
INPUT, OUTPUT = "samples", "speaker"
MIN_PARITY_COSINE = 0.97  # the int8 graph against the teacher on real windows: below this the export is wrong

GE2E_SOURCE = "Resemblyzer's GE2E voice encoder (Apache-2.0), resemblyzer/pretrained.pt in the resemblyzer 0.1.4 wheel"
NOTICE = """encoder.int8.speaker.onnx contains Resemblyzer's GE2E voice encoder (https://github.com/resemble-ai/Resemblyzer),
as distributed in the resemblyzer 0.1.4 wheel (resemblyzer/pretrained.pt), licensed under the Apache License,
Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0). Modified by edge-meta: exported to ONNX with its mel
frontend, its LSTM and linear layer quantised to int8, and its embedding placed beside another speaker encoder's.
"""


def _module(teacher):
    """The teacher's frontend and network as one torch module: (batch, samples) -> (batch, 256) unit embeddings."""
    import torch

    n_fft, hop = teacher.n_fft, teacher.hop
    bins = np.arange(n_fft // 2 + 1)[None, :]
    angle = 2.0 * np.pi * np.arange(n_fft)[:, None] * bins / n_fft
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], 1).T * teacher.window  # (2 * bins, n_fft)

    class Ge2eOnWindow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("basis", torch.from_numpy(basis.astype(np.float32))[:, None, :])
            self.register_buffer("mel", torch.from_numpy(teacher.mel_basis.T.copy()))
            self.encoder, self.target = teacher.model, float(10 ** (teacher.target_dbfs / 20))
            self.half = n_fft // 2 + 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rms = torch.sqrt(torch.mean(x * x, dim=1, keepdim=True))
            x = x * torch.clamp(self.target / torch.clamp(rms, min=1e-9), min=1.0)
            x = torch.nn.functional.pad(x, (n_fft // 2, n_fft // 2))
            spec = torch.nn.functional.conv1d(x[:, None, :], self.basis, stride=hop)  # (batch, 2 * bins, frames)
            power = spec[:, : self.half] ** 2 + spec[:, self.half:] ** 2
            return self.encoder(torch.matmul(power.transpose(1, 2), self.mel))

    return Ge2eOnWindow().eval()


def export_ge2e(out: Path, windows: np.ndarray) -> float:
    """Write the int8 graph to ``out``; return the lowest cosine between its embeddings and the teacher's on
    ``windows`` (real speech, (N, window_samples)), after refusing an export below `MIN_PARITY_COSINE`."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edge_meta.device.backends import onnx_session
    from edge_meta.train.teachers import GE2ETeacher

    teacher = GE2ETeacher()
    module = _module(teacher)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "ge2e.onnx"
        with torch.no_grad():
            torch.onnx.export(module, (torch.from_numpy(windows[:2].astype(np.float32)),), str(fp32),
                              input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET, dynamo=False,
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        nodes = onnx.load(str(fp32)).graph.node
        upper = [n.name for n in nodes if n.op_type == "LSTM"][1:] + [n.name for n in nodes if n.op_type == "Gemm"]
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, reduce_range=True, nodes_to_quantize=upper)
    session = onnx_session(out)
    got = np.concatenate([session.run(None, {INPUT: windows[i:i + 32].astype(np.float32)})[0]
                          for i in range(0, len(windows), 32)])
    want = np.concatenate([teacher.embed(windows[i:i + 32]) for i in range(0, len(windows), 32)])
    cosine = float(np.min(np.sum(got * want, 1) / np.linalg.norm(got, axis=1)))
    if cosine < MIN_PARITY_COSINE:
        raise RuntimeError(f"the GE2E graph's embeddings leave the teacher's (cosine {cosine:.3f}): a bug in export_ge2e")
    return cosine
