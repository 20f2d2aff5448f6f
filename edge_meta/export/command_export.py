"""Command model checkpoint -> ``commands/`` folder for a bundle: two small fp32 ONNX graphs and two JSON files.

- ``lm.onnx``: tokens (B, T) int64, fast_weight (V, H), fast_bias (V) -> hidden (B, T, H), log_probs (B, T, V);
  zeros for the fast inputs give the un-adapted model.
- ``generator.onnx``: statistics (V, 2H + 3) -> fast_weights (V, H + 1) (the Meta Networks meta-learner).
- ``vocab.json``: the tokens, the graph files and shapes, training provenance.
- ``grammar.json``: the command grammar the model was trained on (the device enumerates commands from it).

The graphs are tiny (~40k parameters), so they stay fp32. Export checks the ONNX graphs against torch
on real phrases and refuses to write a folder that disagrees.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_meta.commands.users import sample_user
from edge_meta.device.commands import FORMAT  # what the device reads is what export writes
from edge_meta.export.onnx_export import OPSET
from edge_meta.train.command_lm import CommandLM, statistics_features

PARITY_TOLERANCE = 1e-4


class LanguageModelGraph(nn.Module):
    """The language model with the fast output weights as inputs."""

    def __init__(self, lm: CommandLM) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, tokens: torch.Tensor, fast_weight: torch.Tensor, fast_bias: torch.Tensor):
        h, _ = self.lm.gru(self.lm.embed(tokens))
        logits = self.lm.out(h) + h @ fast_weight.T + fast_bias
        return h, torch.log_softmax(logits, dim=-1)


class GeneratorGraph(nn.Module):
    """Support statistics of one user -> every word's fast weights and bias."""

    def __init__(self, lm: CommandLM) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        return self.lm.fast_weights(statistics)


def _export(module: nn.Module, inputs: tuple, path: Path, names_in: list[str], names_out: list[str],
            axes: dict[str, dict[int, str]]) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter is chosen on purpose; GRU batch_first warns
        torch.onnx.export(module.eval(), inputs, str(path), input_names=names_in, output_names=names_out,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def _parity(lm: CommandLM, vocab, grammar, lm_path: Path, gen_path: Path) -> float:
    """Largest absolute difference between torch and onnxruntime on a synthetic user's phrases."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    user = sample_user(grammar, rng, "novel_eval")
    phrases = user.phrases(6, rng)
    novel = vocab.assign_placeholders(p.words for p in phrases)
    tokens = vocab.batch([p.words for p in phrases], novel)
    with torch.no_grad():
        t = torch.from_numpy(tokens)
        h = lm.hidden(t[None, :, :-1])
        stats = lm.statistics(h, t[None, :, 1:])[0]
        fast = lm.fast_weights(stats)
        _, log_probs = LanguageModelGraph(lm)(t[:, :-1], fast[:, :-1], fast[:, -1])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    gen = ort.InferenceSession(str(gen_path), opts, providers=["CPUExecutionProvider"])
    lm_session = ort.InferenceSession(str(lm_path), opts, providers=["CPUExecutionProvider"])
    (fast_onnx,) = gen.run(None, {"statistics": stats.numpy()})
    _, lp_onnx = lm_session.run(None, {"tokens": tokens[:, :-1], "fast_weight": fast_onnx[:, :-1],
                                       "fast_bias": fast_onnx[:, -1]})
    return float(max(np.abs(fast_onnx - fast.numpy()).max(), np.abs(lp_onnx - log_probs.numpy()).max()))


def export_command_model(checkpoint: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the command model into ``out_dir`` (a bundle's ``commands/``); returns the files written."""
    from edge_meta.train.command_train import load_command_checkpoint

    cfg, lm, vocab, grammar, state = load_command_checkpoint(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v, h = len(vocab), lm.hidden_size
    lm_path, gen_path = out / "lm.onnx", out / "generator.onnx"
    tokens = torch.tensor([vocab.encode(("turn", "the", "lights", "off"))[:-1]] * 2)
    dims = {0: "batch", 1: "time"}
    _export(LanguageModelGraph(lm), (tokens, torch.zeros(v, h), torch.zeros(v)), lm_path,
            ["tokens", "fast_weight", "fast_bias"], ["hidden", "log_probs"],
            {name: dims for name in ("tokens", "hidden", "log_probs")})
    _export(GeneratorGraph(lm), (torch.zeros(v, statistics_features(h)),), gen_path, ["statistics"], ["fast_weights"],
            {})
    gap = _parity(lm, vocab, grammar, lm_path, gen_path)
    if gap > PARITY_TOLERANCE:
        raise RuntimeError(f"the exported command graphs differ from torch by {gap:.2e} (> {PARITY_TOLERANCE})")
    meta = {"format": FORMAT, "vocabulary": vocab.to_dict(), "hidden": h, "statistics": statistics_features(h),
            "graphs": {"lm": lm_path.name, "generator": gen_path.name}, "grammar": "grammar.json",
            "provenance": {"step": int(state["step"]), "validation": state["validation"], "seed": cfg.seed,
                           "onnx_parity_max_abs": gap}}
    vocab_path, grammar_path = out / "vocab.json", out / "grammar.json"
    vocab_path.write_text(json.dumps(meta, indent=1) + "\n")
    grammar_path.write_text(json.dumps(grammar.to_dict(), indent=1) + "\n")
    return [lm_path, gen_path, vocab_path, grammar_path]
