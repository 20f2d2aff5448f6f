"""Where the training stands on issue 14's bars: committed checkpoints, exported as the device gets them.

    nice .venv/bin/python benchmarks/training_progress.py [--pair WORD.pt VOICE.pt ...] [--episodes 300] [--write]

Each --pair (default: the committed `export/checkpoints/{word,voice}_distil/best.pt`) is joined with
`edge-meta pair` and exported with `edge-meta export` (int8 ONNX, what ships) into cache/progress/, then measured
beside the shipped bundle by the peers comparison's own harness (benchmarks/peers_compare.py: the same clip
sets, episodes, open-set and speaker-EER protocols, and the noisy FSDD sets), edge-meta only. The training never
sees FSDD or the Speech Commands digits and selects `best.pt` on its own validation speakers, so these numbers
only report; the bars are issue 14's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from device_results import stamp  # noqa: E402
from peers_compare import run  # noqa: E402
from results_md import write_section  # noqa: E402

from edge_meta.bundle import Bundle  # noqa: E402
from edge_meta.resources import default_bundle_path  # noqa: E402

ROOT = HERE.parent
CHECKPOINTS = ROOT / "export" / "checkpoints"
EDGE_META = "edge-meta int8 ONNX"
# (clip set, metric, bar, higher is better): issue 14's table
BARS = (("FSDD", "household 1-shot", 86.0, True), ("FSDD", "household 5-shot", 92.0, True),
        ("FSDD", "own 1-shot", 96.5, True), ("FSDD", "own 5-shot", 98.7, True),
        ("FSDD", "known acc @ 1% FA", 93.0, True),
        ("Speech Commands digits", "any 1-shot", 81.0, True), ("Speech Commands digits", "any 5-shot", 94.0, True),
        ("FSDD", "EER any word", 10.0, False), ("FSDD", "EER same word", 5.0, False),
        ("FSDD, 2 s 10 dB", "household 5-shot", 80.0, True), ("FSDD, 2 s 5 dB", "household 5-shot", 68.0, True))


def step_of(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True).get("step", -1))


def build(word: Path, voice: Path, name: str, out: Path) -> Path:
    """The int8 bundle the device would get from these two checkpoints (reused when already built)."""
    bundle = out / name
    if not (bundle / "manifest.json").exists():
        paired = out / f"{bundle.name}.pt"
        cli = [sys.executable, "-m", "edge_meta.cli"]
        subprocess.run([*cli, "pair", str(word), str(voice), "--out", str(paired)], check=True)
        subprocess.run([*cli, "export", str(paired), "--out", str(bundle), "--no-bench", "--no-fp32",
                        "--formats", "onnx"], check=True, stdout=subprocess.DEVNULL)
    return bundle


def metrics(bundle: Path, args: argparse.Namespace) -> dict[tuple[str, str], float]:
    """(clip set, metric) -> % for edge-meta's int8 ONNX encoders of ``bundle``."""
    _, _, results, missing = run(bundle, Path(args.data), args.episodes, args.seed, Path(args.cache), True,
                                 log=lambda m: None, snrs=(10.0, 5.0), only=lambda e: e.name == EDGE_META)
    out = {}
    for set_name, by_system in results.items():
        r = by_system.get(EDGE_META)
        if r is None:
            raise SystemExit(f"{bundle}: edge-meta did not run: {'; '.join(missing)}")
        out.update({(set_name, k): 100 * v.mean for k, v in r.fewshot.items()})
        out.update({(set_name, k): 100 * v for k, v in r.open_set.items() if k != "auroc"})
        out.update({(set_name, k): 100 * v for k, v in r.eer.items()})
    return out


def table(rows: dict[str, dict[tuple[str, str], float]]) -> str:
    """A metric a line, a bundle a column: the bar beside what each bundle reaches."""
    lines = ["| clip set: metric | bar | " + " | ".join(rows) + " |", "|---" * (len(rows) + 2) + "|"]
    for s, m, bar, up in BARS:
        cells = [got.get((s, m)) for got in rows.values()]
        cells = ["-" if v is None else f"{v:.1f}" + (" ✓" if (v >= bar if up else v <= bar) else "") for v in cells]
        lines.append(f"| {s}: {m} | {'≥' if up else '≤'} {bar:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", nargs=2, action="append", metavar=("WORD", "VOICE"),
                   help="a word and a speaker checkpoint to export and measure (repeatable; default: the committed "
                        "best.pt of export/checkpoints/word_distil and voice_distil)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding fsdd/ and the others")
    p.add_argument("--episodes", type=int, default=300, help="episodes per few-shot protocol (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=str(ROOT / "cache" / "peers"), help="the harness's embedding cache")
    p.add_argument("--out", default=str(ROOT / "cache" / "progress"), help="where the exported bundles go")
    p.add_argument("--write", action="store_true", help="update the training-progress section of benchmarks/RESULTS.md")
    args = p.parse_args()
    pairs = [tuple(map(Path, pr)) for pr in args.pair] if args.pair else [
        (CHECKPOINTS / "word_distil" / "best.pt", CHECKPOINTS / "voice_distil" / "best.pt")]
    for path in (p_ for pr in pairs for p_ in pr):
        if not path.is_file():
            p.error(f"{path}: no such checkpoint (give the .pt files `edge-meta train` writes)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows = {f"shipped bundle {Bundle.open(default_bundle_path()).bundle_id}": metrics(default_bundle_path(), args)}
    for word, voice in pairs:
        w, v = step_of(word), step_of(voice)
        bundle = build(word, voice, f"{word.parent.name}-{w}_{voice.parent.name}-{v}", Path(args.out))
        print(f"measuring {bundle.name} ...", flush=True)
        rows[f"{word.parent.name} step {w:,} + {voice.parent.name} step {v:,}"] = metrics(bundle, args)
    text = (f"% (EER: %, lower is better); {args.episodes} episodes, seed {args.seed}; ✓: meets issue 14's bar.\n\n"
            + table(rows))
    print(text)
    if args.write:
        write_section("training-progress", "### Training progress on issue 14's bars (int8 ONNX, edge-meta only)\n\n"
                      f"{stamp()}.\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
