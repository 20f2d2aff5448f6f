"""The daemon on a few minutes of simulated stream (benchmarks/long_run.py runs hours of it): keywords found in
noise among other digits, and every event the daemon counts reaches stdout and the socket client."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from long_run import run_long  # noqa: E402


def test_minutes_of_stream_lose_no_event_and_find_the_keywords(fsdd_dir):
    r = run_long(hours=0.1, seed=3)  # 6 minutes
    [hour] = r.hours
    assert hour.keywords >= 30 and hour.hits >= 0.9 * hour.keywords
    assert hour.false_alarms + hour.wrong_word <= 0.25 * hour.keywords
    assert r.daemon_events == r.stdout_events == r.socket_lines == r.word_events > 0
    assert r.stream_s / r.wall_s > 10  # much faster than real time, or a long run could not be simulated
