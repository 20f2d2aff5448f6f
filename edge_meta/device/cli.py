"""`edge-meta device ...`: enrollment, detection and the profile store, from the shell (no torch)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edge_meta.errors import StoreError


def default_store() -> Path:
    """$EDGE_META_STORE, else $XDG_DATA_HOME/edge-meta/profiles.db (~/.local/share/...)."""
    if os.environ.get("EDGE_META_STORE"):
        return Path(os.environ["EDGE_META_STORE"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "edge-meta" / "profiles.db"


def _open(args: argparse.Namespace):
    from edge_meta.device.runtime import Runtime

    store = Path(args.store) if args.store else default_store()
    if not args.store:
        store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Runtime.open(args.bundle, store=store, backend=args.backend, precision=args.precision)


def _enroll_word(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        w = rt.enroll_word(args.word, args.takes, user=args.user or "", keep_audio=not args.no_keep_audio)
    print(f"enrolled {w.label!r}" + (f" for {w.user}" if w.user else "") + f" from {w.takes} takes: "
          f"threshold {w.calibration.threshold:.3f}, take consistency {w.calibration.consistency:.3f}")
    if w.calibration.consistency < w.calibration.threshold:
        print("note: one take is unlike the others; consider re-recording it for fewer misses")
    return 0


def _detect(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        if not rt.store.words():
            raise StoreError(f"no words are enrolled in {rt.store.path}",
                             "enroll one first: edge-meta device enroll-word WORD --from a.wav b.wav c.wav")
        detections = rt.detect_file(args.file)
    for d in detections:
        if args.json:
            print(json.dumps({"event": "word", "word": d.label, "user": d.user or None, "score": round(d.score, 4),
                              "start_s": round(d.start_s, 2), "end_s": round(d.end_s, 2)}))
        else:
            print(f"{d.start_s:7.2f}-{d.end_s:6.2f} s  {d.label}" + (f" ({d.user})" if d.user else "") + f"  score {d.score:.3f}")
    if not detections and not args.json:
        print("no enrolled word detected (unknown)")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        words = rt.store.words()
    if not words:
        print("no words enrolled")
    for w in words:
        print(f"{w.label}" + (f" (user {w.user})" if w.user else "") + f": {len(w.embeddings)} takes, threshold {w.threshold:.3f}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        rt.remove_word(args.word, args.user or "")
    print(f"removed {args.word!r}")
    return 0


def add_device_parser(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser("device", help="on the device: enroll words, detect them, manage profiles (no torch)")
    dsub = dev.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bundle", help="bundle directory or .tar (default: the one shipped with edge-meta)")
        p.add_argument("--store", help=f"profile store (default: $EDGE_META_STORE or {default_store()})")
        p.add_argument("--backend", default="onnx", choices=["onnx"], help="encoder runtime")
        p.add_argument("--precision", default="int8", choices=["int8", "fp32"])

    e = dsub.add_parser("enroll-word", help="teach a new word from a few recordings of it")
    e.add_argument("word", help='the word or phrase, e.g. "lights on"')
    e.add_argument("--from", dest="takes", nargs="+", required=True, metavar="AUDIO",
                   help="3-5 recordings of the word (WAV/FLAC, any rate; resampled to 16 kHz)")
    e.add_argument("--user", help="whose word this is")
    e.add_argument("--no-keep-audio", action="store_true",
                   help="store only embeddings (a new model will then need re-enrollment)")
    common(e)
    e.set_defaults(func=_enroll_word)

    d = dsub.add_parser("detect", help="find enrolled words in a recording")
    d.add_argument("file", help="WAV/FLAC recording")
    d.add_argument("--json", action="store_true", help="one JSON event per line")
    common(d)
    d.set_defaults(func=_detect)

    ls = dsub.add_parser("list", help="show enrolled words")
    common(ls)
    ls.set_defaults(func=_list)

    rm = dsub.add_parser("remove", help="forget an enrolled word")
    rm.add_argument("word")
    rm.add_argument("--user")
    common(rm)
    rm.set_defaults(func=_remove)
