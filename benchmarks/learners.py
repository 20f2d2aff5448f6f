"""Every meta-learner on the same episodes (issue 3): each starts from the same meta-trained encoder, is
meta-trained for the same number of episodes, exported (int8 ONNX + its own head) and evaluated through
its device head on FSDD.

    nice -n 10 .venv/bin/python benchmarks/learners.py [--init runs/default/best.pt] [--steps 150] [--write]

Prints the table (`edge-meta bench --learners all` prints the same); with --write it also replaces the
learners section of benchmarks/RESULTS.md together with the machine, date and command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time

from edge_meta.bench.learners import table
from edge_meta.train.learner_bench import bench_learners
from edge_meta.train.learners import LEARNERS
from results_md import write_section


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--learners", default="all", help="'all' or a comma list")
    p.add_argument("--init", default="runs/default/best.pt", help="encoder checkpoint every learner starts from")
    p.add_argument("--config", default="export/recipes/default.toml", help="recipe for data and episode shape")
    p.add_argument("--steps", type=int, default=150, help="meta-training episodes per learner")
    p.add_argument("--episodes", type=int, default=1000, help="evaluation episodes per protocol")
    p.add_argument("--runs", default="runs/learners")
    p.add_argument("--fsdd", default="../shared/data/fsdd")
    p.add_argument("--calibration", default="../shared/data/speech_commands_test")
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args()
    names = sorted(LEARNERS) if args.learners == "all" else [n.strip() for n in args.learners.split(",")]
    start = time.time()
    rows = bench_learners(names, args.config, args.init, args.steps, args.runs, args.fsdd, args.calibration,
                          episodes=args.episodes)
    text = table(rows, args.episodes)
    print(text)
    if args.write:
        cmd = "nice -n 10 .venv/bin/python " + " ".join(["benchmarks/learners.py", *sys.argv[1:]])
        body = (f"Measured {dt.date.today()} on {platform.machine()}, {os.cpu_count()} cores (CPU only, shared with "
                f"other jobs), {(time.time() - start) / 60:.0f} min in all. Each learner: {args.steps} meta-training "
                f"episodes from `{args.init}`, episode shape of `{args.config}` (at most 16-way).\n"
                f"Command: `{cmd}`\n\n{text}")
        write_section("learners", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
