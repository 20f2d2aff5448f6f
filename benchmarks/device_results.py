"""Shared by the device benchmarks: the machine line and their sub-sections of benchmarks/RESULTS.md.

The device numbers live between ``<!-- device:begin -->`` and ``<!-- device:end -->``; each script
owns one sub-section inside (``<!-- device-NAME:begin -->`` ... ``<!-- device-NAME:end -->``) and
rewrites only that one, so the scripts can be rerun separately.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- device:begin -->", "<!-- device:end -->"
INTRO = ("## Device runtime (issue 5): streaming detection on real speech, and what it costs\n\n"
         "Measured by `benchmarks/stream_fsdd.py`, `benchmarks/stream_variants.py` and `benchmarks/device_cost.py` on the development machine "
         "(x86, shared with other jobs), one thread, onnxruntime CPU, the shipped int8 bundle unless said. "
         "Board numbers are not measured yet: see firmware_notes/.")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def stamp() -> str:
    cmd = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    return f"Measured {dt.date.today().isoformat()} on {machine()}; command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python {cmd}`"


def write_section(name: str, body: str) -> None:
    """Replace this script's sub-section of the device section (creating either when missing)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{INTRO}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    section, tail = rest.split(END, 1)
    begin, end = f"<!-- device-{name}:begin -->", f"<!-- device-{name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in section and end in section:
        before, after = section.split(begin, 1)
        section = before + block + after.split(end, 1)[1]
    else:
        section = section.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(head + BEGIN + section + END + tail)
