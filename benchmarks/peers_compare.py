"""edge-meta side by side with the peers, every protocol, the same clips, one run (issue 8).

    bash benchmarks/peers/install.sh            # once: a venv per peer under benchmarks/peers/.venvs
    nice -n 10 .venv/bin/python benchmarks/peers_compare.py [--bundle DIR] [--episodes 1000] [--no-stream] [--write]

Each system embeds the clips in its own subprocess (peers in their own venvs); embeddings are
cached under cache/peers keyed by clip list, worker code and bundle id, so a rerun only re-embeds
what changed. Prints the tables, then the streaming row (`benchmarks/peers_stream.py` on the streams
of `benchmarks/stream_fsdd.py`; --no-stream skips it); --write replaces the peers and peers-stream
sections of benchmarks/RESULTS.md and writes benchmarks/peers_det.png and peers_stream_det.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from edge_meta.resources import default_bundle_path  # noqa: E402
from peers.datasets import ClipSet, load_sets  # noqa: E402
from peers.evaluate import SetResult, evaluate  # noqa: E402
from peers.lineup import Entry, lineup, to_system  # noqa: E402
from peers.report import STREAM_NOTE, behind, det_plot, table  # noqa: E402
from peers.runner import WorkerError, run_worker  # noqa: E402
from peers.systems import System  # noqa: E402
from peers_stream import SYSTEMS as STREAM_SYSTEMS, stream_row  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
DET_PNG = HERE / "peers_det.png"
BEGIN, END = "<!-- peers:table:begin -->", "<!-- peers:table:end -->"


def run(bundle: Path, data: Path, episodes: int, seed: int, cache: Path, extra: bool,
        log=print, snrs: tuple[float, ...] = (), only: Callable[[Entry], bool] = lambda entry: True,
        ) -> tuple[list[ClipSet], list[System], dict[str, dict[str, SetResult]], list[str]]:
    """Embed, evaluate every system (``only`` those it accepts) on every clip set; also a line for each system
    that could not run, with why."""
    sets = load_sets(data, extra, snrs, seed, cache)
    files = [f for s in sets for f in s.files]
    offsets = np.cumsum([0] + [len(s.items) for s in sets])
    entries, missing = lineup(bundle)
    systems = []
    results: dict[str, dict[str, SetResult]] = {s.name: {} for s in sets}
    for entry in filter(only, entries):
        if not entry.worker.available():
            missing.append(f"{entry.name}: not installed ({entry.worker.python} is missing; run "
                           f"`bash benchmarks/peers/install.sh {entry.install_name}`)")
            continue
        try:
            out = run_worker(entry.worker, files, cache, log)
        except WorkerError as exc:
            missing.append(f"{entry.name}: {exc}")
            continue
        system = to_system(entry, out)
        log(f"evaluating {system.name} ...")
        for clips, lo, hi in zip(sets, offsets[:-1], offsets[1:]):
            word, voice = system.matchers(np.arange(lo, hi))
            if clips.full:
                system.cost["match ms"] = word.match_ms
            results[clips.name][system.name] = evaluate(word, voice, clips, episodes, seed)
        systems.append(system)
    return sets, systems, results, missing


def render(sets: list[ClipSet], systems: list[System], results: dict[str, dict[str, SetResult]], missing: list[str],
           episodes: int, seed: int) -> str:
    parts = []
    for clips in sets:
        shots = ", ".join(f"{m} {k}-shot with {q} queries per word" for m, k, q in clips.fewshot)
        title = (f"**{clips.name}** ({clips.note}; {len(clips.items)} clips). 10-way: {shots}; % mean ± 95% CI over "
                 f"{episodes} episodes, seed {seed}.")
        if clips.full:
            title += (" Open set: 5 of 10 words enrolled (5-shot, own speaker), % of known-word queries accepted and "
                      "right at 1% / 5% of unknown-word queries accepted; AUROC. Speaker EER with 3 enrollment clips.")
        parts.append(table(title, results[clips.name], systems))
    gaps = [f"{clips.name}: {g}" for clips in sets for g in behind(results[clips.name], systems)]
    parts.append("Costs: ms / 1 s window = audio to embedding (or frames), median of 30 one-second clips after "
                 "warm-up, one thread, in the system's own process (EfficientWord-Net pads to its 1.5 s window); "
                 "match ms = one query against 10 words × 5 takes (prototype cosine, or DTW for template systems); "
                 "peak RSS = the worker process's high-water mark after loading the model and embedding 30 windows.")
    parts.append(STREAM_NOTE)
    parts.append("Where edge-meta trails the best peer:\n" + ("\n".join(f"- {g}" for g in gaps) or "- nowhere"))
    parts.append("Systems that did not run:\n" + ("\n".join(f"- {m}" for m in missing) or "- none"))
    versions = [f"{s.name}: {s.info.get('package')}, {s.info.get('models')}" for s in systems]
    parts.append("Versions: " + "; ".join(versions))
    return "\n\n".join(parts)


def write_results(body: str, command: str) -> None:
    """Replace the generated block inside the peers section of RESULTS.md (the prose around it stays)."""
    stamp = (f"Measured {dt.date.today()} on {platform.machine()}, {os.cpu_count()} cores "
             f"({platform.processor() or platform.system()}), shared with a training job.\nCommand: `{command}`")
    block = f"{BEGIN}\n{stamp}\n\n{body}\n{END}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (text.rstrip() + "\n\n<!-- peers:begin -->\n## Side by side with the peers (issue 8)\n\n"
                + block + "\n<!-- peers:end -->\n")
    RESULTS.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(default_bundle_path()), help="bundle to measure (default: the shipped one)")
    p.add_argument("--data", default="../shared/data", help="folder holding fsdd/ and the other corpora")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="cache/peers")
    p.add_argument("--fsdd-only", action="store_true", help="skip the Speech Commands and Arabic rows")
    p.add_argument("--snr", type=float, nargs="*", default=[10.0, 5.0],
                   help="FSDD in real noise at these SNRs (dB), beside the same takes padded clean (none: --snr)")
    p.add_argument("--stream-minutes", type=float, default=40.0,
                   help="each speaker's stream for the streaming row (benchmarks/peers_stream.py; default 40)")
    p.add_argument("--no-stream", action="store_true", help="skip the streaming row (its peers run ~40 min uncached)")
    p.add_argument("--write", action="store_true", help=f"update {RESULTS.name} and write {DET_PNG.name}")
    args = p.parse_args()
    sets, systems, results, missing = run(Path(args.bundle), Path(args.data), args.episodes, args.seed,
                                          Path(args.cache), not args.fsdd_only, snrs=tuple(args.snr))
    body = render(sets, systems, results, missing, args.episodes, args.seed)
    print(body)
    command = "nice -n 10 .venv/bin/python " + " ".join(["benchmarks/peers_compare.py", *sys.argv[1:]])
    if args.write:
        write_results(body, command)
        det_plot(results[sets[0].name], systems, DET_PNG, f"{sets[0].name}: DET curves, {args.episodes} episodes")
        print(f"wrote {RESULTS} and {DET_PNG}")
    if not args.no_stream:
        stream_row(Path(args.data) / "fsdd", args.stream_minutes, args.seed, [s.key for s in STREAM_SYSTEMS],
                   Path(args.cache).parent / "peers_stream", args.write, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
