"""`edge-meta export`: checkpoint -> bundle directory (and optionally .tar), with a parity report.

Steps: fp32 ONNX; int8 ONNX calibrated on real clips of many speakers; heads.npz with the
learner's head, a bank of background embeddings (open-set negatives) and the default threshold;
manifest with hashes; report.json with sizes, fp32-vs-int8 agreement on *other* real clips and
single-thread latency. Optionally the FSDD few-shot numbers go into the manifest's provenance.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_meta import __version__
from edge_meta.audio import read_audio
from edge_meta.bench.fewshot import encoder_latency_ms, run_bench
from edge_meta.bundle import Bundle, sha256_file, write_manifest, write_tar
from edge_meta.corpora import ENGLISH_EVAL_WORDS, Item, load_clips, read_corpus
from edge_meta.device.backends import OnnxBackend
from edge_meta.episodes import EpisodeSampler
from edge_meta.errors import DataError
from edge_meta.export.hold import HoldMargin, calibrate_hold
from edge_meta.frontend import LogMel
from edge_meta.metrics import centred_cosine, mean_ci, prototype_scores, unit

BACKGROUND_SIZE = 256
TARGET_FALSE_ACCEPT = 0.01


@dataclass
class ExportReport:
    bundle: Path
    bundle_id: str = ""
    files: dict[str, int] = field(default_factory=dict)
    parity: dict[str, dict[str, float]] = field(default_factory=dict)  # per quantised encoder, vs onnx fp32
    latency_ms: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.0
    hold: HoldMargin | None = None  # how far under its threshold a hop may skip the next ones (export.hold)

    def table(self) -> str:
        lines = [f"bundle {self.bundle} (id {self.bundle_id})", "", "| file | bytes |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" for k, v in self.files.items()]
        metrics = list(next(iter(self.parity.values()), {}))
        lines += ["", "| vs ONNX fp32, held-out real clips | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{row[m]:.4f}" for m in metrics) + " |" for name, row in self.parity.items()]
        lines += ["", "| encoder latency per 1 s window, 1 thread | ms |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in self.latency_ms.items()]
        lines += ["", f"default word threshold (cosine, ~{TARGET_FALSE_ACCEPT:.0%} false accepts on calibration words): "
                  f"{self.default_threshold:.3f}"]
        if self.hold is not None:
            lines += [f"hold margin: {self.hold.below:.2f} under the threshold (holding {self.hold.hops} hops lost "
                      f"{self.hold.lost} of {self.hold.found} calibration words found with every hop scored)"]
        return "\n".join(lines)


def _pick_clips(items: list[Item], n: int, rng: np.random.Generator) -> list[Item]:
    """Up to n items spread over as many words and speakers as possible."""
    by_word: dict[str, list[Item]] = {}
    for i in rng.permutation(len(items)):
        by_word.setdefault(items[i].word, []).append(items[i])
    picked: list[Item] = []
    while len(picked) < n and any(by_word.values()):
        for word in list(by_word):
            if by_word[word] and len(picked) < n:
                picked.append(by_word[word].pop())
    return picked


def calibration_sets(corpus_path: str | Path, seed: int = 0) -> tuple[list[Item], list[Item], list[Path]]:
    """Three disjoint sets of real clips: calibration, parity (held out from calibration), noise windows."""
    corpus = read_corpus(corpus_path).without_words(ENGLISH_EVAL_WORDS)
    if len(corpus.items) < 200:
        raise DataError(f"{corpus_path}: {len(corpus.items)} clips are too few to calibrate int8",
                        "give a corpus with a few hundred clips of many speakers (--calibration)")
    rng = np.random.default_rng(seed)
    items = _pick_clips(corpus.items, 900, rng)
    calib, parity = items[:400], items[400:]
    return calib, parity, corpus.noise[:64]


def label_ids(items: list[Item]) -> np.ndarray:
    """Each clip's word as an index into the sorted words of ``items``."""
    words = sorted({i.label for i in items})
    return np.array([words.index(i.label) for i in items])


def background_bank(calib: np.ndarray, noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One output's bank of other words and noise (open-set negatives on the device): a seeded draw of
    ``BACKGROUND_SIZE`` of the calibration and noise embeddings, unit length, float16."""
    bank = np.concatenate([calib, noise])
    return unit(bank[rng.permutation(len(bank))[:BACKGROUND_SIZE]]).astype(np.float16)


def _threshold(emb: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Cosine at which ~1% of other-word clips pass a 5-shot prototype (the device's default)."""
    sampler = EpisodeSampler(labels, np.zeros(len(labels), int), 5, 5, 3, "any", seed)
    negatives = []
    for _ in range(200):
        ep = sampler.sample()
        s = prototype_scores(emb, ep)
        other = np.ones_like(s, dtype=bool)
        other[np.arange(len(s)), ep.query_y] = False
        negatives.append(s[other])
    return float(np.quantile(np.concatenate(negatives), 1 - TARGET_FALSE_ACCEPT))


def _parity(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """How closely a quantised encoder follows fp32: centred cosine, and 10-way 5-shot decisions on the same episodes."""
    cc = centred_cosine(reference, candidate)
    sampler = EpisodeSampler(labels, np.zeros(len(labels), int), 10, 5, 5, "any", 0)
    agree, acc_ref, acc = [], [], []
    for _ in range(300):
        ep = sampler.sample()
        p_ref, p = prototype_scores(reference, ep).argmax(1), prototype_scores(candidate, ep).argmax(1)
        agree.append(np.mean(p_ref == p))
        acc_ref.append(np.mean(p_ref == ep.query_y))
        acc.append(np.mean(p == ep.query_y))
    return {"centred cosine mean": float(cc.mean()), "centred cosine min": float(cc.min()),
            "top-1 agreement": mean_ci(agree).mean, "accuracy delta (pt)": 100 * (mean_ci(acc).mean - mean_ci(acc_ref).mean)}


def _noise_windows(paths: list[Path], window: int) -> np.ndarray:
    out = []
    for p in paths:
        x = read_audio(p, announce=False)
        out += [x[i : i + window] for i in range(0, len(x) - window + 1, window)][:4]
    return np.stack(out) if out else np.zeros((0, window), np.float32)


def init_provenance(path: str) -> dict:
    """The file a warm-started run began from, by sha256, and the bundle it was rebuilt from when it was
    (`edge_meta.train.from_bundle`); a file no longer there is named only."""
    import torch

    p = Path(path)
    if not p.is_file():
        return {"file": path, "sha256": None}
    state = torch.load(p, map_location="cpu", weights_only=True)
    return {"file": path, "sha256": sha256_file(p), **({"from_bundle": state["from_bundle"]} if "from_bundle" in state else {})}


def export_bundle(checkpoint: str | Path, out: str | Path, calibration: str | Path, tar: bool = False,
                  fsdd: str | Path | None = None, activations: str = "u8", formats: tuple[str, ...] = ("onnx", "tflite"),
                  progress: bool = True, commands: str | Path | None = None, keep_fp32: bool = True,
                  reduce_range: bool = True) -> ExportReport:
    """Checkpoint -> verified bundle directory (and .tar); TFLite is skipped with a note when litert-torch is missing.
    ``keep_fp32=False`` measures everything against the fp32 graph but leaves it out of the bundle: a device
    runs int8, and the shipped default must stay small."""
    from tqdm import tqdm

    from edge_meta.export.onnx_export import INPUT_NAME, export_head_graph, export_onnx
    from edge_meta.export.onnx_split import split_entry
    from edge_meta.export.quantize import quantize_int8
    from edge_meta.export.tflite_export import export_tflite_int8, tflite_available
    from edge_meta.train.checkpoint import load_checkpoint

    if "tflite" in formats and not tflite_available():
        tqdm.write("note: litert-torch is not installed, so the bundle gets no TFLite encoder "
                   "(pip install 'edge-meta[export-tflite]')")
        formats = tuple(f for f in formats if f != "tflite")
    steps = ["load", "onnx", "quantise onnx", *(["tflite"] if "tflite" in formats else []), "heads", "report",
             *(["fsdd bench"] if fsdd and Path(fsdd).exists() else []), "write"]
    bar = tqdm(total=len(steps), desc="export", unit="step", disable=not progress)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    cfg, learner, state = load_checkpoint(checkpoint)
    spec = cfg.frontend
    logmel = LogMel(spec)
    out = Path(out)
    calib_items, parity_items, noise_paths = calibration_sets(calibration, cfg.seed)
    calib = logmel.batch(load_clips(calib_items, spec.window_samples))
    parity = logmel.batch(load_clips(parity_items, spec.window_samples))
    noise = logmel.batch(_noise_windows(noise_paths, spec.window_samples))
    calib_all = np.concatenate([calib, noise])
    step("load")

    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "bundle"
        stage.mkdir()
        outputs = export_onnx(learner.encoder, spec, stage / "encoder.fp32.onnx")
        step("onnx")
        int8 = {"backend": "onnx", "precision": "int8", "file": "encoder.int8.onnx",
                "quantization": quantize_int8(stage / "encoder.fp32.onnx", stage / "encoder.int8.onnx", calib_all, activations,
                                              reduce_range)}
        # a pair's graph is cut in two, so the device runs the speaker graph only when needed
        files = [{"backend": "onnx", "precision": "fp32", "file": "encoder.fp32.onnx"},
                 *split_entry(stage, int8, outputs, INPUT_NAME)]
        step("quantise onnx")
        if "tflite" in formats:
            files.append({"backend": "tflite", "precision": "int8", "file": "encoder.int8.tflite",
                          "quantization": export_tflite_int8(learner.encoder, calib_all, stage / "encoder.int8.tflite")})
            step("tflite")

        heads = {f"word.{k}": v for k, v in learner.export_head().items()}
        graphs = learner.head_graphs()
        if graphs:
            (stage / "heads").mkdir()
        for name, graph in graphs.items():
            export_head_graph(graph, stage / "heads" / f"{name}.onnx")
        # the bank and the floor come from the graph the device runs by default (ONNX int8), as the trunk flavour's
        # do: enrollment scores its int8 prototypes against them, and int8 quantisation error is partly shared
        # between two int8 embeddings, so fp32 ones put the bank and the floor where int8 scores are not
        device = _open_encoder(stage, files, ("onnx", "int8"), outputs)
        calib_emb = device.embed(calib)
        report = ExportReport(bundle=out, default_threshold=_threshold(calib_emb["word"], label_ids(calib_items)))
        noise_emb = device.embed(noise)
        rng = np.random.default_rng(cfg.seed)
        for output in outputs:
            heads[f"background.{output}"] = background_bank(calib_emb[output], noise_emb[output], rng)
        np.savez(stage / "heads.npz", **heads)
        if commands:  # the command language model and its Meta Networks generator (issue 6)
            from edge_meta.export.command_export import export_command_model

            export_command_model(commands, stage / "commands")
        step("heads")

        labels = label_ids(parity_items)
        reference = OnnxBackend(stage / "encoder.fp32.onnx")
        ref_emb = reference.embed(parity)["word"]
        report.latency_ms["onnx fp32"] = encoder_latency_ms(reference, parity)
        for fmt in dict.fromkeys((e["backend"], e["precision"]) for e in files[1:]):
            backend = device if fmt == ("onnx", "int8") else _open_encoder(stage, files, fmt, outputs)
            name = " ".join(fmt)
            report.parity[name] = _parity(ref_emb, backend.embed(parity)["word"], labels)
            report.latency_ms[name] = encoder_latency_ms(backend, parity)
        report.hold = calibrate_hold(lambda w: device.embed(logmel.batch(w), ["word"])["word"], calib_items,
                                     spec.window_samples, spec.sample_rate, report.default_threshold, cfg.seed)
        (stage / "report.json").write_text(json.dumps(
            {"parity_vs_onnx_fp32": report.parity, "latency_ms": report.latency_ms,
             "default_threshold": report.default_threshold, "hold": report.hold.to_dict()}, indent=2) + "\n")
        step("report")

        manifest = {
            "edge_meta_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "frontend": spec.to_dict(),
            "encoder": {
                "name": cfg.encoder.name, "options": cfg.encoder.options, "input": INPUT_NAME,
                "input_shape": ["batch", 1, spec.n_mels, spec.n_frames], "outputs": outputs,
                "embed_dim": int(ref_emb.shape[1]), "files": files,
            },
            "heads": {"word": {"kind": learner.head_kind, "learner": learner.name, "family": learner.family,
                               "graphs": {n: f"heads/{n}.onnx" for n in graphs}},
                      "file": "heads.npz", "arrays": sorted(heads)},
            "thresholds": {"word": round(report.default_threshold, 4)},
            "detector": {"hold_below": report.hold.below},
            **({"commands": {"folder": "commands", "checkpoint": str(commands)}} if commands else {}),
            "provenance": {
                "learner": learner.name, "encoder": cfg.encoder.name, "steps": state["step"],
                # the exact checkpoint this bundle came from (commit it, e.g. under export/checkpoints/)
                "checkpoint": {"file": Path(checkpoint).name, "sha256": sha256_file(Path(checkpoint))},
                # a pair names the two checkpoints it joined, a warm start the file it started from
                **({"pair": state["pair"]} if state.get("pair") else {}),
                **({"whitened": state["whitened"]} if state.get("whitened") else {}),
                **({"init": init_provenance(cfg.init)} if cfg.init else {}),
                "distill": cfg.distill.teachers,
                "corpora": [c.path for c in cfg.corpora], "validation": state.get("validation", {}),
                "calibration": str(calibration),
            },
        }
        write_manifest(stage, manifest)
        if fsdd and Path(fsdd).exists():  # the numbers at export time travel with the bundle
            bench = run_bench(stage, fsdd, episodes=300, baseline=False, verbose=False)
            manifest["provenance"]["benchmark_fsdd_300_episodes"] = {
                f"{system} {proto}": round(e.mean, 4) for system, row in bench.rows.items() for proto, e in row.items()}
            write_manifest(stage, manifest)
            step("fsdd bench")
        if not keep_fp32:
            (stage / files[0]["file"]).unlink()
            manifest["encoder"]["files"] = files[1:]
            write_manifest(stage, manifest)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(stage, out)
    bundle = Bundle.open(out)
    report.bundle_id = bundle.bundle_id
    report.files = {k: v["bytes"] for k, v in bundle.manifest["files"].items()}
    if tar:
        write_tar(out, out.with_suffix(".tar"))
    step("write")
    bar.close()
    return report


def _open_encoder(stage: Path, files: list[dict], fmt: tuple[str, str], outputs: list[str]):
    """The backend of one encoder format, (backend, precision), from the manifest's file entries (one TFLite file;
    one ONNX file or one per output)."""
    entries = [e for e in files if (e["backend"], e["precision"]) == fmt]
    if entries[0]["backend"] == "tflite":
        from edge_meta.device.tflite_backend import TfliteBackend

        return TfliteBackend(stage / entries[0]["file"], outputs=outputs)
    return OnnxBackend([stage / e["file"] for e in entries])
