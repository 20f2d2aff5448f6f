"""The trunk flavour (issue 14 §2, a second bundle flavour for Pi 5 / Jetson, never instead of the tiny default)
beside the shipped tiny bundle, on issue 14's bars.

    nice .venv/bin/python benchmarks/trunk_flavour.py [--bundle DIR] [--episodes 1000] [--write]

`edge-meta export-trunk` builds the flavour from the shipped bundle (Google's speech_embedding trunk, static int8,
with a within-word whitening head fitted on the word_distil recipe's corpora: never FSDD, never the Speech
Commands digits, never a validation speaker; fused with the shipped tiny word graph, and Resemblyzer's GE2E fused
with the shipped speaker graph); this measures it as the device runs it (the bundle's int8 ONNX
graphs through edge-meta's worker) with the peers comparison's own harness: the same clip sets, episodes,
open-set, speaker-EER and noisy protocols as benchmarks/training_progress.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from device_results import stamp  # noqa: E402
from results_md import write_section  # noqa: E402
from training_progress import metrics, table  # noqa: E402

from edge_meta.bundle import Bundle  # noqa: E402
from edge_meta.resources import default_bundle_path  # noqa: E402

ROOT = HERE.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(ROOT / "cache" / "trunk" / "bundle"),
                   help="the trunk-flavour bundle (made with `edge-meta export-trunk` when missing)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding fsdd/ and the others")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=str(ROOT / "cache" / "peers"), help="the harness's embedding cache")
    p.add_argument("--write", action="store_true", help="update the trunk-flavour section of benchmarks/RESULTS.md")
    args = p.parse_args()
    trunk = Path(args.bundle)
    if not (trunk / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "edge_meta.cli", "export-trunk", "--out", str(trunk)], check=True)
    bundles = {"tiny (shipped)": default_bundle_path(), "trunk": trunk}
    rows = {}
    for name, bundle in bundles.items():
        b = Bundle.open(bundle)
        size = sum(path.stat().st_size for path, _ in b.encoder_files("onnx", "int8"))
        print(f"measuring {name} bundle {b.bundle_id} ...", flush=True)
        rows[f"{name} {b.bundle_id}, int8 ONNX {size / 1e6:.2f} MB"] = metrics(bundle, args)
        b.close()
    text = (f"% (EER: %, lower is better); {args.episodes} episodes, seed {args.seed}; int8 ONNX as the device runs "
            "it; ✓: meets issue 14's bar.\n\n" + table(rows))
    print(text)
    if args.write:
        write_section("trunk-flavour", "### Trunk flavour on issue 14's bars (speech_embedding + within-word head beside the "
                      "tiny word graph; GE2E beside the tiny speaker graph)\n\n"
                      f"{stamp()}.\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
