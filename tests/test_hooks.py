"""Commands run per word ("hooks") cannot harm the daemon or outlive it (issue 18 item 9).

Before: any number ran at once, none was ever stopped, all were orphaned when the daemon stopped (with their
children), each inherited the daemon's whole environment, and a failure logged the full command line, secrets
included. Real daemons on real audio; real hook processes that start a child of their own and sleep.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from edge_meta.audio import read_audio
from edge_meta.device import Runtime
from edge_meta.device.hooks import ENV_KEYS, MAX_RUNNING
from edge_meta.device.store import to_pcm16

pytestmark = pytest.mark.filterwarnings("ignore::edge_meta.device.runtime.SpeakerFallbackWarning")

HOOK = """
import json, os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
event = json.loads(sys.stdin.readline())
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"pid": os.getpid(), "child": child.pid, "env": sorted(os.environ), "word": event["word"]}) + "\\n")
time.sleep(1000)
"""


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, fsdd_dir):
    folder = tmp_path_factory.mktemp("hooks")
    rec = fsdd_dir / "recordings"
    with Runtime.open(store=folder / "p.db") as rt:
        rt.enroll_word("two", [rec / f"2_jackson_{t}.wav" for t in range(5)], user="jackson")
    gap = np.zeros(12000, np.float32)
    stream = np.concatenate([np.concatenate([read_audio(rec / f"2_jackson_{t}.wav", announce=False), gap])
                             for t in range(10, 30)])
    (folder / "hook.py").write_text(textwrap.dedent(HOOK))
    return folder, to_pcm16(stream)


class Daemon:
    """A daemon on stdin PCM with a config; its JSON logs collected as they come."""

    def __init__(self, folder, config: str, env: dict | None = None) -> None:
        (folder / "device.toml").write_text(config)
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_meta.cli", "device", "run", "--input", "-",
                                      "--store", str(folder / "p.db"), "--config", str(folder / "device.toml")],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=False, env=env)
        self.logs: list[dict] = []
        self.raw = []
        self.seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self.seen:
                self.raw.append(line.decode())
                if line.startswith(b"{"):
                    self.logs.append(json.loads(line))
                self.seen.notify_all()

    def feed(self, pcm: bytes) -> None:
        threading.Thread(target=self.proc.stdin.write, args=(pcm,), daemon=True).start()

    def wait_for(self, condition, what: str) -> None:
        """Check ``condition`` at each log line and every 0.1 s (it may also watch files); fail if the daemon ends
        first or after 3000 checks without it."""
        with self.seen:
            for _ in range(3000):
                if condition():
                    return
                if self.proc.poll() is not None:
                    break
                self.seen.wait(0.1)
        raise AssertionError(f"never happened: {what}; logs: {''.join(self.raw)[-3000:]}")

    def end(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(timeout=300)

    def events(self, name: str) -> list[dict]:
        return [r for r in self.logs if r["event"] == name]


def alive(pid: int) -> bool:
    """Running or sleeping (a zombie waiting for its new parent to reap it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def ends(pid: int) -> bool:
    """Whether ``pid`` ends within 30 s: a SIGKILL to a process group returns before its members are gone."""
    gone = threading.Event()
    for _ in range(300):
        if not alive(pid):
            return True
        gone.wait(0.1)
    return False


def rule(hook_out, **extra) -> str:
    keys = "".join(f"{k} = {v!r}\n" for k, v in extra.items())
    return f'[[commands]]\nword = "two"\nrun = {json.dumps([sys.executable, "hook.py", str(hook_out)])}\n{keys}'


def started(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_hooks_are_limited_stripped_of_the_environment_and_killed_with_their_children_when_the_daemon_stops(
        enrolled, monkeypatch):
    folder, pcm = enrolled
    out = folder / "limit.jsonl"
    monkeypatch.chdir(folder)
    env = {**os.environ, "EDGE_META_HOOK_SECRET": "s3cret", "LANG": "C.UTF-8"}
    d = Daemon(folder, rule(out), env=env)
    d.feed(pcm)  # 20 words: far more than may run at once
    d.wait_for(lambda: len(d.events("command_skipped")) >= 1 and len(started(out)) == MAX_RUNNING,
               "hooks ran to the limit and the next one was skipped")
    assert d.end() == 0
    hooks = started(out)
    assert len(hooks) == MAX_RUNNING and len(d.events("command_started")) == MAX_RUNNING
    assert [r["count"] for r in d.events("commands_stopped")] == [MAX_RUNNING]
    for h in hooks:
        assert set(h["env"]) <= set(ENV_KEYS) and "LANG" in h["env"], h["env"]
        assert ends(h["pid"]) and ends(h["child"])  # the child of a hook goes with it


def test_a_hook_past_its_timeout_is_killed_with_its_group_while_the_daemon_listens_on(enrolled, monkeypatch):
    folder, pcm = enrolled
    out = folder / "timeout.jsonl"
    monkeypatch.chdir(folder)
    d = Daemon(folder, rule(out, timeout_s=1.0))
    d.feed(pcm[: 2 * 16000 * 2])  # the first word; stdin stays open, so the daemon keeps listening
    d.wait_for(lambda: len(d.events("command_timeout")) >= 1, "the hook was killed at its timeout")
    hook = started(out)[0]
    assert ends(hook["pid"]) and ends(hook["child"]) and d.proc.poll() is None
    assert d.end() == 0


def test_a_failing_hook_is_logged_by_its_program_never_its_arguments(enrolled, monkeypatch):
    folder, pcm = enrolled
    monkeypatch.chdir(folder)
    d = Daemon(folder, '[[commands]]\nword = "two"\nrun = ["/nonexistent/door", "open", "--token=s3cret"]\n')
    d.feed(pcm[: 2 * 16000 * 2])
    d.wait_for(lambda: len(d.events("command_failed")) >= 1, "the hook failed to start")
    assert d.end() == 0
    failed = d.events("command_failed")[0]
    assert failed["program"] == "door" and "s3cret" not in "".join(d.raw)
