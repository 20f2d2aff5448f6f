"""`edge-meta data ...`: one subcommand per importer; each prints the counts it wrote."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DATA_EXAMPLES = """\
examples:
  edge-meta data speechocean762 ~/speechocean762 --out cache/corpora/speechocean762 --jobs 2
  edge-meta data speech-commands ~/speech_commands_v0.02 --out cache/corpora/gsc
  edge-meta data mswc ~/mswc --lang en --out cache/corpora/mswc_en
  edge-meta data librispeech ~/LibriSpeech/train-clean-100 --out cache/corpora/libri100
"""


def _print(report: dict) -> int:
    for name, counts in report.items():
        print(f"{name}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    return 0


def _speechocean(args: argparse.Namespace) -> int:
    from edge_meta.importers.speechocean import import_speechocean762

    return _print(import_speechocean762(Path(args.source), Path(args.out), args.jobs, not args.quiet))


def _speech_commands(args: argparse.Namespace) -> int:
    from edge_meta.importers.speech_commands import import_speech_commands

    return _print(import_speech_commands(Path(args.source), Path(args.out), args.jobs, not args.quiet))


def _mswc(args: argparse.Namespace) -> int:
    from edge_meta.importers.mswc import import_mswc

    return _print(import_mswc(Path(args.source), args.lang, Path(args.out), args.jobs, not args.quiet))


def _librispeech(args: argparse.Namespace) -> int:
    from edge_meta.importers.librispeech import import_librispeech

    return _print(import_librispeech(Path(args.source), Path(args.out), args.lexicon, args.jobs, not args.quiet))


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import a downloaded corpus into the layout training reads",
                          description="Turn a local download into <word>/<speaker>_nohash_<n>.flac + SOURCE.md. "
                          "Reruns skip what is done; FSDD's words are never imported into English corpora.",
                          epilog=DATA_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = data.add_subparsers(dest="data_command", metavar="CORPUS", required=True)

    def common(p: argparse.ArgumentParser, source: str) -> None:
        p.add_argument("source", help=source)
        p.add_argument("--out", required=True, help="output corpus folder")
        p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (default: all cores)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    so = dsub.add_parser("speechocean762", help="speechocean762 sentences cut into word clips by forced alignment "
                         "(writes OUT_train and OUT_test)")
    common(so, "the unpacked speechocean762 folder (train/, test/, WAVE/, resource/)")
    so.set_defaults(func=_speechocean)

    sc = dsub.add_parser("speech-commands", help="Google Speech Commands v0.02, full (writes OUT_train and OUT_test "
                         "from its testing_list.txt)")
    common(sc, "the unpacked speech_commands_v0.02 folder (<word>/ folders, testing_list.txt)")
    sc.set_defaults(func=_speech_commands)

    mw = dsub.add_parser("mswc", help="Multilingual Spoken Words, one language (writes OUT_train and OUT_test)")
    common(mw, "the MSWC folder holding <lang>/clips/<word>/*.opus and <lang>_splits.csv")
    mw.add_argument("--lang", required=True, help="language code, e.g. en, de, rw")
    mw.set_defaults(func=_mswc)

    ls = dsub.add_parser("librispeech", help="LibriSpeech-style <speaker>/<chapter>/*.trans.txt folders, cut into "
                         "word clips by forced alignment")
    common(ls, "one split folder, e.g. LibriSpeech/train-clean-100")
    ls.add_argument("--lexicon", help="extra pronunciations, WORD PHONES per line (ARPABET), "
                    "e.g. librispeech-lexicon.txt")
    ls.set_defaults(func=_librispeech)
