"""Fuzz the device's inputs at scale: the targets of fuzz_targets.py, >= 10,000 cases each.

    nice -n 10 .venv/bin/python benchmarks/fuzz.py --cases 10000 [--write]

Cases come from the same hypothesis strategies as tests/test_fuzz.py (generation only: no shrinking,
no example database, a fixed seed). Each case runs with a wall-clock limit; it ends as "ok" (accepted
and valid), "typed" (refused with AudioError / BundleError / StoreError), "crash" (any other exception,
or an accepted result that breaks the contract) or "hang" (over the limit). Crashes are grouped by
exception and the innermost edge_meta frame, with one example each. ``--write`` replaces the
"fuzz" part of the reliability section of benchmarks/RESULTS.md. ``--engine atheris`` (or ``both``)
also runs benchmarks/fuzz_atheris.py: coverage-guided byte mutation of real files with libFuzzer
(`.venv/bin/pip install atheris` first: a benchmark-only tool, so not in the package's extras).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from fuzz_targets import TARGETS  # noqa: E402
from reliability_md import write_part  # noqa: E402


class Hang(Exception):
    pass


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    crashes: dict[str, str] = field(default_factory=dict)  # signature -> one example
    slowest_s: float = 0.0
    seconds: float = 0.0


def _signature(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "edge_meta" in f.filename or "fuzz_targets" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}: {str(exc)[:120]}"


def _on_alarm(signum, frame):
    raise Hang()


def run_target(name: str, cases: int, timeout_s: float, rng_seed: int) -> Tally:
    target, strategy = TARGETS[name]
    tally = Tally()

    @seed(rng_seed)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(case):
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            with tempfile.TemporaryDirectory(prefix="edge-meta-fuzz-") as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome = target(case, Path(tmp))
        except Hang:
            outcome = "hang"
            tally.crashes.setdefault(f"hang (> {timeout_s:g} s)", repr(case)[:300])
        except Exception as exc:  # noqa: BLE001 - counting them is the point
            outcome = "crash"
            tally.crashes.setdefault(_signature(exc), repr(case)[:300])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.monotonic() - start
        tally.slowest_s = max(tally.slowest_s, elapsed)
        tally.outcomes[outcome] += 1

    signal.signal(signal.SIGALRM, _on_alarm)
    start = time.monotonic()
    one()
    tally.seconds = time.monotonic() - start
    return tally


def run_atheris(name: str, cases: int) -> Tally:
    """fuzz_atheris.py in its own process (libFuzzer exits the process when it is done)."""
    with tempfile.TemporaryDirectory(prefix="edge-meta-atheris-") as tmp:
        tally_path, corpus = Path(tmp) / "tally.json", Path(tmp) / "corpus"
        corpus.mkdir()
        start = time.monotonic()
        r = subprocess.run([sys.executable, str(Path(__file__).with_name("fuzz_atheris.py")), name, str(cases),
                            str(tally_path), str(corpus)], capture_output=True, text=True)
        doc = json.loads(tally_path.read_text()) if tally_path.exists() else {"outcomes": {}, "crashes": {}, "slowest_s": 0}
    tally = Tally(Counter(doc["outcomes"]), doc["crashes"], doc["slowest_s"], time.monotonic() - start)
    if r.returncode:  # libFuzzer ended the run early: out of memory, or the harness itself failed
        reason = next((line for line in r.stderr.splitlines() if "ERROR: libFuzzer" in line), r.stderr[-300:])
        tally.outcomes["crash"] += 1
        tally.crashes[f"run ended after {sum(tally.outcomes.values()) - 1} counted cases: {reason.strip()}"] = ""
    return tally


def shipped_bundle_id() -> str:
    from edge_meta.bundle import MANIFEST
    from edge_meta.resources import default_bundle_path

    return json.loads((default_bundle_path() / MANIFEST).read_text())["bundle_id"]


def atheris_version() -> str:
    try:
        from importlib.metadata import version

        return version("atheris")
    except Exception:  # noqa: BLE001 - only for the description
        return "(not installed)"


def table(results: dict[tuple[str, str], Tally], timeout_s: float) -> str:
    rows = ["| engine | target | cases | accepted (valid) | typed error | crash | hang (> %g s) | slowest case | cases/s |"
            % timeout_s, "|---|---|---|---|---|---|---|---|---|"]
    for (engine, name), t in results.items():
        n = sum(t.outcomes.values())
        rows.append(f"| {engine} | {name} | {n} | {t.outcomes['ok']} | {t.outcomes['typed']} | {t.outcomes['crash']} | "
                    f"{t.outcomes['hang']} | {t.slowest_s:.2f} s | {n / t.seconds:.0f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000, help="cases per target")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--engine", choices=["hypothesis", "atheris", "both"], default="both",
                    help="hypothesis: structured cases; atheris: coverage-guided bytes (pip install atheris)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds one case may take before it counts as a hang")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    results = {}
    # atheris first: libFuzzer's memory limit reads ru_maxrss, which its process inherits from this one
    engines = ["atheris", "hypothesis"] if args.engine == "both" else [args.engine]
    for engine in engines:
        for name in args.targets:
            t = results[engine, name] = (run_target(name, args.cases, args.timeout, args.seed) if engine == "hypothesis"
                                         else run_atheris(name, args.cases))
            print(f"{engine} {name}: {dict(t.outcomes)} in {t.seconds:.0f} s", flush=True)
            for sig, example in t.crashes.items():
                print(f"  {sig}\n    e.g. {example}", flush=True)
    body = table(results, args.timeout)
    print(body)
    if args.write:
        crashes = [f"- {e} {name}: {sig}" for (e, name), t in results.items() for sig in t.crashes] or ["- none"]
        write_part("fuzz", "\n".join([
            f"### Fuzzing the device's inputs ({platform.machine()}, {os.cpu_count()} cores, a shared machine; "
            f"Python {platform.python_version()}; shipped bundle {shipped_bundle_id()})",
            f"`nice -n 10 .venv/bin/python benchmarks/fuzz.py --cases {args.cases} --seed {args.seed} --engine {args.engine} "
            "--write`. hypothesis: structured cases from the strategies of tests/test_fuzz.py (generation only); "
            f"atheris {atheris_version()}: libFuzzer mutating real files (an FSDD WAV, a FLAC take, a float WAV; the "
            "shipped manifest.json; an exported profile), guided by edge_meta's branch coverage. Every case runs in its "
            "own folder; a hang is a case over the time limit. The inputs that crashed the device before this "
            "fuzzing's fixes (16: RecursionError, MemoryError, TypeError, KeyError, onnxruntime errors, inf samples, "
            "a poisoned store) are regression cases in tests/test_fuzz.py.", "", body, "", "Crashes and hangs:",
            *crashes]))


if __name__ == "__main__":
    main()
