"""The daemon end to end: events on stdout and the Unix socket where the words really are, commands started
without a shell, private socket, clean SIGTERM, and bad frames logged and survived."""

import json
import logging
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_meta.audio import read_audio
from edge_meta.demo import score_detections
from edge_meta.device import Runtime
from edge_meta.device.config import DeviceConfig, load_config
from edge_meta.device.daemon import Daemon
from edge_meta.device.detector import DetectorConfig
from edge_meta.device.event_socket import EventSocket
from edge_meta.device.sources import ArraySource
from edge_meta.errors import ConfigError

SPEAKER, KEYWORDS = "jackson", (2, 9)


def build_stream(fsdd_dir, gsc_dir, seed=0):
    """Held-out takes of the enrolled speaker: both keywords three times, other digits, and other people's words
    from Speech Commands, with pauses; returns (audio, truth) like the demo's stream.json."""
    rng = np.random.default_rng(seed)
    utterances = [(str(d), fsdd_dir / "recordings" / f"{d}_{SPEAKER}_{t}.wav", True) for d in KEYWORDS for t in (20, 21, 22)]
    utterances += [(str(d), fsdd_dir / "recordings" / f"{d}_{SPEAKER}_20.wav", False) for d in (0, 3, 6, 7)]
    for word in ("bed", "house", "happy", "marvin"):
        utterances.append((word, sorted((gsc_dir / word).iterdir())[0], False))
    order = rng.permutation(len(utterances))
    parts, truth, t = [np.zeros(8000, np.float32)], [], 0.5
    for i in order:
        word, path, keyword = utterances[i]
        x = read_audio(path, announce=False)
        truth.append({"word": word, "start_s": t, "end_s": t + len(x) / 16000, "keyword": keyword})
        gap = np.zeros(int(rng.uniform(0.8, 1.4) * 16000), np.float32)
        parts += [x, gap]
        t += (len(x) + len(gap)) / 16000
    return np.concatenate(parts), truth


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, fsdd_dir, gsc_dir):
    folder = tmp_path_factory.mktemp("daemon")
    store = folder / "profiles.db"
    with Runtime.open(store=store) as rt:
        for d in KEYWORDS:
            rt.enroll_word(str(d), [fsdd_dir / "recordings" / f"{d}_{SPEAKER}_{t}.wav" for t in range(5)], user=SPEAKER)
    audio, truth = build_stream(fsdd_dir, gsc_dir)
    wav = folder / "stream.wav"
    sf.write(wav, audio, 16000, subtype="PCM_16")
    return store, wav, audio, truth


class Event:
    def __init__(self, e):
        self.label, self.start_s, self.end_s = e["word"], e["start_s"], e["end_s"]


def daemon(*args, stdin=subprocess.DEVNULL):
    return subprocess.Popen([sys.executable, "-m", "edge_meta.cli", "device", "run", *map(str, args)], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_log(proc, event: str) -> list[dict]:
    """Read the daemon's JSON log lines until ``event`` (or fail with what it said)."""
    seen = []
    for line in proc.stderr:
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == event:
                return seen
    raise AssertionError(f"daemon ended before {event!r}: {seen}")


def test_events_on_stdout_and_socket_match_the_words(tmp_path, enrolled):
    store, _, audio, truth = enrolled
    sock_path = tmp_path / "run" / "events.sock"
    proc = daemon("--input", "-", "--store", store, "--socket", sock_path, stdin=subprocess.PIPE)
    try:
        wait_for_log(proc, "listening")
        assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock_path.stat().st_mode)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(sock_path))
        wait_for_log(proc, "socket_client")
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2").tobytes()
        proc.stdin.buffer.write(pcm)  # raw bytes under the text-mode pipe
        proc.stdin.close()
        stdout = proc.stdout.read()
        assert proc.wait(timeout=120) == 0
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        client.close()
    finally:
        proc.kill()
    events = [json.loads(line) for line in stdout.splitlines()]
    assert received.decode().splitlines() == stdout.splitlines()
    assert all(e["event"] == "word" and e["user"] == SPEAKER and e["speaker"] is None for e in events)
    s = score_detections([Event(e) for e in events], truth)
    assert s["keywords"] == 6 and s["hits"] >= 4
    assert s["false_alarms"] + s["wrong_word"] <= 2
    assert not sock_path.exists()


def test_sigterm_stops_cleanly(tmp_path, enrolled):
    store = enrolled[0]
    sock_path = tmp_path / "run" / "events.sock"
    proc = daemon("--input", "-", "--store", store, "--socket", sock_path, stdin=subprocess.PIPE)
    try:
        wait_for_log(proc, "listening")
        proc.send_signal(signal.SIGTERM)
        logs = wait_for_log(proc, "stopped")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert logs[-1]["reason"] == "SIGTERM" and logs[-1]["level"] == "info"
    assert not sock_path.exists()
    assert "Traceback" not in proc.stderr.read()


def test_commands_run_with_arguments_never_a_shell(tmp_path, enrolled):
    store, wav, _, _ = enrolled
    out, trap = tmp_path / "event.json", tmp_path / "pwned"
    script = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2] + '\\n' + sys.stdin.read())"
    (tmp_path / "device.toml").write_text(f"""
[daemon]
log_level = "warning"

[[commands]]
word = "9"
run = [{json.dumps(sys.executable)}, "-c", {json.dumps(script)}, {json.dumps(str(out))}, "$(touch {trap}); echo"]
""")
    proc = daemon("--input", wav, "--store", store, "--config", tmp_path / "device.toml")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert any(json.loads(line)["word"] == "9" for line in stdout.splitlines())
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline, "the command never ran"
        time.sleep(0.05)
    literal, event = out.read_text().split("\n", 1)
    assert literal == f"$(touch {trap}); echo" and not trap.exists()
    assert json.loads(event)["word"] == "9"


class Flaky:
    """A backend that fails once, as a damaged frame or a driver hiccup might make it."""

    def __init__(self, inner):
        self.inner, self.name, self.separable, self.failed = inner, inner.name, inner.separable, False
        self.takes_waveform = inner.takes_waveform

    def embed(self, features, outputs=None, waveform=None):
        if not self.failed:
            self.failed = True
            raise RuntimeError("simulated encoder failure")
        return self.inner.embed(features, outputs, waveform=waveform)


class WithBadChunks(ArraySource):
    def chunks(self):
        yield np.full(1600, np.nan, np.float32)
        yield from super().chunks()


def test_bad_frames_are_logged_and_skipped(enrolled, caplog):
    store, _, audio, truth = enrolled
    with Runtime.open(store=store) as rt, caplog.at_level(logging.INFO, logger="edge_meta.device"):
        rt.backend = Flaky(rt.backend)
        out = _Lines()
        assert Daemon(rt, WithBadChunks(audio), DeviceConfig(input="test"), out=out).run() == 0
    kinds = [r.getMessage() for r in caplog.records]
    assert "bad_audio" in kinds and "frame_failed" in kinds and kinds[-1] == "stopped"
    s = score_detections([Event(json.loads(x)) for x in out.lines], truth)
    assert s["hits"] >= 4


class _Lines:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines += [x for x in text.splitlines() if x]

    def flush(self):
        pass


def test_the_socket_directory_must_be_private_and_a_live_socket_is_not_stolen(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp: the advice must never be to close it (issue 16: it said chmod 700 /tmp)
    with pytest.raises(ConfigError, match="not private") as refused:
        EventSocket(shared / "events.sock")
    assert "chmod" not in refused.value.hint
    own = Path(refused.value.hint.split("--socket ")[1].split()[0])  # the advice: a folder of its own inside it
    assert own.parent.parent == shared
    EventSocket(own).close()
    assert stat.S_IMODE(own.parent.stat().st_mode) == 0o700 and stat.S_IMODE(shared.stat().st_mode) == 0o1777
    first = EventSocket(tmp_path / "run" / "events.sock")
    try:
        with pytest.raises(ConfigError, match="another edge-meta daemon"):
            EventSocket(tmp_path / "run" / "events.sock")
    finally:
        first.close()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "run" / "events.sock"))  # left behind by a killed daemon
    stale.close()
    EventSocket(tmp_path / "run" / "events.sock").close()


def test_the_example_config_loads_as_shipped(tmp_path):
    """device/device.toml is what a Pi installs (device/install.sh): every key in it must be accepted."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "device" / "device.toml")
    assert cfg.detector.floor_dbfs == -60.0 and cfg.detector.template_ratio == DetectorConfig().template_ratio
    off = tmp_path / "off.toml"
    off.write_text("[detector]\ntemplate_ratio = inf\nhold_below = inf\n")  # the check and the holds turned off
    assert math.isinf(load_config(off).detector.template_ratio) and math.isinf(load_config(off).detector.hold_below)
    assert cfg.block_s == DeviceConfig().block_s and cfg.detector.hold_hops == DetectorConfig().hold_hops


def test_config_file_is_checked_key_by_key(tmp_path):
    good = tmp_path / "ok.toml"
    good.write_text('[input]\nsource = "-"\n[detector]\nrefractory_s = 1.5\n[[commands]]\nword = "lights on"\n'
                    'run = ["/bin/true"]\nspeaker = "alice"\n')
    cfg = load_config(good)
    assert cfg.input == "-" and cfg.detector.refractory_s == 1.5 and cfg.commands[0].run == ("/bin/true",)
    for text, needle in [('[input]\nsorce = "mic"\n', "input.sorce: unknown key"),
                         ('[detector]\nhop_s = "fast"\n', "detector.hop_s: expected a number"),
                         ("[detector]\nhop_s = nan\n", "detector.hop_s: must be between"),
                         ("[detector]\nfloor_dbfs = 6.0\n", "detector.floor_dbfs: must be between -120.0 and 0.0, got 6.0 .a level in dBFS"),
                         ("[detector]\nsmoothing = 0\n", "detector.smoothing: must be between 1 and 10"),
                         ("[input]\nblock_s = 5\n", "input.block_s: must be between 0.01 and 1 s"),
                         ("[detector]\nhold_hops = 1.5\n", "detector.hold_hops: expected a number"),
                         ('[[commands]]\nword = "x"\nrun = "rm -rf /"\n', "commands[0].run"),
                         ("[daemon\n", "not valid TOML")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
            load_config(bad)
    r = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "run", "--config", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    [error] = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: {bad}: not valid TOML")


@pytest.mark.parametrize("text, needle", [
    ("[runtime]\nthreads = 100000\n", "runtime.threads: must be between 1 and 64"),
    ("[runtime]\nthreads = 9223372036854775807\n", "runtime.threads: must be between 1 and 64"),
    ("[detector]\nsmoothing = 1000000000\n", "detector.smoothing: must be between 1 and 10"),
    ("[detector]\nhop_s = 1e-9\n", "detector.hop_s: must be between 0.01 and 0.5"),
    ("[detector]\nhop_s = 0.001\n", "detector.hop_s: must be between 0.01 and 0.5"),
    ("[detector]\nhop_s = 100\n", "detector.hop_s: must be between 0.01 and 0.5"),
    ("[detector]\ntemplate_context_s = 1e9\n", "detector.template_context_s: must be between 0.0 and 2.0"),
    ("[detector]\nhold_hops = 1000\n", "detector.hold_hops: must be between 0 and 10"),
    ("[detector]\nrefractory_s = inf\n", "detector.refractory_s: must be between 0.0 and 10.0"),
    ('[[commands]]\nword = "x"\nrun = ["/bin/echo", "a\\u0000b"]\n', "commands[0].run: expected a non-empty list"),
    ('[input]\nsource = "a\\u0000.wav"\n', "input.source: holds a NUL character"),
])
def test_config_numbers_that_would_misbehave_are_refused_naming_the_range(tmp_path, text, needle):
    """Values of the right type that passed and then misbehaved (smoothing = 1e9 asked 19.6 GB, hop_s = 1e-9 crashed
    the detector, a NUL in run crashed the first hook): each refused by the daemon before it starts, exit 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
        load_config(bad)
    r = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "run", "--config", str(bad), "--input", "-"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "Traceback" not in r.stderr and needle.split(":")[0] in r.stderr


def test_every_detector_number_has_a_range_its_default_lies_in():
    from dataclasses import fields

    from edge_meta.device.config import DETECTOR_RANGES

    from edge_meta.bundle import Bundle
    from edge_meta.resources import default_bundle_path

    defaults = DetectorConfig()
    assert {f.name for f in fields(DetectorConfig)} == set(DETECTOR_RANGES)
    for key, (low, high, _) in DETECTOR_RANGES.items():
        value = getattr(defaults, key)
        if value is None:  # left to the bundle (hold_below): the shipped bundle's value must be one a user may set
            value = getattr(Bundle.open(default_bundle_path()), key)
        assert low <= value <= high, key


def test_a_running_daemon_stops_detecting_removed_and_forgotten_words_and_their_audio_is_erased(tmp_path, enrolled,
                                                                                                 fsdd_dir):
    """remove and forget-user in another process while the daemon listens: the daemon reloads its words at the next
    block (no restart), and the removed takes' recordings leave the file at once, not when the daemon stops."""
    import queue
    import shutil
    import threading

    from edge_meta.device.store import to_pcm16

    store = tmp_path / "p.db"
    shutil.copy(enrolled[0], store)
    said = {d: read_audio(fsdd_dir / "recordings" / f"{d}_{SPEAKER}_0.wav", announce=False) for d in KEYWORDS}
    probes = [to_pcm16(read_audio(fsdd_dir / "recordings" / f"2_{SPEAKER}_{t}.wav", announce=False))[2000:2064]
              for t in range(5)]
    on_disk = lambda: b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("p.db"))  # noqa: E731
    assert all(p in on_disk() for p in probes)
    proc = daemon("--input", "-", "--store", store, stdin=subprocess.PIPE)
    events: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [events.put(json.loads(line)) for line in proc.stdout], daemon=True).start()
    errors = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    reader.start()

    def say(digit: int) -> None:
        pcm = to_pcm16(np.concatenate([said[digit], np.zeros(32000, np.float32)]))
        proc.stdin.buffer.write(pcm)
        proc.stdin.flush()

    def cli(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", *args, "--store", str(store)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    try:
        say(2)
        assert events.get(timeout=120)["word"] == "2"
        cli("remove", "2", "--user", SPEAKER)
        assert not any(p in on_disk() for p in probes)  # while the daemon still has the store open
        say(2)
        say(9)
        assert events.get(timeout=120)["word"] == "9"  # and no "2" before it
        cli("forget-user", SPEAKER, "--yes")
        say(9)
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    assert events.empty(), "words fired after they were forgotten"
    reader.join(timeout=60)
    logs = [json.loads(line) for line in errors if line.startswith("{")]
    reloads = [log["words"] for log in logs if log["event"] == "store_changed"]  # a commit, then VACUUM's: 1 or 2 each
    assert [w for i, w in enumerate(reloads) if i == 0 or w != reloads[i - 1]] == [[f"9@{SPEAKER}"], []]


def test_a_hop_that_is_no_whole_number_of_frames_or_too_many_threads_are_refused_at_start(tmp_path, enrolled):
    """Within range but unusable with this bundle: hop_s = 0.015 (not a whole number of its 10 ms frames) gave a
    ValueError traceback; 100000 threads reached onnxruntime, from the command line or the Python API."""
    config = tmp_path / "hop.toml"
    config.write_text("[detector]\nhop_s = 0.015\n")
    with pytest.raises(ConfigError, match="100000 encoder threads is out of range"):
        Runtime.open(store=enrolled[0], threads=100000)
    for args, needle in ((["--config", str(config)], "detector.hop_s = 0.015 s is not a whole number"),
                         (["--threads", "100000"], "--threads: must be between 1 and 64")):
        r = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "run", "--input", "-", "--store",
                            str(enrolled[0]), *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and "Traceback" not in r.stderr and needle in r.stderr


def test_a_write_locked_store_is_read_by_list_and_waited_out_by_the_daemon(tmp_path, enrolled):
    """Every open wrote to the store, so a long import (another connection's write transaction) made even `list`
    fail, and a daemon that had to write at start (here: the store was last opened by another bundle) exited 2
    after 10 s, which its unit does not restart. Now opening writes nothing it need not; the daemon logs
    store_busy and tries again until the lock is gone."""
    import shutil
    import sqlite3

    store = tmp_path / "p.db"
    shutil.copy(enrolled[0], store)
    importer = sqlite3.connect(store, isolation_level=None)
    importer.execute("BEGIN IMMEDIATE")
    importer.execute("UPDATE meta SET value = 'an-older-bundle' WHERE key = 'bundle_id'")
    listed = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "list", "--json", "--store", str(store)],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert {w["word"] for w in json.loads(listed.stdout)["words"]} == {str(d) for d in KEYWORDS}
    importer.execute("COMMIT")  # the daemon must now record its bundle: a write
    importer.execute("BEGIN IMMEDIATE")
    proc = daemon("--input", "-", "--store", store, stdin=subprocess.PIPE)
    try:
        assert wait_for_log(proc, "store_busy")[-1]["level"] == "warning"
        importer.execute("COMMIT")
        wait_for_log(proc, "listening")
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        importer.close()


def test_an_over_long_socket_path_is_refused_naming_the_limit(tmp_path):
    """bind's error for a path past sun_path's 108 bytes has no strerror: the message said "(None)"."""
    path = tmp_path / ("d" * 100) / "events.sock"
    with pytest.raises(ConfigError, match=r"the socket path is \d+ bytes long; a Unix socket's may be at most 107"):
        EventSocket(path)
    assert not path.parent.exists()


def test_listening_is_logged_only_once_the_microphone_is_open(enrolled):
    """Issue 16: the daemon logged "listening" and then failed to open the microphone. A device that no machine
    has fails to open on every machine: the log says why it stopped, and never that it listened."""
    r = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "run", "--store", str(enrolled[0]),
                        "--mic-device", "no such microphone 7f3a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no input device 'no such microphone 7f3a'" in r.stderr, r.stderr
    logged = [json.loads(line)["event"] for line in r.stderr.splitlines() if line.startswith("{")]
    assert logged == ["stopped"], r.stderr
