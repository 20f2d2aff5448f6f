"""Shared fixtures: the real corpora in ../shared/data (tests that need them skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _corpus(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"real-speech corpus {path} is absent (it ships beside the project in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return _corpus("fsdd")


@pytest.fixture(scope="session")
def gsc_dir() -> Path:
    return _corpus("speech_commands_test")


@pytest.fixture(scope="session")
def arabic_dir() -> Path:
    return _corpus("arabic_speech_commands")
