"""Encoder -> fp32 ONNX, with the legacy exporter (opset 17): fast and exact; the dynamo exporter
lands on opset 18, which cannot be down-converted for older device runtimes."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edge_meta.frontend import FrontendSpec
from edge_meta.train.learners.base import HeadGraph

INPUT_NAME = "features"
OPSET = 17


class EncoderGraph(nn.Module):
    """What goes in the graph: features -> one embedding per projection. The pooled-feature
    BatchNorm is folded into each projection (one Gemm instead of BatchNormalization + Gemm), and
    the L2 norm is left to the device, which keeps the graph free of ops that quantise badly."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.names = list(encoder.projections.keys())
        parts = getattr(encoder, "parts", None)  # an EncoderPair: one sub-graph per encoder, one graph in all
        self.parts = nn.ModuleList(EncoderGraph(p) for p in parts.values()) if parts is not None else None
        if self.parts is not None:
            return
        norm = encoder.pool_norm
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
        self.fused = nn.ModuleDict()
        for name in self.names:
            proj = encoder.projections[name]
            fused = nn.Linear(proj.in_features, proj.out_features)
            with torch.no_grad():
                fused.weight.copy_(proj.weight * scale[None, :])
                fused.bias.copy_(proj.bias + proj.weight @ shift)
            self.fused[name] = fused

    def forward(self, features: torch.Tensor):
        if self.parts is not None:
            return tuple(out for part in self.parts for out in part(features))
        h = self.encoder.pooled(features)
        return tuple(self.fused[n](h) for n in self.names)


def export_onnx(encoder: nn.Module, spec: FrontendSpec, path: Path) -> list[str]:
    """Write the fp32 graph with a dynamic batch axis; returns its output names."""
    graph = EncoderGraph(encoder).eval()
    dummy = torch.zeros(1, 1, spec.n_mels, spec.n_frames)
    axes = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in graph.names}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is chosen on purpose (see above)
        torch.onnx.export(graph, (dummy,), str(path), input_names=[INPUT_NAME], output_names=graph.names,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return graph.names


def export_head_graph(graph: HeadGraph, path: Path) -> None:
    """A learner's head module (relation module, generator, ...) as fp32 ONNX: tiny, so not quantised."""
    module = graph.module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, graph.inputs, str(path), input_names=graph.input_names,
                          output_names=graph.output_names, dynamic_axes=graph.dynamic_axes,
                          opset_version=OPSET, dynamo=False)
