"""Device runtime: numpy + onnxruntime (or a TFLite interpreter), never torch.

`Runtime` is the whole API most users need; see `edge_meta.device.runtime`.
"""

from edge_meta.device.runtime import Detection, Runtime

__all__ = ["Detection", "Runtime"]
