"""SIGKILL an enrolling process again and again; after every kill the profile store must be whole.

    nice -n 10 .venv/bin/python benchmarks/crash_safety.py --kills 200 [--write]

A child process (this file with ``--child``) opens the runtime on one store and loops forever over
real operations on FSDD takes: enroll a word with k takes (its label ``w<n>x<k>`` says k), remove a
word, or forget a user (delete + VACUUM). It prints ``begin <op>`` before and ``done <op>`` after each
one, flushed. The parent kills it with SIGKILL at a random moment, then checks the store:
``PRAGMA integrity_check`` is ok and no take is orphaned; every operation the child reported done is
there; a word present has all k of its takes and their audio (nothing half-written); and the store
equals the reported state, or that state plus the one operation in flight (it may have committed
just before the kill). The next child continues on the same store, so damage would accumulate.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
MAX_WORDS = 6  # beyond this the child removes more than it enrolls, so calibration stays cheap
USERS = ("u0", "u1", "u2")


# -- the child --------------------------------------------------------------------------------------
def child(store: Path, start: int, seed: int) -> None:
    """Enroll, remove and forget on ``store`` until killed, saying what it does (line-buffered, flushed)."""
    import warnings

    from edge_meta.audio import read_audio
    from edge_meta.device import Runtime

    warnings.simplefilter("ignore")
    rng = random.Random(seed)
    takes = {d: [read_audio(FSDD / f"{d}_theo_{t}.wav", announce=False) for t in range(5)] for d in (3, 5, 8)}
    say = lambda text: print(text, flush=True)  # noqa: E731
    with Runtime.open(store=store) as rt:
        say("ready")
        n = start
        while True:
            words = {w.label: w.user for w in rt.store.words()}
            r = rng.random()
            if words and (len(words) >= MAX_WORDS and r < 0.6 or r < 0.15):
                label = rng.choice(sorted(words))
                say(f"begin remove {label} {words[label]}")
                rt.remove_word(label, words[label])
                say(f"done remove {label} {words[label]}")
            elif words and r < 0.22:
                user = rng.choice(sorted(set(words.values())))
                say(f"begin forget - {user}")
                rt.forget_user(user)
                say(f"done forget - {user}")
            else:
                k, user = rng.randint(2, 5), rng.choice(USERS)
                label = f"w{n}x{k}"
                n += 1
                say(f"begin add {label} {user}")
                # forced: this measures the store's durability, not enrollment's rules (two takes may disagree)
                rt.enroll_word(label, takes[(3, 5, 8)[n % 3]][:k], user=user, force=True)
                say(f"done add {label} {user}")


# -- the parent -------------------------------------------------------------------------------------
@dataclass
class Report:
    kills: int = 0
    mid_operation: int = 0  # killed between "begin" and "done"
    in_flight_committed: int = 0  # ... and the store shows that operation done
    operations_done: int = 0  # reported done by the children, all verified present
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def apply(state: dict[str, str], op: tuple[str, str, str]) -> dict[str, str]:
    """The store's words (label -> user) after one operation."""
    kind, label, user = op
    state = dict(state)
    if kind == "add":
        state[label] = user
    elif kind == "remove":
        state.pop(label, None)
    else:
        state = {w: u for w, u in state.items() if u != user}
    return state


def inspect(store: Path) -> tuple[dict[str, str], list[str]]:
    """(words as label -> user, problems) read with plain sqlite3, then through ProfileStore."""
    from edge_meta.device.store import ProfileStore

    problems = []
    db = sqlite3.connect(store)
    try:
        if (ok := db.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"integrity_check: {ok}")
        orphans = db.execute("SELECT count(*) FROM takes WHERE word_id NOT IN (SELECT id FROM words)").fetchone()[0]
        if orphans:
            problems.append(f"{orphans} orphaned takes")
        rows = db.execute("SELECT w.label, w.user, w.threshold, count(t.id), count(t.audio) FROM words w "
                          "LEFT JOIN takes t ON t.word_id = w.id GROUP BY w.id").fetchall()
    finally:
        db.close()
    for label, _, threshold, n_takes, n_audio in rows:
        k = int(label.split("x")[1])
        if not n_takes == n_audio == k:
            problems.append(f"{label} is half-written: {n_takes} takes, {n_audio} recordings, expected {k}")
        if not math.isfinite(threshold):
            problems.append(f"{label} has threshold {threshold}")
    store_ = ProfileStore(store)  # and the library opens it
    store_.close()
    return {label: user for label, user, *_ in rows}, problems


def kill_once(store: Path, state: dict[str, str], start: int, seed: int, delay_s: float, report: Report) -> dict[str, str]:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(store), "--start", str(start), "--seed", str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    if first.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the child did not start: {first!r} {proc.stderr.read()[-2000:]}")
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    lines = proc.stdout.read().splitlines()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    report.kills += 1
    in_flight = None
    for line in lines:
        word, *op = line.split()
        if word == "begin":
            in_flight = tuple(op)
        elif word == "done":
            state = apply(state, tuple(op))
            report.operations_done += 1
            in_flight = None
    actual, problems = inspect(store)
    report.mid_operation += in_flight is not None
    if actual == state:
        return state
    if in_flight is not None and actual == apply(state, in_flight):
        report.in_flight_committed += 1
        return actual
    problems.append(f"store {sorted(actual.items())} != reported {sorted(state.items())} (in flight: {in_flight})")
    report.failures += [f"kill {report.kills}: {p}" for p in problems]
    return actual


def run_kills(store: Path, kills: int, seed: int = 0, max_delay_s: float = 1.5) -> Report:
    """``kills`` children on one store, each killed after a random 0-``max_delay_s`` s of work."""
    rng = random.Random(seed)
    report, state = Report(), {}
    start = time.monotonic()
    for i in range(kills):
        state = kill_once(store, state, 10_000 * i, seed * 100_000 + i, rng.uniform(0.0, max_delay_s), report)
    report.seconds = time.monotonic() - start
    return report


def shipped_bundle_id() -> str:
    from edge_meta.bundle import Bundle
    from edge_meta.resources import default_bundle_path

    return Bundle.open(default_bundle_path()).bundle_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-delay", type=float, default=1.5, help="longest time a child works before it is killed (s)")
    ap.add_argument("--store", type=Path, help="default: a fresh file in a temporary folder")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.start, args.seed)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edge-meta-crash-") as tmp:
        store = args.store or Path(tmp) / "profiles.db"
        r = run_kills(store, args.kills, args.seed, args.max_delay)
    body = "\n".join([
        "| kills | killed mid-operation | ... and that operation had committed | operations reported done (all verified) "
        "| integrity / lost / half-written failures | time |",
        "|---|---|---|---|---|---|",
        f"| {r.kills} | {r.mid_operation} | {r.in_flight_committed} | {r.operations_done} | {len(r.failures)} | "
        f"{r.seconds:.0f} s |"])
    print(body)
    for f in r.failures:
        print(" ", f)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from reliability_md import write_part

        write_part("crash", "\n".join([
            f"### SIGKILL during enrollment ({platform.machine()}, {os.cpu_count()} cores, a shared machine; "
            f"shipped bundle {shipped_bundle_id()})",
            f"`nice -n 10 .venv/bin/python benchmarks/crash_safety.py --kills {args.kills} --seed {args.seed} --write`: "
            "children enroll (2-5 FSDD takes), remove words and forget users (with VACUUM) on one store and are "
            f"SIGKILLed after a random 0-{args.max_delay:g} s; after each kill the store must pass `PRAGMA integrity_check`, "
            "hold every operation the child reported done, no half-written word and no orphaned take.", "", body,
            *(["", "Failures:", *[f"- {f}" for f in r.failures]] if r.failures else [])]))
    if r.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
