"""Glue of the peer comparison (benchmarks/peers): workers, cache, matchers, mirrored trials, table.

No peer venv is needed: a fake worker stands in for a peer, and the project's own MFCC+DTW baseline
exercises the template path. The one real-peer smoke test skips when its venv is absent.
"""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from edge_meta.bench.dtw import mfcc_sequence  # noqa: E402
from edge_meta.bench.protocols import fewshot, open_set, speaker_eer, verification_trials  # noqa: E402
from edge_meta.episodes import EpisodeSampler  # noqa: E402
from edge_meta.frontend import FrontendSpec  # noqa: E402
from edge_meta.metrics import Estimate, episode_accuracy  # noqa: E402
from peers.evaluate import SetResult, open_set_trials  # noqa: E402
from peers.report import behind, det_points, table  # noqa: E402
from peers.runner import HERE, Worker, WorkerError, peer_worker, run_worker  # noqa: E402
from peers.systems import System, embedding_matcher, template_matcher  # noqa: E402
from peers.worker import read_clip  # noqa: E402

FAKE_PEER = textwrap.dedent('''
    import numpy as np
    from worker import serve

    class Fake:
        context_s = 0.0
        model_bytes = 123
        info = {"package": "fake 1.0", "models": "none"}

        def __init__(self, options):
            self.scale = float(options.get("scale", "1"))

        def embed(self, x):
            frames = self.scale * np.stack([x[:160 * (len(x) // 160)].reshape(-1, 160).std(1)] * 2, axis=1)
            return {"frames": frames, "pooled": frames.mean(0)}

    serve(Fake)
''')


def tone(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture()
def clips(tmp_path: Path) -> list[str]:
    """Three short tones, one at FSDD's 8 kHz (resampled by the worker), two at 16 kHz."""
    paths = []
    for k, (sr, secs) in enumerate([(8000, 0.4), (16000, 0.7), (16000, 1.3)]):
        path = tmp_path / f"clip{k}.wav"
        sf.write(path, tone(300 + 100 * k, secs, sr), sr, subtype="PCM_16")
        paths.append(str(path))
    return paths


@pytest.fixture()
def fake_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Worker:
    script = tmp_path / "fake_embed.py"
    script.write_text(FAKE_PEER)
    monkeypatch.setenv("PYTHONPATH", str(HERE))  # the real workers sit beside worker.py
    return Worker("fake", Path(sys.executable), script, {"scale": "2"})


def test_read_clip_resamples_8k_exactly_as_the_peers_were_measured(clips: list[str]) -> None:
    raw, sr = sf.read(clips[0], dtype="float32")
    assert sr == 8000
    np.testing.assert_allclose(read_clip(clips[0]), resample_poly(raw, 2, 1), atol=1e-6)


def test_worker_output_round_trip_and_cache(clips: list[str], fake_worker: Worker, tmp_path: Path) -> None:
    ballast = np.ones(300 * 2**20 // 8)  # a big parent: the worker must report its own peak, not ours
    out = run_worker(fake_worker, clips, tmp_path / "cache", log=lambda _: None)
    assert out.peak_rss_bytes < ballast.nbytes
    assert out.pooled.shape == (3, 2) and len(out.frames) == 3
    assert [len(f) for f in out.frames] == [40, 70, 130]  # 10 ms frames of 0.4 s (8 kHz, upsampled), 0.7 s, 1.3 s
    np.testing.assert_allclose(out.pooled, np.stack([f.mean(0) for f in out.frames]), rtol=1e-6)
    assert out.model_bytes == 123 and math.isfinite(out.latency_ms) and out.peak_rss_bytes > 2**20  # cost recorded
    assert out.info["package"] == "fake 1.0" and out.info["threads"] == "1"
    # Same clips, code and options: served from the cache, the interpreter is never started.
    cached = Worker("fake", Path("/nonexistent/python"), fake_worker.script, {"scale": "2"})
    np.testing.assert_array_equal(run_worker(cached, clips, tmp_path / "cache").pooled, out.pooled)
    # Anything that changes the embeddings changes the key.
    assert Worker("fake", cached.python, fake_worker.script, {"scale": "3"}).cache_key(clips) != cached.cache_key(clips)
    assert cached.cache_key(clips[:2]) != cached.cache_key(clips)


def test_a_failing_worker_reports_its_error(clips: list[str], fake_worker: Worker, tmp_path: Path) -> None:
    broken = tmp_path / "broken_embed.py"
    broken.write_text("raise SystemExit('no model here')\n")
    with pytest.raises(WorkerError, match="no model here"):
        run_worker(Worker("broken", fake_worker.python, broken), clips, tmp_path / "cache", log=lambda _: None)


def word_corpus(rng: np.random.Generator, words: int = 10, speakers: int = 3, takes: int = 6):
    """MFCC sequences of synthetic 'words' (tone glides) said by 'speakers' (pitch offsets), with noise."""
    seqs, labels, spk = [], [], []
    for w in range(words):
        for s in range(speakers):
            for _ in range(takes):
                sr, n = 16000, int(16000 * rng.uniform(0.35, 0.5))
                f = np.linspace(200 + 150 * w, 500 + 90 * w, n) * (1 + 0.08 * s)
                x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.01 * rng.normal(size=n)
                seqs.append(mfcc_sequence(np.pad(x, 1600).astype(np.float32), FrontendSpec()))
                labels.append(w)
                spk.append(s)
    return seqs, np.array(labels), np.array(spk)


def test_template_head_runs_the_protocols_as_nearest_template() -> None:
    seqs, labels, spk = word_corpus(np.random.default_rng(0))
    m = template_matcher(seqs)
    got = fewshot(m.make_head, m.emb, labels, spk, 1, "own", 40, seed=3)
    dist = m.make_head().dist

    def nearest(ep):  # the benchmark's own DTW scorer (edge_meta.bench.fewshot.dtw_scorer)
        return -dist[np.ix_(ep.query, ep.support)].reshape(len(ep.query), len(ep.classes), -1).min(axis=2)

    want = episode_accuracy(nearest, EpisodeSampler(labels, spk, 10, 1, 5, "own", 3), 40)
    assert got == want and got.mean > 0.5
    assert math.isfinite(m.match_ms)  # the match cost is recorded (its size is the benchmark's business)


def clustered(rng: np.random.Generator, labels: np.ndarray, spk: np.ndarray) -> np.ndarray:
    words, voices = rng.normal(size=(labels.max() + 1, 16)), rng.normal(size=(spk.max() + 1, 16))
    return words[labels] + 0.7 * voices[spk] + 0.8 * rng.normal(size=(len(labels), 16))


def test_verification_trials_match_the_projects_speaker_eer() -> None:
    rng = np.random.default_rng(1)
    labels, spk = np.repeat(np.arange(10), 24), np.tile(np.repeat(np.arange(4), 6), 10)
    emb = clustered(rng, labels, spk)
    from edge_meta.metrics import equal_error_rate

    trials = verification_trials(embedding_matcher(emb).enroll_scores, labels, spk, seed=5)
    want = speaker_eer(emb, labels, spk, seed=5)
    assert equal_error_rate(*trials["any word"]) == want["eer any word"]
    assert equal_error_rate(*trials["same word"]) == want["eer same word"]


def test_open_set_trials_match_the_projects_open_set() -> None:
    rng = np.random.default_rng(2)
    labels, spk = np.repeat(np.arange(10), 24), np.tile(np.repeat(np.arange(2), 12), 10)  # 10 takes for 5+5
    m = embedding_matcher(clustered(rng, labels, spk))
    want = open_set(m.make_head, m.emb, labels, spk, 30, seed=4)
    target, nontarget = open_set_trials(m.make_head, m.emb, labels, spk, 30, seed=4)
    for far in (0.01, 0.05):
        threshold = np.quantile(nontarget, 1 - far)
        assert np.mean(target > threshold) == pytest.approx(want[f"known acc @ {far:.0%} FA"])
    fa, miss = det_points((target, nontarget))
    assert np.all(np.diff(fa) <= 0) and np.all(np.diff(miss) >= 0)


def test_table_divides_edge_meta_by_the_best_peer_and_names_the_gaps() -> None:
    def result(acc: float, eer: float) -> SetResult:
        return SetResult({"own 1-shot": Estimate(acc, 0.01, 100)}, {"auroc": acc}, {"EER any word": eer})

    systems = [System("edge", False, None, {"ms / 1 s window": 1.0, "match ms": 0.1, "model bytes": 1e5,
                                            "peak RSS MB": 100.0}),
               System("peer A", True, None, {"ms / 1 s window": 2.0, "match ms": 0.1, "model bytes": 1e6,
                                             "peak RSS MB": 200.0}),
               System("peer B", True, None, {"ms / 1 s window": 4.0, "match ms": 0.2, "model bytes": 1e7,
                                             "peak RSS MB": 50.0})]
    results = {"edge": result(0.80, 0.10), "peer A": result(0.90, 0.20), "peer B": result(0.70, 0.05)}
    text = table("t", results, systems)
    ratio_row = text.splitlines()[-1].split(" | ")
    assert ratio_row[1:3] == ["0.89×", "0.89×"] and ratio_row[3] == "2.00×" and ratio_row[4] == "0.50×"
    gaps = behind(results, systems)
    assert any("peer A on own 1-shot: 80.0 vs 90.0 (10.0 points)" in g for g in gaps)
    assert any("peer B on EER any word" in g for g in gaps) and any("peer B on peak RSS MB" in g for g in gaps)
    assert not any("ms / 1 s window" in g for g in gaps)


def test_edge_meta_worker_embeds_with_the_shipped_bundle(clips: list[str], tmp_path: Path) -> None:
    from edge_meta.resources import default_bundle_path

    bundle = default_bundle_path()
    if not (bundle / "manifest.json").exists():
        pytest.skip(f"no shipped bundle at {bundle}")
    worker = Worker("edgemeta-onnx", Path(sys.executable), HERE / "edgemeta_embed.py",
                    {"bundle": str(bundle), "backend": "onnx", "precision": "int8"})
    out = run_worker(worker, clips, tmp_path, log=lambda _: None)
    np.testing.assert_allclose(np.linalg.norm(out.pooled, axis=1), 1.0, atol=1e-4)
    assert out.model_bytes > 0


def test_openwakeword_worker_when_installed(clips: list[str], tmp_path: Path) -> None:
    worker = peer_worker("openwakeword")
    if not worker.available():
        pytest.skip(f"openWakeWord venv absent ({worker.python}); run `bash benchmarks/peers/install.sh openwakeword`")
    out = run_worker(worker, clips, tmp_path, log=lambda _: None)
    assert out.pooled.shape == (3, 96) and all(len(f) >= 1 for f in out.frames)


def test_lineup_names_every_peer_and_an_absent_tflite_encoder() -> None:
    from edge_meta.resources import default_bundle_path
    from peers.lineup import lineup

    bundle = default_bundle_path()
    if not (bundle / "manifest.json").exists():
        pytest.skip(f"no shipped bundle at {bundle}")
    entries, absent = lineup(bundle)
    names = [e.name for e in entries]
    assert names[0] == "edge-meta int8 ONNX" and "MFCC + DTW templates" in names
    assert {e.install_name for e in entries if e.install_name} == {"openwakeword", "efficientword", "resemblyzer",
                                                                  "localwake"}
    has_tflite = "edge-meta int8 TFLite" in names
    assert has_tflite != any("TFLite" in line for line in absent)


def test_noisy_fsdd_sets_give_every_system_the_same_files(tmp_path: Path) -> None:
    """The noisy protocol's takes are written once, as the seeded mix, and reused as they are."""
    from edge_meta.audio import read_audio
    from edge_meta.bench.fewshot import eval_noise
    from edge_meta.noise import noisy_clips
    from peers.datasets import noisy_fsdd_sets

    shared = ROOT.parent / "shared" / "data"
    root = tmp_path / "data"
    (root / "fsdd").mkdir(parents=True)
    takes = sorted((shared / "fsdd").rglob("*.wav"))[::150]
    for take in takes:
        (root / "fsdd" / take.name).symlink_to(take)
    for corpus in ("speech_commands_test", "arabic_speech_commands"):
        (root / corpus).symlink_to(shared / corpus)
    sets = noisy_fsdd_sets(root, (10.0,), seed=3, cache=tmp_path / "cache")
    assert [s.name for s in sets] == ["FSDD, 2 s clean", "FSDD, 2 s 10 dB"]
    noisy = sets[1]
    expected = noisy_clips([read_audio(t, announce=False) for t in takes], eval_noise(root), 10.0, seed=3)
    for item, x in zip(noisy.items, expected):
        y, rate = sf.read(item.path, dtype="float32")
        assert rate == 16000 and np.abs(y - x).max() < 2 / 32768  # the mix, to 16-bit rounding
    assert [i.word for i in noisy.items] == [i.word for i in sets[0].items]
    stamps = [i.path.stat().st_mtime_ns for i in noisy.items]
    again = noisy_fsdd_sets(root, (10.0,), seed=3, cache=tmp_path / "cache")
    assert [i.path.stat().st_mtime_ns for i in again[1].items] == stamps  # read back, not rewritten
