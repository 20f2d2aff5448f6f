"""A trainable DS-CNN word encoder rebuilt from a bundle's int8 ONNX graph, to continue training from it.

The checkpoints behind the first shipped bundle were lost; its int8 encoder is all that is left of that
training. Export folded every BatchNorm into the convolution before it (and ``pool_norm`` into the projection),
so the graph holds, per layer, a convolution with a bias. Loaded into the torch DS-CNN, each folded pair becomes
the convolution (weights dequantised) and a BatchNorm that is *the identity plus the bias* in eval mode and
nearly so in training mode: its running statistics and its affine parameters are set from the layer's own
activations on real clips (mean mu, std s): gamma = s, beta = mu + bias, so normalising by the batch's statistics
and scaling back lands where the folded layer did. Training then continues from the shipped function rather
than from scratch.

    python -m edge_meta.train.from_bundle BUNDLE --corpus ../shared/data/speech_commands_test --out init.pt

The result is a checkpoint a recipe names as ``init`` (only the encoder's weights are read from it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from edge_meta.bundle import Bundle
from edge_meta.corpora import ENGLISH_EVAL_WORDS, EVAL_SOUNDALIKES, load_clips, read_corpus
from edge_meta.errors import BundleError, EdgeMetaError
from edge_meta.frontend import LogMel
from edge_meta.train.encoders import DSCNN

BLOCKS = 5  # the shipped DS-CNN: a stem and five depthwise-separable blocks


def dequantised(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every constant of the graph as float: initializers, and the outputs of DequantizeLinear nodes fed by them."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in values:
            continue
        q, scale = values[node.input[0]], values[node.input[1]]
        zero = values[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if scale.ndim:  # per channel, along ``axis``
            shape[axis] = -1
        values[node.output[0]] = ((q.astype(np.float32) - zero.reshape(shape).astype(np.float32))
                                  * scale.reshape(shape).astype(np.float32))
    return values


def word_graph(bundle: Bundle) -> onnx.ModelProto:
    """The int8 ONNX graph that computes the bundle's ``word`` output."""
    for entry in bundle.manifest["encoder"]["files"]:
        if entry.get("backend") == "onnx" and entry.get("precision") == "int8" and "word" in entry.get("outputs", ["word"]):
            return onnx.load(str(bundle.path_of(entry["file"])))
    raise BundleError(f"{bundle.root}: no int8 ONNX word encoder", "give a bundle made by `edge-meta export`")


def folded_layers(model: onnx.ModelProto) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of each convolution in graph order, and of the word projection."""
    values = dequantised(model)
    convs = [(values[n.input[1]], values[n.input[2]]) for n in model.graph.node if n.op_type == "Conv"]
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"]
    if len(convs) != 1 + 2 * BLOCKS or len(gemm) != 1:
        raise BundleError(f"the word encoder has {len(convs)} convolutions and {len(gemm)} projections, not a DS-CNN's "
                          f"{1 + 2 * BLOCKS} and 1", "warm starts read DS-CNN bundles only")
    return convs, (values[gemm[0].input[1]], values[gemm[0].input[2]])


def _pairs(encoder: DSCNN) -> list[tuple[torch.nn.Conv2d, torch.nn.BatchNorm2d]]:
    pairs = [(encoder.stem[0], encoder.stem[1])]
    for block in encoder.blocks:
        pairs += [(block.depthwise, block.bn1), (block.pointwise, block.bn2)]
    return pairs


def channel_stats(encoder: DSCNN, layer: torch.nn.Module, features: torch.Tensor, batch: int = 256,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of ``layer``'s output over ``features`` (batched: a layer's activations over
    thousands of clips are gigabytes)."""
    sums: list[torch.Tensor] = []

    def keep(module, inputs, out):  # noqa: ARG001
        a = out.detach().transpose(0, 1).reshape(out.shape[1], -1).double()
        sums.append(torch.stack([a.sum(1), (a * a).sum(1), torch.full_like(a[:, 0], a.shape[1])]))

    hook = layer.register_forward_hook(keep)
    try:
        for i in range(0, len(features), batch):
            encoder.body(features[i : i + batch])
    finally:
        hook.remove()
    total, squares, n = torch.stack(sums).sum(0)
    mean = total / n
    return mean.float(), (squares / n - mean * mean).clamp_min(0).float()


def encoder_from_bundle(bundle: Bundle, features: torch.Tensor) -> DSCNN:
    """The DS-CNN whose eval-mode embedding is the bundle's (dequantised) word encoder; ``features`` (N, 1, mels,
    frames) are real clips' log-mel windows whose activations set each BatchNorm's statistics."""
    convs, (proj_w, proj_b) = folded_layers(word_graph(bundle))
    channels, embed_dim = convs[0][0].shape[0], proj_w.shape[0]
    encoder = DSCNN(n_mels=features.shape[2], channels=channels, embed_dim=embed_dim, projections=("word",)).eval()
    with torch.no_grad():
        for (conv, bn), (w, b) in zip(_pairs(encoder), convs):
            if tuple(conv.weight.shape) != w.shape:
                raise BundleError(f"a convolution of the bundle is {w.shape}, the DS-CNN's is {tuple(conv.weight.shape)}",
                                  "warm starts read DS-CNN bundles of the same layout only")
            conv.weight.copy_(torch.from_numpy(w))
            bn.weight.fill_(1.0), bn.bias.copy_(torch.from_numpy(b)), bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)  # eval: exactly the identity plus the bias
        for conv, bn in _pairs(encoder):  # in order: each layer's statistics come from the rebuilt layers before it
            mean, var = channel_stats(encoder, conv, features)
            bn.running_mean.copy_(mean), bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps)), bn.bias.add_(mean)
        pooled = torch.cat([encoder.pooled(features[i : i + 256]) for i in range(0, len(features), 256)])
        mean, var = pooled.mean(0), pooled.var(0, unbiased=False)
        norm = encoder.pool_norm
        norm.running_mean.copy_(mean), norm.running_var.copy_(var)
        norm.weight.copy_(torch.sqrt(var + norm.eps)), norm.bias.copy_(mean)
        encoder.projections["word"].weight.copy_(torch.from_numpy(proj_w))
        encoder.projections["word"].bias.copy_(torch.from_numpy(proj_b))
    return encoder


def corpus_features(bundle: Bundle, corpus: Path, clips: int, seed: int = 0) -> torch.Tensor:
    """Log-mel windows (the bundle's frontend) of ``clips`` seeded clips of ``corpus``, never of an evaluation word
    (the digits the benchmarks enroll as new words)."""
    items = read_corpus(corpus).without_words(ENGLISH_EVAL_WORDS | EVAL_SOUNDALIKES).items
    picked = [items[i] for i in np.random.default_rng(seed).permutation(len(items))[:clips]]
    logmel = LogMel(bundle.frontend)
    return torch.from_numpy(logmel.batch(load_clips(picked, logmel.spec.window_samples)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_meta.train.from_bundle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle directory (or .tar) whose int8 word encoder to rebuild")
    p.add_argument("--corpus", required=True, help="a corpus of real speech clips for the BatchNorm statistics")
    p.add_argument("--clips", type=int, default=2000, help="clips of it to use (default 2000)")
    p.add_argument("--out", required=True, help="checkpoint to write (a recipe's `init`)")
    args = p.parse_args(argv)
    try:
        bundle = Bundle.open(args.bundle)
        features = corpus_features(bundle, Path(args.corpus), args.clips)
        encoder = encoder_from_bundle(bundle, features)
    except EdgeMetaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"learner": state, "from_bundle": bundle.bundle_id, "step": 0}, args.out)
    print(f"wrote {args.out}: bundle {bundle.bundle_id}'s word encoder, BatchNorm statistics from "
          f"{len(features)} clips of {args.corpus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
