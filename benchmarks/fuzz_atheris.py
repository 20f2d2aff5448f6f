"""Coverage-guided byte fuzzing of the same targets with atheris (libFuzzer), one target per process.

    .venv/bin/pip install atheris    # a manylinux wheel: no build needed on x86_64
    nice -n 10 .venv/bin/python benchmarks/fuzz_atheris.py audio 10000 tally.json corpus/

libFuzzer mutates whole files, starting from real ones (an FSDD WAV, a FLAC take, a float WAV; the
shipped bundle's manifest.json; an exported profile), steered by the branches of edge_meta it reaches
(instrumented). Each input is counted like benchmarks/fuzz.py counts a case, nothing is raised to
libFuzzer, so a crash does not stop the run, except running out of memory, which libFuzzer itself
detects and ends the process for. The tally is written to the JSON file every 50 runs and after the last. New inputs libFuzzer keeps go to the corpus folder. benchmarks/fuzz.py --engine atheris runs this for each target.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import atheris  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

with atheris.instrument_imports(include=["edge_meta"]):
    from fuzz_targets import FSDD, AudioCase, BundleCase, ProfileCase, audio_target, base_profile, bundle_target, \
        profile_target  # noqa: E402

from edge_meta.bundle import MANIFEST  # noqa: E402
from edge_meta.resources import default_bundle_path, samples_path  # noqa: E402

TIMEOUT_S = 10.0
RSS_LIMIT_MB = 2048  # libFuzzer stops the run when the process grows past this: benchmarks/fuzz.py counts it as a crash


def seeds(target: str) -> list[bytes]:
    if target == "audio":
        buf = io.BytesIO()
        sf.write(buf, np.random.default_rng(0).uniform(-1, 1, (800, 2)).astype(np.float32), 44100, subtype="FLOAT",
                 format="WAV")
        return [(FSDD / "3_theo_0.wav").read_bytes(), next((samples_path() / "enroll").glob("*.flac")).read_bytes(),
                buf.getvalue()]
    if target == "bundle":
        return [(default_bundle_path() / MANIFEST).read_bytes()]
    return [base_profile().encode()]


def case_of(target: str, data: bytes):
    if target == "audio":
        return AudioCase(data, ".wav")
    if target == "bundle":
        return BundleCase("manifest_text", data)
    return ProfileCase("raw", data)


class Hang(Exception):
    pass


def main() -> None:
    target, cases, out, corpus = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    run = {"audio": audio_target, "bundle": bundle_target, "profile": profile_target}[target]
    tally, crashes, start, slowest = Counter(), {}, time.monotonic(), [0.0]

    def on_alarm(signum, frame):
        raise Hang()

    def one(data: bytes) -> None:
        t = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
        try:
            with tempfile.TemporaryDirectory(prefix="edge-meta-fuzz-") as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tally[run(case_of(target, data), Path(tmp))] += 1
        except Hang:
            tally["hang"] += 1
            crashes.setdefault(f"hang (> {TIMEOUT_S:g} s)", data[:200].hex())
        except Exception as exc:  # noqa: BLE001 - counted, never raised: libFuzzer would stop at the first
            tally["crash"] += 1
            crashes.setdefault(f"{type(exc).__name__}: {str(exc)[:120]}", data[:200].hex())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest[0] = max(slowest[0], time.monotonic() - t)
        n = sum(tally.values())
        if n % 50 == 0 or n >= cases:
            out.write_text(json.dumps({"outcomes": tally, "crashes": crashes, "seconds": time.monotonic() - start,
                                       "slowest_s": slowest[0]}))

    signal.signal(signal.SIGALRM, on_alarm)
    for i, seed in enumerate(seeds(target)):
        (corpus / f"seed{i}").write_bytes(seed)
    max_len = max(len(s) for s in seeds(target)) + 4096
    atheris.Setup([sys.argv[0], f"-runs={cases}", "-timeout=0", f"-max_len={max_len}", "-seed=1",
                   f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={corpus}/", "-print_final_stats=1", str(corpus)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
