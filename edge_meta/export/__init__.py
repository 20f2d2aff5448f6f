"""Workstation side: turn a checkpoint into a device bundle (ONNX fp32 + int8, heads, manifest, report)."""
