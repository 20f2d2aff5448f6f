"""The daemon over a simulated day: does detection drift, memory grow, or an event go missing?

    nice -n 10 .venv/bin/python benchmarks/long_run.py --hours 24 [--write]

Two words ("two", "nine") are enrolled from 5 takes of one FSDD speaker. The stream is built chunk by
chunk, never held whole: low background noise (-50 dBFS, slowly varying), and every few seconds an
utterance at a random gain: half of them held-out takes of the two keywords by the same speaker,
half other digits by the same and another speaker. Each simulated hour has the same mix in a new
order and ends in 3 s of noise, so hours are scored separately. The `Daemon` runs on it as fast as
the CPU allows, with an event socket that a client reads from another thread. Per hour: keywords,
hits, false alarms and wrong words (`edge_meta.demo.score_detections`), and the process's resident
memory (VmRSS) sampled every 10 simulated minutes. Events written to stdout, received on the
socket and counted by the daemon must agree exactly.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import socket
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from edge_meta.audio import SAMPLE_RATE, read_audio  # noqa: E402
from edge_meta.demo import score_detections  # noqa: E402

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
SPEAKER, OTHER, KEYWORDS = "jackson", "theo", ("2", "9")
HELD_OUT = range(5, 50)  # takes 0-4 enroll
CHUNK = 1600  # 0.1 s, as a microphone delivers


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


@dataclass
class Hour:
    keywords: int = 0
    hits: int = 0
    false_alarms: int = 0
    wrong_word: int = 0
    wall_s: float = 0.0
    rss_mb: list[float] = field(default_factory=list)


class SyntheticDay:
    """An `AudioSource` of ``hours`` of speech in noise, generated as it is read; keeps the truth per hour."""

    def __init__(self, hours: float, seed: int = 0) -> None:
        self.sample_rate = SAMPLE_RATE
        self.total = int(hours * 3600 * SAMPLE_RATE)
        self.seed = seed
        clips = [(d, read_audio(FSDD / f"{d}_{SPEAKER}_{t}.wav", announce=False)) for d in KEYWORDS for t in HELD_OUT]
        others = [str(d) for d in range(10) if str(d) not in KEYWORDS]
        clips += [(d, read_audio(FSDD / f"{d}_{who}_{t}.wav", announce=False))
                  for who in (SPEAKER, OTHER) for d in others for t in HELD_OUT[: len(HELD_OUT) * 2 // len(others) // 2]]
        self.clips = clips
        self.truth: list[list[tuple[str, float, float]]] = []  # per hour: (word, start_s, end_s)
        self.rss: list[tuple[float, float]] = []  # (stream hour, MB)
        self.hour_started: list[float] = []  # wall clock when each hour began

    def _hour(self, index: int, length: int) -> tuple[list[tuple[int, int]], list[tuple[str, float, float]]]:
        """Where each utterance starts (sample in the hour) and its clip; the hour's truth in stream seconds."""
        rng = np.random.default_rng((self.seed, index))
        placed, truth, t = [], [], int(rng.uniform(1, 3) * SAMPLE_RATE)
        for i in np.concatenate([rng.permutation(len(self.clips)) for _ in range(8)]):  # ~4 passes fill an hour
            word, x = self.clips[i]
            if t + len(x) > length - 3 * SAMPLE_RATE:
                break
            placed.append((t, int(i)))
            start = index * 3600 + t / SAMPLE_RATE
            truth.append((word, start, start + len(x) / SAMPLE_RATE))  # tuples: a day of dicts would cost ~10 MB
            t += len(x) + int(rng.uniform(2.5, 6.0) * SAMPLE_RATE)
        return placed, truth

    def chunks(self) -> Iterator[np.ndarray]:
        hour_len = 3600 * SAMPLE_RATE
        for h in range(-(-self.total // hour_len)):
            length = min(hour_len, self.total - h * hour_len)
            placed, truth = self._hour(h, length)
            self.truth.append(truth)
            self.hour_started.append(time.monotonic())
            rng = np.random.default_rng((self.seed, h, 1))
            gains = rng.uniform(0.3, 1.0, len(placed))
            k = 0  # next utterance to start
            active: list[tuple[int, np.ndarray]] = []  # (start sample, scaled clip) overlapping the chunk
            for pos in range(0, length, CHUNK):
                n = min(CHUNK, length - pos)
                if pos % (600 * SAMPLE_RATE) == 0:
                    self.rss.append((h + pos / hour_len, rss_mb()))
                level = 10 ** ((-50 + 4 * np.sin(2 * np.pi * (h * 3600 + pos / SAMPLE_RATE) / 1800)) / 20)
                out = rng.normal(0.0, level, n).astype(np.float32)
                while k < len(placed) and placed[k][0] < pos + n:
                    active.append((placed[k][0], gains[k] * self.clips[placed[k][1]][1]))
                    k += 1
                for start, x in active:
                    a, b = max(pos, start), min(pos + n, start + len(x))
                    if a < b:
                        out[a - pos : b - pos] += x[a - start : b - start]
                active = [(s, x) for s, x in active if s + len(x) > pos + n]
                yield out
        self.rss.append((self.total / (3600 * SAMPLE_RATE), rss_mb()))


class Lines(io.TextIOBase):
    """The daemon's stdout: counts the JSON events and keeps each word event as (word, t, start_s, end_s), small
    enough that the harness itself does not grow the memory being measured."""

    def __init__(self) -> None:
        self.events = 0
        self.words: list[tuple[str, float, float, float]] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line:
                e = json.loads(line)
                self.events += 1
                if e["event"] == "word":
                    self.words.append((e["word"], e["t"], e["start_s"], e["end_s"]))
        return len(text)


class SocketReader(threading.Thread):
    """A client of the event socket that counts whole lines; connects as soon as the socket appears."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.lines, self.connected = path, 0, threading.Event()

    def run(self) -> None:
        while True:  # the socket file appears at bind(), a moment before the daemon listens
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                client.connect(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                client.close()
                time.sleep(0.01)
        rest = b""
        while data := client.recv(65536):
            rest += data
            self.lines += rest.count(b"\n")
            rest = rest[rest.rfind(b"\n") + 1 :]
        client.close()


class _Accepted(logging.Handler):
    """Sets an event when the daemon logs that it accepted a socket client."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "socket_client":
            self.event.set()


class WaitForClient:
    """Holds the first chunk until the socket client is accepted, so no event is sent before anyone listens."""

    def __init__(self, source: SyntheticDay, accepted: threading.Event) -> None:
        self.sample_rate, self.source, self.accepted = source.sample_rate, source, accepted

    def chunks(self) -> Iterator[np.ndarray]:
        if not self.accepted.wait(60):
            raise RuntimeError("the socket client was never accepted")
        yield from self.source.chunks()


@dataclass
class LongRun:
    hours: list[Hour]
    stdout_events: int
    socket_lines: int
    daemon_events: int
    word_events: int
    wall_s: float
    stream_s: float
    rss_mb: list[tuple[float, float]]
    bundle_id: str


def run_long(hours: float, seed: int = 0, bundle: Path | None = None) -> LongRun:
    from edge_meta.device import Runtime
    from edge_meta.device.config import DeviceConfig
    from edge_meta.device.daemon import Daemon

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="edge-meta-long-") as tmp:
        sock = Path(tmp) / "run" / "events.sock"
        accepted = threading.Event()
        handler = _Accepted(accepted)
        logger = logging.getLogger("edge_meta.device")
        logger.addHandler(handler)
        old_level = logger.level
        logger.setLevel(logging.INFO)
        try:
            with Runtime.open(bundle, store=Path(tmp) / "profiles.db") as rt:
                bundle_id = rt.bundle.bundle_id
                for d in KEYWORDS:
                    rt.enroll_word(d, [FSDD / f"{d}_{SPEAKER}_{t}.wav" for t in range(5)], user=SPEAKER)
                day, out, reader = SyntheticDay(hours, seed), Lines(), SocketReader(sock)
                reader.start()
                daemon = Daemon(rt, WaitForClient(day, accepted), DeviceConfig(input="synthetic", socket=str(sock)), out=out)
                start = time.monotonic()
                daemon.run()
                wall = time.monotonic() - start
            reader.join(timeout=30)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
    ends = day.hour_started[1:] + [start + wall]
    per_hour = []
    for h, truth in enumerate(day.truth):
        mine = [_Det(*e) for e in out.words if h * 3600 <= e[1] < (h + 1) * 3600]
        s = score_detections(mine, [{"word": w, "start_s": a, "end_s": b, "keyword": w in KEYWORDS} for w, a, b in truth])
        per_hour.append(Hour(s["keywords"], s["hits"], s["false_alarms"], s["wrong_word"], ends[h] - day.hour_started[h],
                             [mb for t, mb in day.rss if h <= t < h + 1]))
    return LongRun(per_hour, out.events, reader.lines, daemon.events, len(out.words), wall, day.total / SAMPLE_RATE,
                   day.rss, bundle_id)


class _Det:
    def __init__(self, word: str, t: float, start_s: float, end_s: float) -> None:
        self.label, self.start_s, self.end_s = word, start_s, end_s


def report(r: LongRun) -> str:
    rows = ["| hour | keywords | hits | hit rate | false alarms | wrong word | wall time | RSS (MB) |",
            "|---|---|---|---|---|---|---|---|"]
    for h, x in enumerate(r.hours):
        rss = f"{min(x.rss_mb):.0f}-{max(x.rss_mb):.0f}" if x.rss_mb else "-"
        rows.append(f"| {h + 1} | {x.keywords} | {x.hits} | {x.hits / max(1, x.keywords):.1%} | {x.false_alarms} | "
                    f"{x.wrong_word} | {x.wall_s:.0f} s | {rss} |")
    keywords, hits = sum(x.keywords for x in r.hours), sum(x.hits for x in r.hours)
    rates = [x.hits / x.keywords for x in r.hours if x.keywords]
    simulated = r.stream_s / 3600
    lines = ["\n".join(rows), "",
             f"- all hours: {hits}/{keywords} keywords found ({hits / max(1, keywords):.1%}); per-hour hit rate "
             f"{min(rates):.1%}-{max(rates):.1%}; {sum(x.false_alarms for x in r.hours)} false alarms, "
             f"{sum(x.wrong_word for x in r.hours)} wrong words",
             f"- events: {r.daemon_events} counted by the daemon, {r.stdout_events} on stdout ({r.word_events} word "
             f"events), {r.socket_lines} received on the socket",
             f"- resident memory: {r.rss_mb[0][1]:.0f} MB at the start, {r.rss_mb[-1][1]:.0f} MB at the last sample "
             f"(hour {r.rss_mb[-1][0]:.1f}), peak sample {max(mb for _, mb in r.rss_mb):.0f} MB",
             f"- {simulated:g} simulated hour(s) took {r.wall_s:.0f} s: {r.stream_s / r.wall_s:.0f}x real time"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bundle", type=Path, help="default: the bundle shipped with edge-meta")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    r = run_long(args.hours, args.seed, args.bundle)
    body = report(r)
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from reliability_md import write_part

        write_part("long-run", "\n".join([
            f"### The daemon over {args.hours:g} simulated hours ({platform.machine()}, {os.cpu_count()} cores, a shared "
            f"machine; bundle {r.bundle_id}, int8 ONNX, 1 thread)",
            f"`nice -n 10 .venv/bin/python benchmarks/long_run.py --hours {args.hours:g} --seed {args.seed}"
            f"{f' --bundle {args.bundle}' if args.bundle else ''} --write`: "
            "two words enrolled from 5 FSDD takes of one speaker; every hour the same ~750 utterances (about half "
            "held-out takes of the keywords, half other digits by that speaker and another) in a new order, in -50 dBFS "
            "noise, through `Daemon` with a socket client. The resident memory includes the harness's own record of "
            "events and truth, which grows by about 70 KB per simulated hour (tracemalloc).", "", body]))


if __name__ == "__main__":
    main()
