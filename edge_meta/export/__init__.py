"""Workstation side: turn a checkpoint into a device bundle (ONNX fp32 + int8, heads, manifest, report)."""

TINY_WEIGHT = 0.7  # the trunk flavour's tiny word graph's share of the fused word cosine (0: the trunk alone)
