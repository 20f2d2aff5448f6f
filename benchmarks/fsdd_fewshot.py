"""FSDD few-shot table (DESIGN.md protocol rows 1-2 + cost): edge-meta fp32 vs int8 and MFCC+DTW.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/fsdd_fewshot.py [--bundle DIR] [--episodes 1000] [--write]
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/fsdd_fewshot.py --snr 10 5 --no-baseline [--write]

Prints the table; with --write it also replaces the table in benchmarks/RESULTS.md (between the
fsdd-fewshot markers, or fsdd-noisy ones for a run with --snr) together with the machine, date and command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from edge_meta.bench.fewshot import run_bench  # noqa: E402
from results_md import write_section  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="bundle to measure (default: the shipped one)")
    p.add_argument("--fsdd", default="../shared/data/fsdd")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr", type=float, nargs="*", default=[],
                   help="also the noisy protocol: clips padded to 2 s, real evaluation-only noise at these SNRs (dB)")
    p.add_argument("--no-baseline", action="store_true", help="skip the MFCC+DTW row (its distance matrix is slow uncached)")
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args()
    result = run_bench(args.bundle, args.fsdd, episodes=args.episodes, seed=args.seed, snrs=tuple(args.snr),
                       baseline=not args.no_baseline)
    if args.write:
        cmd = "OPENBLAS_NUM_THREADS=1 .venv/bin/python " + " ".join(["benchmarks/fsdd_fewshot.py", *sys.argv[1:]])
        body = (f"Measured {dt.date.today()} on {platform.machine()}, {os.cpu_count()} cores ({result.meta['machine']}), "
                f"bundle `{result.meta['bundle']}`.\nCommand: `{cmd}`\n\n{result.table()}")
        write_section("fsdd-noisy" if args.snr else "fsdd-fewshot", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
