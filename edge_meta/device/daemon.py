"""`edge-meta device run`: listen for the enrolled words until told to stop, and tell everyone.

Each detection becomes one JSON line on stdout, e.g.

    {"event": "word", "word": "lights on", "user": "alice", "score": 0.93, "speaker": "alice",
     "speaker_score": 0.71, "t": 12.35, "start_s": 11.85, "end_s": 12.85, "time": 1795000000.123}

(``t``/``start_s``/``end_s``: seconds since the daemon started listening; ``time``: Unix time of the
event), the same line goes to every client of the Unix socket, and a configured command for the word
runs (`edge_meta.device.hooks`): an argument list started without a shell, given the event's JSON on its
stdin, never the audio-derived strings on its command line. Logs are JSON lines on stderr. SIGTERM,
SIGINT or SIGQUIT stop it cleanly (socket removed, hooks ended, store and bundle closed, exit 0); SIGHUP
re-reads the store, SIGUSR1/SIGUSR2 are logged. A bad chunk of audio (NaN, a failed encoder call) is
logged and skipped; detection carries on.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import sys
import time
from typing import TextIO


from edge_meta.commands.decoding import CommandDecoder
from edge_meta.device.commands import CommandProfile
from edge_meta.device.config import CommandRule, DeviceConfig
from edge_meta.device.detector import StreamingDetector
from edge_meta.device.event_socket import EventSocket
from edge_meta.device.hooks import Commands
from edge_meta.device.listening import RepeatedErrors, enrolled_vocabulary, guarded_process, peak_rss_mb
from edge_meta.device.runtime import Runtime
from edge_meta.device.sources import AudioSource
from edge_meta.device.stdout_writer import StdoutWriter
from edge_meta.errors import EdgeMetaError

log = logging.getLogger("edge_meta.device")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)  # stop cleanly: socket, bundle copy, hooks, log
NOTED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)  # logged (SIGHUP: the store re-read), never fatal


def warn_unmatched(rules: list[CommandRule], words: list[tuple[str, str]], voices: list[str],
                   command_profiles) -> None:
    """Logs each configured command that nothing enrolled can trigger (a misspelt word, speaker or command), with
    what is enrolled: accepted silently, such a rule would simply never run."""
    labels = sorted({label for label, _ in words})
    enrolled = sorted({name for text in command_profiles for p in CommandProfile.from_json(text).examples
                       for name in (p.command.name, p.command.intent)})
    for rule in rules:
        if rule.word is not None and rule.word not in labels:
            problem, known = f"word {rule.word!r} is not enrolled", {"enrolled words": labels}
        elif rule.speaker is not None and rule.speaker not in voices:
            problem, known = f"no voice is enrolled for speaker {rule.speaker!r}", {"enrolled voices": voices}
        elif rule.command is not None and rule.command not in enrolled:
            problem, known = f"command {rule.command!r} is not enrolled", {"enrolled commands": enrolled}
        else:
            continue
        log.warning("command_never_runs", extra={"fields": {"problem": problem, "run": rule.run, **known}})


class Daemon:
    def __init__(self, rt: Runtime, source: AudioSource, config: DeviceConfig, out: TextIO | None = None) -> None:
        self.rt, self.source, self.cfg = rt, source, config
        self.out = out if out is not None else sys.stdout  # None when started with stdout closed
        self.stop_signal: int | None = None
        self.noted_signals: list[int] = []
        self.errors = RepeatedErrors()
        self.events = 0

    def _on_signal(self, signum: int, frame) -> None:
        if signum in STOP_SIGNALS:
            self.stop_signal = signum
        else:
            self.noted_signals.append(signum)

    def _note_signals(self) -> None:
        """SIGHUP re-reads the store at the next block; SIGUSR1/2 are only logged. None of them ends the daemon
        (their default would: without removing the socket, the extracted bundle or saying "stopped")."""
        while self.noted_signals:
            signum = self.noted_signals.pop(0)
            if signum == signal.SIGHUP:
                self.rt.store.forget_version()
            log.info("signal", extra={"fields": {"signal": signal.Signals(signum).name, "action": (
                "re-reading the store" if signum == signal.SIGHUP else "none (SIGTERM, SIGINT or SIGQUIT stop)")}})

    def run(self) -> int:
        vocab = enrolled_vocabulary(self.rt)
        detector = self.rt.detector(self.cfg.detector)
        decoder = self.rt.command_decoder()  # word detections -> command events, once a phrasing is enrolled
        commands = Commands(self.cfg.commands)
        warn_unmatched(commands.rules, vocab.keys, vocab.voices, self.rt.store.command_profiles().values())
        sock = EventSocket(self.cfg.socket) if self.cfg.socket else None
        stdout = StdoutWriter(self.out)
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS + NOTED_SIGNALS}
        reason = "end of input"
        cpu_at_start = time.process_time()  # what listening costs, without the start-up before it
        try:
            chunks = self.source.chunks()  # opens the microphone: "listening" only once it is open
            log.info("listening", extra={"fields": {
                "input": self.cfg.input, "bundle": self.rt.bundle.bundle_id, "head": self.rt.head_kind,
                "words": [f"{label}" + (f"@{user}" if user else "") for label, user in vocab.keys],
                "voices": vocab.voices, "socket": self.cfg.socket, "commands": len(commands.rules)}})
            for chunk in chunks:
                if self.stop_signal is not None:
                    reason = signal.Signals(self.stop_signal).name
                    break
                self._note_signals()
                if self.rt.store.changed():
                    decoder = self._reload(detector, decoder)
                for event in self._events(detector, decoder, guarded_process(detector, chunk, self.errors)):
                    self._emit(event, stdout, sock, commands)
                commands.reap()
            else:
                for event in self._events(detector, decoder, detector.flush(), end=True):
                    self._emit(event, stdout, sock, commands)
        except BaseException as exc:  # e.g. no microphone: reported by the CLI; the log says why it stopped
            reason = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if sock is not None:
                sock.close()
            stdout.close()
            commands.stop()
            log.info("stopped", extra={"fields": {"reason": reason, "events": self.events, "hops": detector.hops,
                                                  "stdout_dropped": stdout.dropped,
                                                  "encoder_calls": detector.encoder_calls, "peak_rss_mb": peak_rss_mb(),
                                                  "listening_cpu_s": round(time.process_time() - cpu_at_start, 3)}})
        return 0

    def _reload(self, detector: StreamingDetector, decoder: CommandDecoder | None) -> CommandDecoder | None:
        """The store changed under the daemon (enroll, remove, forget-user, import in another process): listen for
        its words as they are now. A store that cannot be read just now keeps the words it had and is tried again
        at the next block; the log says so."""
        try:
            self.rt.reload(detector)
            decoder = self.rt.command_decoder()
        except (EdgeMetaError, sqlite3.Error) as exc:
            self.rt.store.forget_version()
            self.errors("reload_failed", f"{type(exc).__name__}: {exc}")
            return decoder
        vocab = detector.scorer.vocabulary
        log.info("store_changed", extra={"fields": {
            "words": [f"{label}" + (f"@{user}" if user else "") for label, user in vocab.keys], "voices": vocab.voices}})
        return decoder

    @staticmethod
    def _events(detector, decoder, detections: list, end: bool = False) -> list[dict]:
        """Word events, each followed by the command events the detections complete."""
        events = []
        for d in detections:
            events.append(d.to_event())
            events += [c.to_event() for c in (decoder.push(d) if decoder else [])]
        if decoder:
            done = decoder.flush() if end else decoder.advance(detector.settled_s)
            events += [c.to_event() for c in done]
        return events

    def _emit(self, event: dict, stdout: StdoutWriter, sock: EventSocket | None, commands: Commands) -> None:
        event["time"] = round(time.time(), 3)
        line = json.dumps(event)
        self.events += 1
        stdout.write(line + "\n")  # never blocks, never raises: see stdout_writer
        if sock is not None:
            sock.send((line + "\n").encode())
        try:
            commands.run(event)
        except Exception as exc:  # noqa: BLE001 - a hook that cannot start must not stop the listening
            self.errors("command_failed", f"{type(exc).__name__}: {exc}")
