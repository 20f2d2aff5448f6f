"""`edge-meta device ...`: enroll words and voices, detect, run the daemon, manage profiles (no torch)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edge_meta.errors import ConfigError, StoreError

DEVICE_EXAMPLES = """\
examples:
  edge-meta device enroll-word "lights on" --user alice          say it 5 times after the tone
  edge-meta device enroll-word unlock --user alice --bind        only alice's voice can trigger it
  edge-meta device enroll-voice alice                            read 3 sentences aloud
  edge-meta device enroll-word five --from a.wav b.wav c.wav     from recordings instead of the microphone
  edge-meta device run --config /etc/edge-meta/device.toml       the daemon: JSON events on stdout and a socket
  arecord -q -f S16_LE -r 16000 -c 1 -t raw | edge-meta device run --input -
  edge-meta device wyoming --uri tcp://127.0.0.1:10400         wake words for Home Assistant (Wyoming)
  edge-meta device detect recording.wav --json
  edge-meta device list
  edge-meta device forget-user alice --yes                       delete all of alice's data
"""


STORE_RETRY_S = 5.0  # a service waits this long between tries to open a busy store


def default_store() -> Path:
    """$EDGE_META_STORE, else $XDG_DATA_HOME/edge-meta/profiles.db (~/.local/share/...)."""
    if os.environ.get("EDGE_META_STORE"):
        return Path(os.environ["EDGE_META_STORE"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "edge-meta" / "profiles.db"


def _threads(value: str) -> int:
    """--threads as device.toml's [runtime] threads takes it (0 was taken here, and quietly meant 1)."""
    from edge_meta.device.backends import MAX_THREADS

    if not value.isdigit() or not 1 <= int(value) <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_THREADS}, got {value!r} (1 keeps a Pi responsive)")
    return int(value)


def _open(args: argparse.Namespace, bundle: str | None = None, store: str | None = None):
    from edge_meta.device.runtime import Runtime

    store = args.store or store
    path = Path(store) if store else default_store()
    if not store:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except PermissionError as exc:
            raise StoreError(f"cannot make the profile store's folder {path.parent}: permission denied at "
                             f"{exc.filename}", "point EDGE_META_STORE (or --store) at a file in a folder this user "
                             "may write, e.g. EDGE_META_STORE=/var/lib/edge-meta/profiles.db") from None
    return Runtime.open(args.bundle or bundle, store=path, backend=args.backend or "onnx",
                        precision=args.precision or "int8", threads=args.threads or 1)


def _open_service(args: argparse.Namespace, cfg):
    """`_open` for the daemon and the Wyoming service: a store another program holds write-locked (a long import)
    is waited out, with a log line every try, instead of exiting with the code systemd does not restart."""
    import logging
    import time

    from edge_meta.errors import StoreBusy

    while True:
        try:
            return _open(args, bundle=cfg.bundle, store=cfg.store)
        except StoreBusy as exc:
            logging.getLogger("edge_meta.device").warning("store_busy", extra={"fields": {
                "error": exc.message, "retry_s": STORE_RETRY_S}})
            time.sleep(STORE_RETRY_S)


def _source(spec: str, realtime: bool = False, mic_device: str | int | None = None, block_s: float = 0.1):
    from edge_meta.device.sources import Microphone, StdinSource, WavSource

    if spec == "mic":
        return Microphone(_device(mic_device), chunk_s=block_s)
    if spec == "-":
        return StdinSource(chunk_s=block_s)
    return WavSource(spec, chunk_s=block_s, realtime=realtime)


def _device(value: str | int | None) -> str | int | None:
    """A PortAudio device given as its index ("2") or (part of) its name."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value or None


def _prompter(rt, args: argparse.Namespace):
    from edge_meta.device.prompts import Prompter
    from edge_meta.device.sources import Microphone

    source = _source(args.input, mic_device=args.mic_device)
    tone = source.beep if isinstance(source, Microphone) else None
    return Prompter(rt, source, sys.stdout, tone=tone)


def _refuse_before_prompting(args: argparse.Namespace, name: str, what: str) -> None:
    """Enrollment's own checks of the name, target and take count, made before anyone is asked to speak: made
    only by the runtime, they would refuse 51 takes after all 51 were recorded."""
    from edge_meta.device.limits import check_false_accept, check_name, check_take_count

    check_name(name, what)
    check_false_accept(args.false_accept)
    if not args.takes_from:
        check_take_count(args.takes, repr(name))


def _enroll_word(args: argparse.Namespace) -> int:
    _refuse_before_prompting(args, args.word, "word")
    with _open(args) as rt:
        if args.takes_from:
            takes = args.takes_from
        else:
            prompter = _prompter(rt, args)  # opens the microphone first: a missing one is reported before any prompt
            print(f"Enrolling '{args.word}'" + (f" for {args.user}" if args.user else "") +
                  f": {args.takes} takes. Speak as you will when using it, about an arm's length from the microphone.")
            takes = prompter.word_takes(args.word, args.takes, args.user or "", args.false_accept)
        w = rt.enroll_word(args.word, takes, user=args.user or "", keep_audio=not args.no_keep_audio,
                           false_accept=args.false_accept, bind_speaker=args.bind, force=args.force)
        kind = rt.head_kind if rt.open_set else f"{rt.head_kind} head, gated by the prototype cosine"
        voices = [v.user for v in rt.store.voices()]
    c = w.calibration
    print(f"enrolled {w.label!r}" + (f" for {w.user}" if w.user else "") + f" from {w.takes} takes"
          + (f", bound to {w.speaker}'s voice" if w.speaker else ""))
    print(f"  threshold {c.threshold:.3f} ({kind}); {c.false_accept:.0%} of background speech scores above "
          f"{c.background_score:.3f}")
    if c.held_out is not None:
        print(f"  each take scored against the others: median {c.held_out:.3f}, lowest {c.consistency:.3f}")
    if c.capped:
        print(f"  note: forced below the {c.false_accept:.1%} false-accept point ({c.safe_threshold:.3f}) because the "
              f"takes disagree: {c.background_rate:.1%} of background speech scores above the threshold; "
              "re-enroll with takes said the same way")
    if c.odd:
        print("  note: forced with takes unlike the others: " + ", ".join(str(args.takes_from[i]) if args.takes_from
                                                                          else f"take {i + 1}" for i in c.odd))
    if args.no_keep_audio:
        print("  note: without its kept takes this word is not template-checked, so expect more false accepts")
    if w.speaker and w.speaker not in voices:
        print(f"  note: enroll {w.speaker}'s voice before this word can fire: edge-meta device enroll-voice {w.speaker}")
    return 0


def _enroll_voice(args: argparse.Namespace) -> int:
    _refuse_before_prompting(args, args.user, "user name")
    with _open(args) as rt:
        if args.takes_from:
            takes = args.takes_from
        else:
            prompter = _prompter(rt, args)
            print(f"Enrolling {args.user}'s voice: {args.takes} sentences, in your normal voice.")
            takes = prompter.voice_takes(args.user, args.takes)
        v = rt.enroll_voice(args.user, takes, keep_audio=not args.no_keep_audio, false_accept=args.false_accept)
        source = "speaker embedding" if rt.speaker_output == "speaker" else "word embedding (no speaker head in this bundle)"
    c = v.calibration
    print(f"enrolled {v.user}'s voice from {v.takes} takes: threshold {c.threshold:.3f} ({source}; "
          f"{c.false_accept:.0%} of background speech scores above {c.background_score:.3f})")
    return 0


def _enroll_command(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        profile = rt.enroll_command(args.phrases, user=args.user or "", command=args.command)
    who = f" for {args.user}" if args.user else ""
    for example in profile.examples[-len(args.phrases):]:
        print(f"{' '.join(example.words)!r} -> {example.command.name}")
    print(f"{len(profile.examples)} example phrasings stored{who}; the daemon's command decoder adapts to them")
    return 0


def _device_config(args: argparse.Namespace):
    """device.toml from --config (or its defaults), its [runtime] filling the encoder options not given here."""
    from edge_meta.device.config import DeviceConfig, load_config

    cfg = load_config(args.config) if args.config else DeviceConfig()
    for attr in ("backend", "precision", "threads"):
        if getattr(args, attr) is None:
            setattr(args, attr, getattr(cfg, attr))
    return cfg


def _detect(args: argparse.Namespace) -> int:
    cfg = _device_config(args)
    with _open(args, bundle=cfg.bundle, store=cfg.store) as rt:
        if not rt.vocabulary()[0].keys:
            raise StoreError(f"no words are enrolled in {rt.store.path}",
                             "enroll one first: edge-meta device enroll-word WORD --from a.wav b.wav c.wav")
        detections = rt.detect_file(args.file, cfg.detector)
    for d in detections:
        if args.json:
            print(json.dumps(d.to_event()))
        else:
            who = f"  speaker {d.speaker or 'unknown'} ({d.speaker_score:.3f})" if d.speaker_score is not None else ""
            print(f"{d.start_s:7.2f}-{d.end_s:6.2f} s  {d.label}" + (f" ({d.user})" if d.user else "")
                  + f"  score {d.score:.3f}{who}")
    if not detections and not args.json:
        print("no enrolled word detected (unknown)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from edge_meta.device import logs
    from edge_meta.device.daemon import Daemon

    cfg = _device_config(args)
    for attr, value in (("input", args.input), ("socket", args.socket), ("mic_device", args.mic_device),
                        ("log_level", args.log_level)):
        if value is not None:
            setattr(cfg, attr, value)
    logs.setup(cfg.log_level)
    with _open_service(args, cfg) as rt:
        return Daemon(rt, _source(cfg.input, args.realtime, cfg.mic_device, cfg.block_s), cfg).run()


def _wyoming(args: argparse.Namespace) -> int:
    from edge_meta.device import logs
    from edge_meta.device.wyoming_service import serve

    cfg = _device_config(args)
    for attr, value in (("wyoming_uri", args.uri), ("log_level", args.log_level)):
        if value is not None:
            setattr(cfg, attr, value)
    cfg.wyoming_lan = cfg.wyoming_lan or args.lan
    cfg.wyoming_zeroconf = cfg.wyoming_zeroconf or args.zeroconf
    logs.setup(cfg.log_level)
    with _open_service(args, cfg) as rt:
        return serve(rt, cfg)


def _list(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        words, voices, users = rt.store.words(), rt.store.voices(), rt.store.users()
        current = rt.bundle.bundle_id
        cal = rt.calibrations()
    if args.json:
        print(json.dumps({
            "users": users,
            "words": [{"word": w.label, "user": w.user or None, "bound_to": w.speaker, "takes": len(w.embeddings),
                       "threshold": round(w.threshold, 4), "false_accept": w.false_accept,
                       "background_rate": round(cal[w.key].background_rate, 4) if w.key in cal else None,
                       "current": all(b == current for b in w.bundle_ids)} for w in words],
            "voices": [{"user": v.user, "takes": len(v.embeddings), "threshold": round(v.threshold, 4)} for v in voices]}))
        return 0
    if not words and not voices:
        print("nothing enrolled")
    for w in words:
        stale = "" if all(b == current for b in w.bundle_ids) else "  (enrolled with another model: enroll it again)"
        print(f"word  {w.label}" + (f" (user {w.user})" if w.user else "") + (f" [only {w.speaker}'s voice]" if w.speaker else "")
              + f": {len(w.embeddings)} takes, threshold {w.threshold:.3f} {_rate(w, cal.get(w.key))}{stale}")
    for v in voices:
        print(f"voice {v.user}: {len(v.embeddings)} takes, threshold {v.threshold:.3f}")
    return 0


def _rate(word, c) -> str:
    """The false accepts a stored threshold stands for: its target, or what the background bank measures when the
    threshold was forced below the target's point."""
    if c is not None and word.threshold < c.safe_threshold:
        return (f"forced below its {word.false_accept:.1%} false-accept point ({c.safe_threshold:.3f}): "
                f"{c.background_rate:.1%} of background speech scores above it")
    return f"at {word.false_accept:.1%} false accepts"


def _remove(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        if args.voice:
            rt.remove_voice(args.voice)
            print(f"removed {args.voice}'s voice")
            return 0
        if not args.word:
            raise ConfigError("nothing to remove", "give a WORD (and --user), or --voice USER")
        rt.remove_word(args.word, args.user or "")
    print(f"removed {args.word!r}" + (f" of {args.user}" if args.user else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    from edge_meta.device.profile_file import export_profile

    if Path(args.file).exists() and not _confirm(f"{args.file} exists. Replace it?",
                                                 f"{args.file} exists: exporting would replace it", args.yes):
        print("nothing exported")
        return 0
    with _open(args) as rt:
        n = export_profile(rt.store, args.file, args.user)
    print(f"exported {n['words']} words, {n['voices']} voices, {n['command profiles']} command phrasings of "
          f"{n['users']} users to {args.file} (keep it private: "
          "it holds voice recordings)")
    return 0


def _import(args: argparse.Namespace) -> int:
    with _open(args) as rt:
        profile = rt.plan_import(args.file)
        for reason in profile.rejected:
            print(f"not imported: {reason}", file=sys.stderr)
        replaced = profile.replaces(rt.store)
        if replaced:
            print(f"{args.file} replaces what is enrolled here:\n" + "\n".join(f"  {r}" for r in replaced))
            if not _confirm("Replace them?", f"importing {args.file} replaces {len(replaced)} enrolled entries", args.yes):
                print("nothing imported")
                return 0
        n = rt.import_profile(profile, replace=True)
    print(f"imported {n['words']} words, {n['voices']} voices, {n['command profiles']} command phrasings of "
          f"{n['users']} users from {args.file}" + (f"; {len(profile.rejected)} entries left out (above)"
                                                    if profile.rejected else ""))
    return 1 if profile.rejected else 0


def _confirm(question: str, what: str, yes: bool) -> bool:
    """True with --yes, or when the person at the terminal says yes; without a terminal, refused with the fix."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(what, "add --yes to confirm")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _forget(args: argparse.Namespace) -> int:
    if not _confirm(f"Delete all of {args.name}'s words, voice and recordings?",
                    f"forgetting {args.name} deletes all of their words, voice and recordings", args.yes):
        print("nothing deleted")
        return 0
    with _open(args) as rt:
        n = rt.forget_user(args.name)
    print(f"forgot {args.name}: {n['words']} words and {n['voices']} voices deleted, store compacted")
    return 0


def add_device_parser(sub: argparse._SubParsersAction) -> None:
    from edge_meta.device.backends import BACKENDS

    dev = sub.add_parser("device", help="on the device: enroll words and voices, detect, run the daemon (no torch)",
                         description="Everything that runs on the device (numpy + onnxruntime, never torch).",
                         epilog=DEVICE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = dev.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bundle", help="bundle directory or .tar (default: the one shipped with edge-meta)")
        p.add_argument("--store", help=f"profile store (default: $EDGE_META_STORE or {default_store()})")
        p.add_argument("--backend", choices=list(BACKENDS), help="encoder runtime (default onnx)")
        p.add_argument("--precision", choices=["int8", "fp32"], help="encoder precision (default int8)")
        p.add_argument("--threads", type=_threads, help="encoder threads (default 1: leaves the other cores to audio)")

    def capture(p: argparse.ArgumentParser, takes: int, what: str) -> None:
        p.add_argument("--from", dest="takes_from", nargs="+", metavar="AUDIO",
                       help=f"{what} from recordings (WAV/FLAC, any rate; resampled to 16 kHz) instead of prompting")
        p.add_argument("--takes", type=int, default=takes, help=f"takes to record when prompting (default {takes})")
        p.add_argument("--input", default="mic",
                       help="where prompted takes come from: mic (default), or a recording holding them one after another")
        p.add_argument("--mic-device", help="PortAudio input device, by index or name (default: the system's)")
        p.add_argument("--false-accept", type=float, default=0.01,
                       help="target share of other speech that may pass the threshold (default 0.01)")
        p.add_argument("--no-keep-audio", action="store_true",
                       help="store only embeddings: a new model will then need re-enrollment, and a word is then "
                            "not template-checked against its takes (more false accepts)")

    fmt = argparse.RawDescriptionHelpFormatter
    e = dsub.add_parser("enroll-word", help="teach a word: prompted at the microphone, or --from recordings",
                        formatter_class=fmt, description=(
                            "Teach the device a word or short phrase from a few takes. Without --from it prompts:\n"
                            "\"Say 'lights on' after the tone (2/5)\", shows a level meter, cuts each take at the end of\n"
                            "your speech, and asks for a retake when one is too quiet, clipped, too short or long, or\n"
                            "unlike the others. Then it calibrates the word's threshold against background speech."))
    e.add_argument("word", help='the word or phrase, e.g. "lights on"')
    e.add_argument("--user", help="whose word this is (several users may enroll the same word)")
    e.add_argument("--bind", action="store_true", help="fire only when --user's enrolled voice says it")
    e.add_argument("--force", action="store_true",
                   help="enroll even a take unlike the others, or takes too unlike each other for the false-accept "
                        "target (the threshold is then lowered: more false accepts)")
    capture(e, 5, "the takes")
    common(e)
    e.set_defaults(func=_enroll_word)

    v = dsub.add_parser("enroll-voice", help="teach a user's voice (who spoke), prompted or --from recordings",
                        formatter_class=fmt, description=(
                            "Teach the device a user's voice from a few sentences, so detections say who spoke and\n"
                            "words enrolled with --bind fire only for that voice."))
    v.add_argument("user", help="the user's name, e.g. alice")
    capture(v, 3, "voice takes")
    common(v)
    v.set_defaults(func=_enroll_voice)

    c = dsub.add_parser("enroll-command", help="teach how you phrase commands made of enrolled words",
                        formatter_class=fmt, description=(
                            "Give a few example phrasings of commands; the bundle's command language model adapts\n"
                            "to them (Meta Networks) and the daemon turns word detections into command events.\n"
                            'example: edge-meta device enroll-command "kitchen lights off" "lights on in the kitchen"'))
    c.add_argument("phrases", nargs="+", help="example phrases, each quoted")
    c.add_argument("--command", help="the command they all mean (an intent, e.g. lights_off) when the grammar "
                   "cannot tell")
    c.add_argument("--user", help="whose phrasing this is")
    common(c)
    c.set_defaults(func=_enroll_command)

    d = dsub.add_parser("detect", help="find enrolled words in a recording")
    d.add_argument("file", help="WAV/FLAC recording")
    d.add_argument("--json", action="store_true", help="one JSON event per line")
    d.add_argument("--config", help="device.toml: its [runtime] and [detector] apply, as in the daemon (options given "
                   "here win), so a tuning can be tried on a recording first")
    common(d)
    d.set_defaults(func=_detect)

    r = dsub.add_parser("run", help="the daemon: listen and emit JSON events (stdout, Unix socket, commands)",
                        formatter_class=fmt, description=(
                            "Listen until SIGTERM. Each detection is one JSON line on stdout and on the --socket:\n"
                            '  {"event": "word", "word": ..., "score": ..., "speaker": ..., "speaker_score": ..., "t": ...}\n'
                            "Logs are JSON lines on stderr. Commands per word come from --config ([[commands]])."))
    r.add_argument("--input", help="mic (default), a WAV/FLAC file, or - for raw s16le 16 kHz mono PCM on stdin")
    r.add_argument("--config", help="device.toml (example: device/device.toml); options given here override it")
    r.add_argument("--socket", help="also serve events on this Unix socket (its directory is made private)")
    r.add_argument("--mic-device", help="PortAudio input device, by index or name")
    r.add_argument("--realtime", action="store_true", help="play a file input at real-time pace, like a microphone")
    r.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    common(r)
    r.set_defaults(func=_run)

    w = dsub.add_parser("wyoming", help="serve the enrolled words to Home Assistant as a Wyoming wake-word service",
                        formatter_class=fmt, description=(
                            "A Wyoming wake-word service (Home Assistant: Settings > Devices > Add integration >\n"
                            "Wyoming Protocol, this host and port). Its wake models are the enrolled words; each\n"
                            "detection names the enrolled voice that said it. Runs until SIGTERM. Wyoming has no\n"
                            "authentication: it binds to loopback unless --lan (see SECURITY.md)."))
    w.add_argument("--uri", help="where to listen (default tcp://127.0.0.1:10400)")
    w.add_argument("--lan", action="store_true", help="allow a --uri beyond loopback, e.g. tcp://0.0.0.0:10400")
    w.add_argument("--zeroconf", action="store_true", help="announce the service over mDNS for Home Assistant's "
                   "discovery (needs --lan and the zeroconf package)")
    w.add_argument("--config", help="device.toml: [wyoming], [runtime], [detector] and [input] block_s apply; "
                   "options given here win")
    w.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    common(w)
    w.set_defaults(func=_wyoming)

    ls = dsub.add_parser("list", help="show users, enrolled words and voices")
    ls.add_argument("--json", action="store_true")
    common(ls)
    ls.set_defaults(func=_list)

    rm = dsub.add_parser("remove", help="forget an enrolled word (or, with --voice, a voice)")
    rm.add_argument("word", nargs="?")
    rm.add_argument("--user", help="the word's user")
    rm.add_argument("--voice", metavar="USER", help="remove this user's voice instead of a word")
    common(rm)
    rm.set_defaults(func=_remove)

    ex = dsub.add_parser("export-profile", help="write profiles to a portable file (JSON; backup or another device)")
    ex.add_argument("file")
    ex.add_argument("--user", help="only this user's words and voice")
    ex.add_argument("--yes", action="store_true", help="replace an existing FILE without asking")
    common(ex)
    ex.set_defaults(func=_export)

    im = dsub.add_parser("import-profile", help="add profiles from a file written by export-profile: each entry is "
                         "checked and embedded again, and what it replaces is listed and confirmed; exit 1 when "
                         "entries were left out")
    im.add_argument("file")
    common(im)
    im.add_argument("--yes", action="store_true", help="replace enrolled words, voices and phrasings without asking")
    im.set_defaults(func=_import)

    fu = dsub.add_parser("forget-user", help="delete all of a user's words, voice and recordings from the store")
    fu.add_argument("name")
    fu.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    common(fu)
    fu.set_defaults(func=_forget)
