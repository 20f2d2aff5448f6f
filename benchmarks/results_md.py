"""One place that rewrites a marked section of benchmarks/RESULTS.md (``<!-- NAME:begin -->`` ... ``end``),
so every benchmark script can regenerate its own table without touching the others."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def replace_section(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + begin + "\n" + body + "\n" + end + "\n"


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(replace_section(text, name, body))
