"""The peers' streaming row (benchmarks/peers_stream.py): decision-rule replays, threshold sweep, metrics,
RESULTS.md markers on synthetic scores with known answers; then the real local-wake and EfficientWord-Net
workers on a short real stream, checked against the peers' own detector loops (skipped without their venvs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers_stream as ps  # noqa: E402
from peers.stream_rules import (Detection, efficientword_best_match, efficientword_score_frame,  # noqa: E402
                                localwake_replay)

FSDD = ROOT.parent / "shared" / "data" / "fsdd"


# --- local-wake's listen loop -------------------------------------------------------------------------

def lookup_from(full_hits: dict[int, list[float]], partial: dict[tuple[int, int], list[float]], n_refs: int = 2):
    """Distances 1.0 everywhere except the given (step -> full-buffer) and ((step, fill) -> partial) ones."""
    def lookup(step: int, fill: int) -> np.ndarray:
        if (step, fill) in partial:
            return np.array(partial[step, fill])
        return np.array(full_hits.get(step, [1.0] * n_refs)) if fill == 4 else np.ones(n_refs)
    return lookup


def test_localwake_fires_once_then_sees_a_zeroed_buffer() -> None:
    # A match at steps 5-7 on a full buffer: after firing at 5 the buffer is zeros + new slides, so 6 and 7
    # (fill 1 and 2) do not fire again; a later full-buffer match (step 12, fill 4 again) does.
    lookup = lookup_from({5: [1.0, 0.1], 6: [1.0, 0.1], 7: [1.0, 0.1], 12: [0.2, 1.0]}, {})
    dets = localwake_replay(lookup, 20, 4, 0.5, ["a", "b"], 0.25)
    assert dets == [Detection("b", 0.5, 1.5), Detection("a", 2.25, 3.25)]


def test_localwake_partial_buffer_and_first_reference_wins() -> None:
    # Step 0 has one real slide (the buffer starts zeroed); both references pass at step 9: the first in
    # support order fires even though the second is closer; the partial state right after it can fire too.
    lookup = lookup_from({9: [0.4, 0.01]}, {(0, 1): [0.3, 1.0], (11, 2): [1.0, 0.2]})
    dets = localwake_replay(lookup, 14, 4, 0.5, ["a", "b"], 0.25)
    assert dets == [Detection("a", 0.0, 0.25), Detection("a", 1.5, 2.5), Detection("b", 2.5, 3.0)]
    assert localwake_replay(lookup, 14, 4, 0.0, ["a", "b"], 0.25) == []


# --- EfficientWord-Net's detectors ---------------------------------------------------------------------

ENDS = (np.arange(8) + 1) * 0.75


def test_score_frame_relaxation_gate_and_several_keywords() -> None:
    scores = np.full((8, 2), 0.6)
    scores[[0, 1, 2, 3], 0] = 0.95  # keyword x passes at 0.75, 1.5, 2.25, 3.0 s: relaxation 2 s keeps 0.75 and 3.0
    scores[[3, 5], 1] = 0.9  # keyword y at 3.0 s (together with x) and 4.5 s (gated: skipped)
    gated = np.zeros(8, bool)
    gated[5] = True
    dets = efficientword_score_frame(ENDS, gated, scores, ["x", "y"], 0.8, 2.0, 1.5)
    assert dets == [Detection("x", -0.75, 0.75), Detection("x", 1.5, 3.0), Detection("y", 1.5, 3.0)]
    assert efficientword_score_frame(ENDS, gated, scores, ["x", "y"], 0.99, 2.0, 1.5) == []


def test_best_match_picks_the_best_and_still_relaxes_the_others() -> None:
    scores = np.full((8, 2), 0.6)
    scores[0] = [0.85, 0.95]  # both pass, y is better: y fires, x's clock starts too
    scores[1] = [0.9, 0.6]  # x is relaxing (0.75 s < 2 s): nothing
    scores[4] = [0.9, 0.6]  # 3.0 s after x's last activation: x fires (no gate in findBestMatch)
    gated = np.ones(8, bool)
    assert efficientword_best_match(ENDS, scores, ["x", "y"], 0.8, 2.0, 1.5) == [
        Detection("y", -0.75, 0.75), Detection("x", 2.25, 3.75)]
    assert efficientword_score_frame(ENDS, gated, scores, ["x", "y"], 0.8, 2.0, 1.5) == []


# --- sweep and metrics -----------------------------------------------------------------------------------

TRUTH = [{"word": "1", "start_s": 1.0, "end_s": 1.5, "keyword": True},
         {"word": "x", "start_s": 3.0, "end_s": 3.5, "keyword": False},
         {"word": "2", "start_s": 5.0, "end_s": 5.5, "keyword": True},
         {"word": "1", "start_s": 8.0, "end_s": 8.5, "keyword": True},
         {"word": "x", "start_s": 10.0, "end_s": 10.5, "keyword": False}]
CANDIDATES = [(0.9, Detection("1", 1.2, 1.4)), (0.8, Detection("1", 3.1, 3.2)), (0.7, Detection("2", 5.0, 5.2)),
              (0.6, Detection("2", 8.1, 8.3)), (0.5, Detection("1", 8.1, 8.3)), (0.4, Detection("1", 10.1, 10.2))]


def fake_scored(thresholds=(0.95, 0.85, 0.75, 0.55, 0.45)) -> ps.Scored:
    """Detections whose score reaches the threshold (a higher threshold keeps fewer)."""
    return ps.Scored(lambda t: [d for s, d in CANDIDATES if s >= t], np.array(thresholds), 1.0, {})


def test_det_curve_counts_hits_false_accepts_and_wrong_words() -> None:
    truth = ps.StreamTruth(TRUTH, 0.5, 0.2)
    det = ps.det_curve([(fake_scored(), truth), (fake_scored(), truth)], np.array([0.95, 0.85, 0.75, 0.55, 0.45]))
    # Per stream: 3 keywords. 0.85: 1 hit; 0.75: + a false alarm (3.1 s); 0.55: + 1 hit, + a wrong word (8.1 s "2");
    # 0.45: + the last hit at 8.1 s. Two identical streams, 1 non-keyword hour in all.
    assert [round(p["frr"], 4) for p in det] == [1.0, round(2 / 3, 4), round(2 / 3, 4), round(1 / 3, 4), 0.0]
    assert [p["fa_per_hour"] for p in det] == [0.0, 0.0, 2.0, 4.0, 4.0]
    assert ps.frr_at(det, 0.5) == pytest.approx(2 / 3)
    assert ps.frr_at(det, 2.0) == pytest.approx(2 / 3)
    assert ps.fa_at(det, 0.10) == 4.0
    assert ps.fa_at(det, 0.5) == 4.0
    assert ps.fa_at(det[:3], 0.10) is None


def test_det_curve_leaves_out_thresholds_where_a_stream_fires_too_often() -> None:
    # 12 s of stream: more than MAX_PER_MIN * 0.2 = 12 detections is too many.
    many = [(0.3, Detection("1", 20 + i, 20.5 + i)) for i in range(12)]
    scored = ps.Scored(lambda t: [d for s, d in CANDIDATES + many if s >= t], np.array([0.5, 0.2]), 1.0, {})
    det = ps.det_curve([(scored, ps.StreamTruth(TRUTH, 0.5, 0.2))], np.array([0.5, 0.2]))
    assert [p["threshold"] for p in det] == [0.5]


def test_common_thresholds_are_those_every_stream_swept() -> None:
    a, b = fake_scored((0.1, 0.2, 0.3)), fake_scored((0.1, 0.2))
    assert ps.common_thresholds([a, b]).tolist() == [0.1, 0.2]


def test_table_shows_a_failed_peer_and_unreached_targets() -> None:
    row = ps.Row("peer", [{"threshold": 0, "frr": 0.5, "fa_per_hour": 10.0}], 1.0, 0.9, 12, "3.0 (every 0.25 s)")
    text = ps.table([row, ps.Row("broken", error="worker failed (1): boom")])
    assert "| peer | 1.00 (0.90) | 12 | " + "not reached | " * 4 + "3.0 (every 0.25 s) |" in text
    assert "| broken | error: worker failed (1): boom |" in text


def test_a_stream_a_peer_cannot_take_is_left_out_of_its_row_and_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One stream failing (EfficientWord-Net refuses fewer than 4 takes) leaves the peer's other streams measured."""
    def worker(system, speaker, audio, takes, cache, log):
        if speaker == "three-takes":
            raise ps.WorkerError("worker failed (1): AssertionError: Minimum of 4 sample datapoints is required")
        np.savez(tmp_path / f"{speaker}.npz", scores=np.zeros(1))
        return tmp_path / f"{speaker}.npz"

    monkeypatch.setattr(ps, "run_worker", worker)
    system = ps.StreamSystem("fake", "fake peer", "none", "none.py", lambda out: fake_scored(), 0.1)
    truth = ps.StreamTruth(TRUTH, 0.5, 0.2)
    row = ps.measure(system, [("ok", np.zeros(16000), {}, truth), ("three-takes", np.zeros(16000), {}, truth)],
                     tmp_path, log=lambda m: None)
    assert not row.error and row.det and row.hours == 0.5
    assert row.skipped == ("1 of 2 streams left out (three-takes: worker failed (1): AssertionError: Minimum of 4 "
                           "sample datapoints is required)")
    failed = ps.measure(system, [("three-takes", np.zeros(16000), {}, truth)], tmp_path, log=lambda m: None)
    assert "Minimum of 4" in failed.error and not failed.det


def test_write_results_replaces_only_its_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# R\n<!-- peers:begin -->\npeers\n<!-- peers:end -->\n\n<!-- commands:begin -->\nc\n"
                       "<!-- commands:end -->\n")
    monkeypatch.setattr(ps, "RESULTS", results)
    ps.write_results("first body", "cmd")
    ps.write_results("second body", "cmd")
    text = results.read_text()
    assert text.count(ps.BEGIN) == 1 and "first body" not in text and "second body" in text
    assert text.index("<!-- peers:end -->") < text.index(ps.BEGIN) < text.index("<!-- commands:begin -->")
    assert "peers\n" in text and "c\n" in text


# --- the real peers on a short real stream --------------------------------------------------------------

def short_stream(seconds: float = 90.0):
    """The first speaker's stream_fsdd stream cut after its last segment that ends within ``seconds``."""
    if not FSDD.exists():
        pytest.skip(f"{FSDD} is missing")
    speaker, keywords, audio, truth = next(ps.streams(FSDD, 1, 0))
    truth = [w for w in truth if w["end_s"] <= seconds]
    seconds = truth[-1]["end_s"]
    audio = audio[: int(seconds * ps.SR)]
    takes = {str(d): ps.enrollment_takes(FSDD, speaker, d) for d in keywords}
    return speaker, audio, takes, ps.StreamTruth(truth, ps.non_keyword_hours(seconds, truth), seconds / 60)


def system(key: str) -> ps.StreamSystem:
    s = next(s for s in ps.SYSTEMS if s.key == key)
    if not s.python().exists():
        pytest.skip(f"{s.peer} venv missing: bash benchmarks/peers/install.sh {s.peer}")
    return s


def run_in_venv(s: ps.StreamSystem, script: str, tmp: Path, **files) -> list:
    """Run ``script`` in the peer's venv (benchmarks/peers on its path); it prints a JSON list."""
    path = tmp / "check.py"
    path.write_text(textwrap.dedent(script))
    peers = ROOT / "benchmarks" / "peers"
    proc = subprocess.run([str(s.python()), str(path), *map(str, files.values())], capture_output=True, text=True,
                          cwd=peers, env={**ps.THREAD_ENV, "PYTHONPATH": str(peers)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


LISTEN = '''
    import importlib, json, os, sys, tempfile, types
    import numpy as np, soundfile as sf
    L = importlib.import_module("lwake.listen")  # `import lwake.listen` gives the function the package re-exports
    from lwake.record import MIN_SAMPLES, pad_audio
    audio, takes, thresholds = np.load(sys.argv[1]), np.load(sys.argv[2]), json.loads(open(sys.argv[3]).read())
    folder = tempfile.mkdtemp()
    for name in takes.files:
        clip = pad_audio(takes[name][:, None], MIN_SAMPLES)
        sf.write(os.path.join(folder, name + ".wav"), clip, 16000, subtype="FLOAT")
    # listen walks os.listdir's (arbitrary) order; the worker uses file-name order
    L.os = types.SimpleNamespace(listdir=lambda p: sorted(os.listdir(p)), path=os.path)

    class End(Exception):
        pass

    class Stream:
        samplerate = 16000
        def __init__(self):
            self.reads = 0
        def read(self, n):
            if (self.reads + 1) * n > len(audio):
                raise End
            self.reads += 1
            return audio[(self.reads - 1) * n : self.reads * n, None], False

    out = []
    for t in thresholds:
        found, stream = [], Stream()
        try:
            L.listen(folder, t, buffer_size=2.0, slide_size=0.25, stream=stream,
                     callback=lambda d, s: found.append([s.reads - 1, d["wakeword"].rsplit("_", 1)[0]]))
        except End:
            pass
        out.append(found)
    print(json.dumps(out))
'''


def test_localwake_worker_matches_its_listen_loop_and_finds_a_word(tmp_path: Path) -> None:
    s = system("localwake")
    speaker, audio, takes, truth = short_stream()

    def scored_with(words: dict[str, list[np.ndarray]]) -> ps.Scored:
        path = ps.run_worker(s, speaker, audio, words, tmp_path / "cache", log=lambda m: None)
        return s.load(dict(np.load(path)))

    # One word enrolled alone (local-wake's usual set-up): it finds most of its utterances at some threshold.
    # With all three words one threshold and its first-match rule lose most of them (see RESULTS.md).
    found = {}
    for word in takes:
        alone = ps.StreamTruth([{**w, "keyword": w["keyword"] and w["word"] == word} for w in truth.truth],
                               truth.hours, truth.minutes)
        scored = scored_with({word: takes[word]})
        found[word] = max(1 - p["frr"] for p in ps.det_curve([(scored, alone)], scored.thresholds))
    assert max(found.values()) >= 0.5, f"local-wake found at most {found} of each word's utterances"
    # The replay is local-wake's own loop: the same (step, word) detections as lwake.listen at two thresholds.
    scored = scored_with(takes)
    firing = [float(t) for t in scored.thresholds if scored.detect(float(t))]
    picks = [firing[0], firing[-1]]  # the strictest threshold that fires, and the loosest swept
    real = peer_at_thresholds(s, LISTEN, tmp_path, audio, takes, picks)
    for t, listened in zip(picks, real):
        replayed = [[round(d.end_s / 0.25) - 1, d.label] for d in scored.detect(t)]
        assert replayed == listened and listened, f"threshold {t}"


def peer_at_thresholds(s, script: str, tmp_path: Path, audio: np.ndarray, takes: dict, picks: list[float]) -> list:
    """The peer's own loop (``script``, in its venv) on the stream at each threshold in ``picks``."""
    np.save(tmp_path / "audio.npy", audio)
    np.savez(tmp_path / "takes.npz", **{f"{w}_{i}": t for w, ts in takes.items() for i, t in enumerate(ts)})
    (tmp_path / "thresholds.json").write_text(json.dumps(picks))
    return run_in_venv(s, script, tmp_path, a=tmp_path / "audio.npy", t=tmp_path / "takes.npz",
                       th=tmp_path / "thresholds.json")


SCORE_FRAME = '''
    import json, random, sys, tempfile
    from pathlib import Path
    import numpy as np
    import efficientword_stream as W  # stubs pyaudio, as the worker does
    import eff_word_net.engine as E
    from eff_word_net.streams import CustomAudioStream
    from stream_worker import read_takes
    audio, takes, thresholds = np.load(sys.argv[1]), read_takes(Path(sys.argv[2])), json.loads(open(sys.argv[3]).read())
    clock = [0.0]  # HotwordDetector times its relaxation with time.time(); here the stream's clock
    E.current_time_in_sec = lambda: clock[0]
    out = []
    for t in thresholds:
        clock[0] = -100.0  # a detector starts its relaxation clock when made: long before the stream
        random.seed(0)  # the worker's seed and call order: the same reference embeddings
        model = W.one_thread_model()
        detectors = [W.detector(w, clips, model, Path(tempfile.mkdtemp())) for w, clips in takes.items()]
        for d in detectors:
            d.threshold, d.relaxation_time = t, 2.0
        n = len(audio) // 12000
        chunks = iter(audio[i * 12000 : (i + 1) * 12000] for i in range(n))
        stream = CustomAudioStream(lambda: None, lambda: None, lambda: next(chunks), 1.5, 0.75)
        stream.start_stream()
        found = []
        for step in range(n):
            frame = stream.getFrame()
            clock[0] = (step + 1) * 0.75
            for d in detectors:
                r = d.scoreFrame(frame)
                if r is not None and r["match"]:
                    found.append([step, d.hotword])
        out.append(found)
    print(json.dumps(out))
'''


def test_efficientword_worker_matches_its_score_frame_detectors(tmp_path: Path) -> None:
    s = system("efficientword")
    speaker, audio, takes, truth = short_stream()
    scored = s.load(dict(np.load(ps.run_worker(s, speaker, audio, takes, tmp_path / "cache", log=lambda m: None))))
    det = ps.det_curve([(scored, truth)], scored.thresholds)
    found = max(1 - p["frr"] for p in det)
    assert found >= 0.5, f"EfficientWord-Net found at most {100 * found:.0f}% of the keywords at any threshold"
    best = min(det, key=lambda p: (p["frr"] > 0.3, p["fa_per_hour"], p["frr"]))["threshold"]
    picks = [best, 0.75]
    real = peer_at_thresholds(s, SCORE_FRAME, tmp_path, audio, takes, picks)
    for t, listened in zip(picks, real):
        replayed = [[round(d.end_s / 0.75) - 1, d.label] for d in scored.detect(t)]
        assert replayed == listened and listened, f"threshold {t}"
