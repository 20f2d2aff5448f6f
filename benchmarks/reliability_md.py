"""The "reliability" section of benchmarks/RESULTS.md: one part each for fuzz.py, crash_safety.py and long_run.py,
so each script rewrites only its own table."""

from __future__ import annotations

from results_md import RESULTS, replace_section, write_section

PARTS = ("fuzz", "crash", "long-run")
HEADER = ("## Reliability (issue 7): fuzzed inputs, SIGKILL during enrollment, a long daemon run\n\n"
          "Written by benchmarks/fuzz.py, benchmarks/crash_safety.py and benchmarks/long_run.py (`--write`); "
          "the CI-sized versions are tests/test_fuzz.py, tests/test_crash_safety.py and tests/test_long_run.py.")


def write_part(part: str, body: str) -> None:
    """Replace one part, creating the section with all its (empty) parts the first time."""
    assert part in PARTS, part
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if "<!-- reliability:begin -->" not in text:
        empty = "\n\n".join(f"<!-- reliability:{p}:begin -->\n<!-- reliability:{p}:end -->" for p in PARTS)
        write_section("reliability", f"{HEADER}\n\n{empty}")
        text = RESULTS.read_text()
    RESULTS.write_text(replace_section(text, f"reliability:{part}", body))
