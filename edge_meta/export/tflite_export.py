"""Encoder -> int8 TFLite with the official PyTorch route: litert-torch's PT2E quantisation, no TensorFlow.

The graph is the same `EncoderGraph` the ONNX export uses. Weights are per-channel symmetric int8,
activations int8 with static ranges from the same real calibration clips; input and output tensors
are int8 too (the device backend quantises features and dequantises embeddings with the scales
stored in the model). Optional: needs the ``[export-tflite]`` extra (litert-torch, ~1.35 GB).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_meta.errors import ConfigError
from edge_meta.export.onnx_export import EncoderGraph


def tflite_available() -> bool:
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def export_tflite_int8(encoder: nn.Module, calibration: np.ndarray, path: Path) -> str:
    """Write the int8 TFLite encoder; returns a one-line description for the manifest."""
    if not tflite_available():
        raise ConfigError("TFLite export needs litert-torch", "pip install 'edge-meta[export-tflite]'")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    graph = EncoderGraph(encoder).eval()
    example = (torch.from_numpy(calibration[:1].astype(np.float32)),)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        model = quantize_pt2e.prepare_pt2e(torch.export.export(graph, example).module(), quantizer)
        for i in range(len(calibration)):
            model(torch.from_numpy(calibration[i : i + 1].astype(np.float32)))
        model = quantize_pt2e.convert_pt2e(model, fold_quantize=False)
        move_exported_model_to_eval(model)  # exported graphs ignore .eval(): dropout and BN must be told
        model.training = False  # ... and the flag the converter checks is not set by that
        litert_torch.convert(model, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    return "litert-torch PT2E static int8: per-channel symmetric weights, int8 activations, int8 input/output"
