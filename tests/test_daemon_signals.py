"""Signals other than SIGTERM/SIGINT no longer kill the daemon without cleanup (issue 18 item 16).

Before: SIGHUP, SIGQUIT and SIGUSR1 ended it at once, leaving its socket file, the bundle copy it had
extracted into TMPDIR, and no "stopped" log. A real daemon on a .tar bundle with a socket.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from edge_meta.bundle import write_tar
from edge_meta.device import Runtime
from edge_meta.resources import default_bundle_path

pytestmark = pytest.mark.filterwarnings("ignore::edge_meta.device.runtime.SpeakerFallbackWarning")


def next_log(proc, event: str) -> dict:
    for line in proc.stderr:
        if line.startswith("{") and json.loads(line)["event"] == event:
            return json.loads(line)
    raise AssertionError(f"the daemon ended before logging {event!r}")


def test_hup_and_usr_signals_are_noted_and_quit_stops_cleanly(tmp_path, fsdd_dir):
    rec = fsdd_dir / "recordings"
    bundle = write_tar(default_bundle_path(), tmp_path / "bundle.tar")
    with Runtime.open(bundle, store=tmp_path / "p.db") as rt:
        rt.enroll_word("two", [rec / f"2_jackson_{t}.wav" for t in range(3)], user="jackson")
    tmpdir, sock = tmp_path / "tmp", tmp_path / "run" / "events.sock"
    tmpdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "edge_meta.cli", "device", "run", "--input", "-", "--bundle",
                             str(bundle), "--store", str(tmp_path / "p.db"), "--socket", str(sock)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmpdir)})
    try:
        next_log(proc, "listening")
        assert sock.exists() and os.listdir(tmpdir)  # the socket, and the bundle unpacked in TMPDIR
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            proc.send_signal(sig)
            assert next_log(proc, "signal")["signal"] == sig.name
            assert proc.poll() is None
        proc.send_signal(signal.SIGQUIT)
        stopped = next_log(proc, "stopped")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
    assert stopped["reason"] == "SIGQUIT"
    assert not sock.exists() and os.listdir(tmpdir) == []
    assert "Traceback" not in proc.stderr.read()
