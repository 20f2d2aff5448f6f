"""The event socket keeps no descriptor for a client that left, and outlives running out of descriptors.

Before: a client that connected and left while no event was sent kept its descriptor until the next event,
and when accept() failed at the descriptor limit the accept thread ended silently: no client could connect
again. Real Unix sockets; the limit is met in a separate process with a lowered RLIMIT_NOFILE.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

from edge_meta.device.event_socket import EventSocket


def wait_until(condition, what: str, tries: int = 400) -> None:
    """Poll ``condition`` (the accept thread works in 0.25 s steps); fail after ~40 s of it staying false."""
    done = threading.Event()
    for _ in range(tries):
        if condition():
            return
        done.wait(0.1)
    raise AssertionError(f"never happened: {what}")


def test_clients_that_leave_without_an_event_release_their_descriptors(tmp_path):
    sock = EventSocket(tmp_path / "run" / "events.sock")
    try:
        baseline = len(os.listdir("/proc/self/fd"))
        for _ in range(50):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(sock.path))
            wait_until(lambda: len(sock.clients) == 1, "the client was accepted")
            c.close()
            wait_until(lambda: len(sock.clients) == 0, "the client that left was dropped")
        assert len(os.listdir("/proc/self/fd")) == baseline
        stays = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # one that stays still gets every line
        stays.connect(str(sock.path))
        wait_until(lambda: len(sock.clients) == 1, "the client was accepted")
        sock.send(b'{"event": "word"}\n')
        assert stays.recv(100) == b'{"event": "word"}\n'
        stays.close()
    finally:
        sock.close()


SERVER = """
import json, os, resource, sys
from edge_meta.device.event_socket import EventSocket
sock = EventSocket(sys.argv[1])
spare = 3  # descriptors left for clients
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + spare, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps({"clients": len(sock.clients), "accepting": sock.thread.is_alive()}), flush=True)
"""


def test_the_socket_accepts_again_after_running_out_of_descriptors(tmp_path):
    path = tmp_path / "run" / "events.sock"
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SERVER), str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready", server.stderr.read()

        def state() -> dict:
            server.stdin.write("?\n")
            server.stdin.flush()
            return json.loads(server.stdout.readline())

        clients = []
        for _ in range(10):  # more than the server has descriptors for: its accept() fails with EMFILE
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(path))
            clients.append(c)
        wait_until(lambda: state()["clients"] >= 1, "the first clients were accepted")
        for c in clients:
            c.close()
        wait_until(lambda: state()["clients"] == 0, "the clients that left were dropped")
        late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        late.connect(str(path))
        wait_until(lambda: state()["clients"] == 1, "a client is accepted after the limit was hit")
        assert state()["accepting"]
        late.close()
    finally:
        server.kill()
        server.wait()
    assert "socket_accept_failed" in server.stderr.read()  # said, once, not silent
