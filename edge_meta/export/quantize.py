"""fp32 ONNX -> int8 ONNX: onnxruntime static quantisation in QDQ format, per-channel signed int8
weights, calibrated on real clips.

Activations default to *unsigned* int8: on this x86 machine the u8 x s8 kernels ran our DS-CNN at
fp32 speed while s8 x s8 ran it 2-3x slower (benchmarks/RESULTS.md); on ARM (Raspberry Pi)
onnxruntime handles both. QOperator and dynamic quantisation are far slower still: avoided.

On x86 CPUs without VNNI (AVX2 only: older Intel, many AMD), onnxruntime's u8 x s8 kernels add products in pairs
into int16, which can saturate: there the tiny test encoder's int8 embeddings moved most of the way to another
word's, and a whitened encoder (`edge-meta whiten`) lost 4.5 points of FSDD household 1-shot that ARM, VNNI
machines and TFLite keep. ``reduce_range`` (the default) quantises the weights to 7 bits, which cannot saturate,
at u8 speed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge_meta.export.onnx_export import INPUT_NAME

ACTIVATION_TYPES = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}


class FeatureReader(CalibrationDataReader):
    """Feeds calibration features to onnxruntime in equal batches."""

    def __init__(self, features: np.ndarray, batch: int = 32) -> None:
        usable = len(features) - len(features) % batch or len(features)
        self.batches = iter([features[i : i + batch] for i in range(0, usable, batch)])

    def get_next(self):
        b = next(self.batches, None)
        return None if b is None else {INPUT_NAME: b.astype(np.float32)}


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray, activations: str = "u8",
                  reduce_range: bool = True) -> str:
    """Write the int8 model; returns a one-line description for the manifest."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(out), FeatureReader(calibration),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=ACTIVATION_TYPES[activations], weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, reduce_range=reduce_range,
        )
    weights = "7-bit range" if reduce_range else "s8"
    return f"static QDQ, per-channel {weights} weights, {activations} activations, MinMax calibration on real clips"
