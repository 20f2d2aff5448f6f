"""The daemon's stdout can never stop it: a reader that stops reading, a full disk, a closed stdout.

Before: a stuck reader blocked the whole daemon in write() (socket, hooks and SIGTERM with it), `>/dev/full`
ended it with an ENOSPC traceback, and a closed stdout with an AttributeError. Real daemons, real audio.
"""

import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edge_meta.audio import read_audio
from edge_meta.device import Runtime
from edge_meta.device.store import to_pcm16

pytestmark = pytest.mark.filterwarnings("ignore::edge_meta.device.runtime.SpeakerFallbackWarning")


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, fsdd_dir):
    """jackson's "two", and a stream of 40 more of his "two"s with pauses, as raw PCM for --input -."""
    folder = tmp_path_factory.mktemp("outputs")
    rec = fsdd_dir / "recordings"
    with Runtime.open(store=folder / "p.db") as rt:
        rt.enroll_word("two", [rec / f"2_jackson_{t}.wav" for t in range(5)], user="jackson")
    gap = np.zeros(12000, np.float32)
    stream = np.concatenate([np.concatenate([read_audio(rec / f"2_jackson_{t}.wav", announce=False), gap])
                             for t in range(10, 50)])
    return folder / "p.db", to_pcm16(stream)


def run_daemon(store, pcm: bytes, **popen) -> tuple[int, list[dict], str]:
    proc = subprocess.Popen([sys.executable, "-m", "edge_meta.cli", "device", "run", "--input", "-", "--store",
                             str(store)], stdin=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    _, err = proc.communicate(pcm, timeout=300)  # a daemon stuck on its stdout never ends: fail, not hang
    text = err.decode()
    return proc.returncode, [json.loads(line) for line in text.splitlines() if line.startswith("{")], text


def test_a_reader_that_stops_reading_does_not_stop_the_daemon(enrolled):
    store, pcm = enrolled
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe: a few events fill it
    try:
        code, logs, err = run_daemon(store, pcm, stdout=write_end)  # nobody ever reads read_end
    finally:
        os.close(write_end)
        os.close(read_end)
    assert code == 0 and "Traceback" not in err, err
    stopped = next(r for r in logs if r["event"] == "stopped")
    assert stopped["reason"] == "end of input"  # the whole stream was listened to
    assert stopped["events"] >= 30  # ~10 KB of events: more than the pipe holds, so the writes were stuck


@pytest.mark.parametrize("how", ["full disk", "closed"])
def test_a_stdout_that_fails_or_is_closed_is_logged_once_and_listening_goes_on(enrolled, how):
    store, pcm = enrolled
    if how == "full disk":
        with open("/dev/full", "wb") as full:
            code, logs, err = run_daemon(store, pcm, stdout=full)
        expected = "stdout_failed"
    else:
        code, logs, err = run_daemon(store, pcm, preexec_fn=lambda: os.close(1))
        expected = "stdout_closed"
    assert code == 0 and "Traceback" not in err and "Exception ignored" not in err, err
    assert [r["event"] for r in logs].count(expected) == 1
    stopped = next(r for r in logs if r["event"] == "stopped")
    assert stopped["reason"] == "end of input" and stopped["events"] >= 30


def test_the_stdout_queue_is_bounded_and_write_never_waits():
    from edge_meta.device.stdout_writer import StdoutWriter

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    out = os.fdopen(write_end, "w")
    writer = StdoutWriter(out, max_queued=8)
    line = json.dumps({"event": "word", "word": "x" * 500}) + "\n"
    for _ in range(200):
        writer.write(line)  # returns at once each time, though nobody reads the pipe
    in_pipe = 4096 // len(line) + 1  # whole lines the pipe took, plus the one the thread is stuck writing
    assert writer.queue.qsize() <= 8 and writer.dropped >= 200 - 8 - in_pipe
    os.close(read_end)  # the reader goes: the stuck write fails with EPIPE, is logged, and the thread ends
    writer.close()
    assert writer.failed and not writer.thread.is_alive()
    out.close()
