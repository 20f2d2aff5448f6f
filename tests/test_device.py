"""The device runtime on the shipped bundle and real recordings: enroll, store, detect, re-embed."""

import json
import os
import shutil
import stat

import numpy as np
import pytest

from edge_meta.audio import read_audio
from edge_meta.bundle import MANIFEST, write_manifest
from edge_meta.demo import score_detections
from edge_meta.device import Runtime
from edge_meta.device.quality import loudest_frame_dbfs
from edge_meta.device.sources import ArraySource
from edge_meta.errors import AudioError, StoreError
from edge_meta.resources import default_bundle_path, samples_path


def fsdd_takes(fsdd_dir, digit, speaker, takes):
    return [fsdd_dir / "recordings" / f"{digit}_{speaker}_{t}.wav" for t in takes]


def test_demo_stream_finds_the_enrolled_words(tmp_path):
    """Three words, three takes each, from the shipped samples; the recorded stream holds each twice."""
    truth = json.loads((samples_path() / "stream.json").read_text())
    with Runtime.open(store=tmp_path / "p.db") as rt:
        for word in truth["keywords"]:
            rt.enroll_word(word, sorted((samples_path() / "enroll").glob(f"{word}_*.flac")), user=truth["user"])
        detections = rt.detect_file(samples_path() / "stream.flac")
    s = score_detections(detections, truth["words"])
    assert s["hits"] >= s["keywords"] - 1
    assert s["false_alarms"] + s["wrong_word"] <= 1


def test_store_persists_words_and_is_private(tmp_path, fsdd_dir):
    store = tmp_path / "profiles.db"
    with Runtime.open(store=store) as rt:
        w = rt.enroll_word("three", fsdd_takes(fsdd_dir, 3, "nicolas", range(3)), user="nico")
        assert 0.0 < w.calibration.threshold < 1.0
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    with Runtime.open(store=store) as rt:
        words = rt.store.words()
        assert [(x.label, x.user, len(x.embeddings)) for x in words] == [("three", "nico", 3)]
        rt.remove_word("three", "nico")
        assert rt.store.words() == []
        with pytest.raises(StoreError, match="no enrolled word"):
            rt.remove_word("three", "nico")


def test_detection_separates_enrolled_words_from_unknown_ones(tmp_path, fsdd_dir):
    """Own speaker: enrolled words are found with the right label, other digits mostly come out unknown."""
    with Runtime.open(store=tmp_path / "p.db") as rt:
        for d in (1, 4, 7):
            rt.enroll_word(str(d), fsdd_takes(fsdd_dir, d, "george", range(5)))
        det_right = det_unknown = 0
        for d in (1, 4, 7):
            for t in range(10, 20):
                hits = rt.detect_file(fsdd_dir / "recordings" / f"{d}_george_{t}.wav")
                det_right += bool(hits) and hits[0].label == str(d)
        for d in (0, 2, 3, 5, 6, 8, 9):
            for t in range(10, 14):
                det_unknown += not rt.detect_file(fsdd_dir / "recordings" / f"{d}_george_{t}.wav")
    assert det_right >= 22  # of 30
    assert det_unknown >= 21  # of 28


def test_several_users_enroll_the_same_word(tmp_path, fsdd_dir):
    """One label, three users: a detection names the user whose takes the window is most like."""
    users = ("george", "jackson", "nicolas")
    with Runtime.open(store=tmp_path / "p.db") as rt:
        for u in users:
            rt.enroll_word("five", fsdd_takes(fsdd_dir, 5, u, range(5)), user=u)
        assert rt.vocabulary()[0].keys == [("five", u) for u in users]
        right = 0
        for u in users:
            for t in range(10, 20):
                hits = rt.detect_file(fsdd_dir / "recordings" / f"5_{u}_{t}.wav")
                right += bool(hits) and hits[0].user == u and hits[0].label == "five"
    assert right >= 18  # of 30; chance is 10


def test_a_new_bundle_re_embeds_kept_audio(tmp_path, fsdd_dir):
    other = tmp_path / "bundle2"
    shutil.copytree(default_bundle_path(), other)
    m = json.loads((other / MANIFEST).read_text())
    m["provenance"]["note"] = "a rebuilt bundle has a new id"
    for key in ("files", "bundle_id", "schema_version"):
        m.pop(key)
    write_manifest(other, m)
    store = tmp_path / "p.db"
    with Runtime.open(store=store) as rt:
        rt.enroll_word("eight", fsdd_takes(fsdd_dir, 8, "yweweler", range(3)))
        rt.enroll_word("two", fsdd_takes(fsdd_dir, 2, "yweweler", range(3)), keep_audio=False)
        old = rt.bundle.bundle_id
    with pytest.warns(UserWarning, match="'two' was enrolled with another model"), Runtime.open(other, store=store) as rt:
        words = {w.label: w for w in rt.store.words()}
        assert words["eight"].bundle_ids == [rt.bundle.bundle_id] * 3 != [old] * 3
        assert words["two"].bundle_ids == [old] * 3
        assert [k for k, _ in rt.vocabulary()[0].keys] == ["eight"]
        assert rt.store.bundle_id == rt.bundle.bundle_id


def test_bad_takes_are_refused_and_nothing_is_stored(tmp_path, fsdd_dir):
    good = fsdd_takes(fsdd_dir, 5, "jackson", range(2))
    with Runtime.open(store=tmp_path / "p.db") as rt:
        with pytest.raises(AudioError, match="silent"):
            rt.enroll_word("five", [*good, np.zeros(8000, np.float32)])
        with pytest.raises(AudioError, match="NaN"):
            rt.enroll_word("five", [*good, np.full(8000, np.nan, np.float32)])
        with pytest.raises(StoreError, match="word is empty"):
            rt.enroll_word("  ", good)
        with pytest.raises(AudioError, match="too quiet"):
            x = read_audio(good[0], announce=False)
            rt.enroll_word("five", [*good, x * 10 ** ((-52 - loudest_frame_dbfs(x)) / 20)])  # peak at -52 dBFS
        with pytest.raises(AudioError, match="too short"):
            click = np.zeros(16000, np.float32)
            click[8000:8800] = 0.5 * np.sin(np.arange(800) * 0.3)
            rt.enroll_word("five", [*good, click])
        with pytest.raises(StoreError, match="without a user"):
            rt.enroll_word("five", good, bind_speaker=True)
        assert rt.store.words() == []


def test_streaming_in_odd_chunk_sizes_gives_the_same_detections(tmp_path, fsdd_dir):
    audio = np.concatenate([np.zeros(8000, np.float32)] + [
        np.concatenate([read_audio(p, announce=False), np.zeros(12000, np.float32)])
        for p in fsdd_takes(fsdd_dir, 9, "jackson", range(10, 14))])
    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.enroll_word("nine", fsdd_takes(fsdd_dir, 9, "jackson", range(3)))
        runs = []
        for chunk_s in (0.1, 0.0137, 0.73):
            det = rt.detector()
            found = [d for c in ArraySource(audio, chunk_s).chunks() for d in det.process(c)] + det.flush()
            runs.append([(d.label, round(d.start_s, 2)) for d in found])
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]) >= 3


def test_a_hold_keeps_scores_only_after_a_hop_far_below_every_threshold():
    from edge_meta.device.detector import Hold, HopScores

    far, near = np.array([0.2, 0.3], np.float32), np.array([0.2, 0.55], np.float32)
    gated = HopScores(0, np.full(2, -1.0, np.float32), np.zeros(0), gated=True)
    hops = [HopScores(i, s, np.zeros(0)) for i, s in enumerate([far, far, far, near, far, far])]
    hops.insert(5, gated)
    kept = Hold(np.array([0.6, 0.6], np.float32), below=0.15, hops=1).replay(hops)
    # far -> held; far -> held is not re-offered, so the third is scored; near is scored and offers nothing
    assert [h.held for h in kept] == [False, True, False, True, False, False, False]
    assert kept[1].boundary == 1 and kept[1].words is far
    assert [h.held for h in Hold(np.array([0.6, 0.6]), below=0.15, hops=2).replay(hops[:4])] == [False, True, True, False]
    assert not any(h.held for h in Hold(np.array([0.6, 0.6]), below=float("inf")).replay(hops))


def test_holding_skips_encoder_calls_not_words(tmp_path, fsdd_dir):
    """jackson's 'nine' among his other digits: with the default hold the encoder runs on far fewer hops, and the
    same nines are found as when every hop is scored (a peak at most one hop apart)."""
    from edge_meta.device.detector import DetectorConfig

    clips = [p for t in range(10, 16) for p in fsdd_takes(fsdd_dir, 9, "jackson", [t])
             + fsdd_takes(fsdd_dir, t % 9, "jackson", [t, t + 10])]
    audio = np.concatenate([np.concatenate([read_audio(p, announce=False), np.zeros(6000, np.float32)]) for p in clips])
    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.enroll_word("nine", fsdd_takes(fsdd_dir, 9, "jackson", range(5)))
        runs = {}
        for below in (float("inf"), DetectorConfig().hold_below):
            det = rt.detector(DetectorConfig(hold_below=below))
            found = [d for c in ArraySource(audio).chunks() for d in det.process(c)] + det.flush()
            runs[below] = ([(d.label, round(d.start_s, 2)) for d in found], det.encoder_calls)
    (every, every_calls), (held, held_calls) = runs.values()
    assert [w for w, _ in held] == [w for w, _ in every] and len(every) >= 4
    assert max(abs(a - b) for (_, a), (_, b) in zip(held, every)) <= 0.1 + 1e-6  # a peak may move by one hop
    assert held_calls < 0.85 * every_calls


class RecordingBackend:
    """Keeps every window the detector hands the encoder, with the stream position (the window's end)."""

    def __init__(self, inner):
        self.inner, self.name, self.separable, self.windows = inner, inner.name, inner.separable, []
        self.takes_waveform = inner.takes_waveform
        self.detector = None

    def embed(self, features, outputs=None, waveform=None):
        self.windows.append((self.detector.next_boundary, features[0, 0].copy()))
        return self.inner.embed(features, outputs, waveform=waveform)


def test_frames_skipped_below_the_gate_are_computed_when_it_opens(tmp_path, fsdd_dir):
    """Quiet stretches (silence, then faint noise) between words leave the log-mel frames uncomputed; every window
    the encoder then sees equals the one computed offline from the whole stream (to float32 rounding: the frames
    are computed in other batches)."""
    rng = np.random.default_rng(0)
    quiet = [np.zeros(40000, np.float32), (1e-4 * rng.standard_normal(30000)).astype(np.float32)]
    words = [read_audio(p, announce=False) for p in fsdd_takes(fsdd_dir, 4, "theo", range(10, 14))]
    audio = np.concatenate([x for w, q in zip(words, quiet * 2) for x in (q, w)])
    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.enroll_word("four", fsdd_takes(fsdd_dir, 4, "theo", range(3)))
        rt.backend = RecordingBackend(rt.backend)
        det = rt.backend.detector = rt.detector()
        for c in ArraySource(audio, 0.2).chunks():
            det.process(c)
        spec = rt.logmel.spec
        frames = rt.logmel.log_mel_frames(np.concatenate([np.zeros(det.lead, np.float32), audio]))
        windows = rt.backend.windows
    assert 0.2 < det.encoder_calls / det.hops < 0.8 and len(windows) == det.encoder_calls  # the gate shut a while
    for boundary, window in windows:
        end = 1 + (boundary - spec.win_length) // spec.hop_length
        offline = rt.logmel.normalise(frames[end - spec.n_frames : end]).T
        np.testing.assert_allclose(window, offline, atol=1e-5)
