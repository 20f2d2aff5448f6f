"""Workstation side: turn a checkpoint into a device bundle (ONNX fp32 + int8, heads, manifest, report)."""

TINY_WEIGHT = 0.5  # the trunk flavour's tiny word graph's share of the fused word cosine (0: the trunk alone)
VOICE_WEIGHT = 0.6  # GE2E's share of the trunk flavour's fused voice cosine (0: the base bundle's speaker graph alone)
