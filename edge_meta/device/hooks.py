"""The commands configured per word or command event ([[commands]] in device.toml), run so that none can
harm the daemon or outlive it.

Each runs from its argument list without a shell, given the event's JSON on its stdin, in a process group
of its own, with a minimal environment (PATH, LANG, LC_ALL, TZ: nothing of the daemon's own, such as the
store's path or a secret in its environment). At most MAX_RUNNING run at once (an event that would start
one more is logged and skipped); a command still running after its rule's ``timeout_s`` is killed with
its whole group, and so is every command still running when the daemon stops, under systemd or not.
Logs name a command by its program only: its arguments may hold secrets (a token, a password).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edge_meta.device.config import CommandRule

log = logging.getLogger("edge_meta.device")
MAX_RUNNING = 4
STOP_GRACE_S = 2.0  # SIGTERM, then this long, then SIGKILL, when the daemon stops
ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass
class _Running:
    proc: subprocess.Popen
    rule: CommandRule
    deadline: float  # time.monotonic()


class Commands:
    """Starts the configured command for an event and reaps finished ones (no zombies, no waiting)."""

    def __init__(self, rules: list[CommandRule]) -> None:
        self.rules = rules
        self.running: list[_Running] = []
        self.skipped = 0
        self.env = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
        self.env.setdefault("PATH", os.defpath)

    def run(self, event: dict) -> None:
        for rule in self.rules:
            if not rule.matches(event):
                continue
            if len(self.running) >= MAX_RUNNING:
                self.skipped += 1
                if self.skipped % 100 == 1:
                    log.warning("command_skipped", extra={"fields": {"word": rule.target, "running": MAX_RUNNING,
                                                                     "skipped": self.skipped}})
                continue
            try:
                proc = subprocess.Popen(list(rule.run), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True,
                                        env=self.env)
            except OSError as exc:
                log.error("command_failed", extra={"fields": {"word": rule.target, "program": _program(rule),
                                                              "error": exc.strerror or type(exc).__name__}})
                continue
            try:
                proc.stdin.write((json.dumps(event) + "\n").encode())
                proc.stdin.close()
            except OSError:  # the command does not read its stdin: fine
                pass
            self.running.append(_Running(proc, rule, time.monotonic() + rule.timeout_s))
            log.info("command_started", extra={"fields": {"word": rule.target, "pid": proc.pid}})

    def reap(self) -> None:
        """Forget finished commands (logging a failure's exit code) and kill those past their timeout; either way
        whatever the command left running in its group goes with it."""
        still, now = [], time.monotonic()
        for r in self.running:
            done = _exited(r.proc)
            if not done and now <= r.deadline:
                still.append(r)
                continue
            _kill_group(r.proc, signal.SIGKILL)
            code = r.proc.wait()
            if not done:
                log.warning("command_timeout", extra={"fields": {"word": r.rule.target, "pid": r.proc.pid,
                                                                 "program": _program(r.rule),
                                                                 "timeout_s": r.rule.timeout_s}})
            elif code != 0:
                log.warning("command_exit", extra={"fields": {"word": r.rule.target, "pid": r.proc.pid, "code": code}})
        self.running = still

    def stop(self) -> None:
        """End every command still running with its process group: SIGTERM, then SIGKILL after STOP_GRACE_S."""
        for r in self.running:
            _kill_group(r.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.running and time.monotonic() < deadline and not all(_exited(r.proc) for r in self.running):
            time.sleep(0.05)
        if self.running:
            log.info("commands_stopped", extra={"fields": {"count": len(self.running)}})
        for r in self.running:
            _kill_group(r.proc, signal.SIGKILL)
            r.proc.wait()
        self.running = []


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the command's leader has exited, without reaping it: until it is reaped its pid, which is also its
    process group's id, cannot be reused, so signalling the group can only reach the command's own processes."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _program(rule: CommandRule) -> str:
    return Path(rule.run[0]).name
