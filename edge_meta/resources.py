"""Files shipped inside the package: the default bundle and the demo's sample clips."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"


def default_bundle_path() -> Path:
    return DATA / "default_bundle"


def samples_path() -> Path:
    return DATA / "samples"
