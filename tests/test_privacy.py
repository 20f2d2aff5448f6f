"""SECURITY.md promises no network request and nothing written but the store and the files asked for.

The check runs the device side as a user would (enroll, detect, the daemon with its socket, export) in a fresh
interpreter with its own HOME, watched twice: by strace, which sees every socket the process and its native
libraries open (onnxruntime's telemetry is C++, invisible to Python), and by a Python audit hook.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from edge_meta.audio import read_audio

AUDIT = """
import sys
def audit(event, args):
    if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg") and not isinstance(args[1], (str, bytes)):
        print(f"NETWORK {event} {args[1]!r}", file=sys.stderr, flush=True)
    elif event in ("socket.getaddrinfo", "socket.gethostbyname"):
        print(f"NETWORK {event} {args[0]!r}", file=sys.stderr, flush=True)
sys.addaudithook(audit)
"""


def strace_usable() -> bool:
    if not shutil.which("strace"):
        return False
    return subprocess.run(["strace", "-qq", "-e", "trace=none", "true"], capture_output=True).returncode == 0


def test_the_device_side_opens_no_network_socket_and_writes_nothing_under_home(tmp_path, fsdd_dir):
    """Before the fix, loading onnxruntime wrote ~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,
    onnxruntime.db} and, about 9 s into a run, the process sent DNS queries for mobile.events.data.microsoft.com."""
    rec = fsdd_dir / "recordings"
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    # a real-time stream of ~20 s keeps the daemon alive past the moment the telemetry used to upload
    stream = np.concatenate([np.concatenate([read_audio(rec / f"{d}_theo_{9 + k}.wav", announce=False),
                                             np.zeros(16000, np.float32)]) for k in range(2) for d in range(10)])
    sf.write(work / "stream.wav", stream, 16000)
    takes = [str(rec / f"4_theo_{i}.wav") for i in range(3)]
    script = AUDIT + textwrap.dedent(f"""
        from edge_meta.cli import main
        s = ["--store", "profiles.db"]
        assert main(["device", "enroll-word", "four", "--from", *{takes!r}, *s]) == 0
        assert main(["device", "detect", {str(rec / "4_theo_9.wav")!r}, "--json", *s]) == 0
        assert main(["device", "run", "--input", "stream.wav", "--realtime", "--socket", "run/ev.sock", *s]) == 0
        assert main(["device", "export-profile", "backup.json", *s]) == 0
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORT_", "EDGE_META_"))}
    env.update(HOME=str(home), OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-c", script]
    trace = tmp_path / "strace.txt"
    if strace_usable():
        cmd = ["strace", "-f", "-qq", "-e", "trace=socket,connect,bind,sendto,sendmsg", "-o", str(trace), *cmd]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"word": "four"' in r.stdout
    assert "NETWORK" not in r.stderr, [line for line in r.stderr.splitlines() if "NETWORK" in line]
    assert [p for p in home.rglob("*")] == []
    assert sorted(p.name for p in work.iterdir()) == ["backup.json", "profiles.db", "run", "stream.wav"]
    if not trace.exists():
        pytest.skip("strace is not usable here: only Python-level sockets were watched")
    calls = trace.read_text().splitlines()
    families = set(re.findall(r"socket\((AF_\w+)", "\n".join(calls)))
    assert families <= {"AF_UNIX"}, [c for c in calls if "AF_UNIX" not in c][:10]
    assert any("ev.sock" in c for c in calls)  # the watch saw the daemon's own socket: it was really watching


def test_the_systemd_unit_allows_no_network(tmp_path):
    """The unit is the second wall: even a command run for a word gets no IP socket and no network namespace."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "device" / "edge-meta.service").read_text()
    for line in ("RestrictAddressFamilies=AF_UNIX", "PrivateNetwork=yes", "IPAddressDeny=any", "ProtectHome=yes",
                 "NoNewPrivileges=yes", "Environment=ORT_DISABLE_TELEMETRY=1"):
        assert line in text.splitlines(), line
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed: the unit's lines were checked, not systemd's reading of them")
    unit = tmp_path / "edge-meta.service"  # the installed ExecStart does not exist here: any executable will do
    unit.write_text(re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={shutil.which('true')}", text))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                              text=True).stdout
    for check in ("PrivateNetwork=", "IPAddressDeny=", "RestrictAddressFamilies=~AF_(INET|INET6)",
                  "RestrictAddressFamilies=~AF_NETLINK", "RestrictAddressFamilies=~AF_PACKET", "ProtectHome=",
                  "NoNewPrivileges="):
        assert any(line.startswith(f"✓ {check} ") for line in security.splitlines()), check
