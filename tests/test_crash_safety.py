"""SIGKILL at random moments while a process enrolls, removes words and forgets users: after every kill the
store passes PRAGMA integrity_check, holds every operation the process reported done, and no word is
half-written (benchmarks/crash_safety.py does the same 200+ times; tests/test_store.py kills once inside a
transaction at a chosen point)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from crash_safety import run_kills  # noqa: E402


def test_the_store_survives_ten_sigkills_at_random_points(tmp_path, fsdd_dir):
    r = run_kills(tmp_path / "profiles.db", kills=10, seed=1, max_delay_s=0.6)
    assert r.failures == []
    assert r.kills == 10 and r.operations_done >= 20  # the children really worked between kills
    assert r.mid_operation >= 3  # and were killed inside an operation, not only between them
