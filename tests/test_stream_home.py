"""benchmarks/stream_home.py's bookkeeping on real audio (issue 17): its replayed counts are what the live
detector does on a stream with known keyword positions, its negatives never hold the enrolled word, household
enrollment takes come from distinct speakers and the queries from others, and a seed fixes the stream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import stream_home as sh  # noqa: E402

from edge_meta.audio import read_audio  # noqa: E402
from edge_meta.device import Runtime  # noqa: E402
from edge_meta.device.detector import DetectorConfig  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def corpora() -> None:
    for path in (sh.OCEAN / "sentences.tsv", sh.DATA / "fsdd"):
        if not path.exists():
            pytest.skip(f"{path} is missing (speechocean762's test split: `edge-meta data speechocean762`)")


def sentence_texts() -> dict[str, str]:
    rows = [line.split("\t") for line in (sh.OCEAN / "sentences.tsv").read_text().splitlines()[1:]]
    return {Path(r[2]).stem: r[6].lower() for r in rows}


def household(seed: int, queries: int = 6) -> sh.Draw:
    return sh.household_draw(np.random.default_rng(seed), queries)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_household_takes_come_from_distinct_speakers_and_queries_from_others(seed):
    draw = household(seed)
    assert 3 <= len(draw.takes) <= 5
    assert len(set(draw.take_speakers)) == len(draw.takes)
    assert draw.queries and not {s for s, _ in draw.queries} & set(draw.take_speakers)
    clips = sorted((sh.OCEAN / draw.label).glob("*.flac"))
    for take, speaker in zip(draw.takes, draw.take_speakers):  # each take really is that speaker's recording
        assert any(sh.speaker_of(c) == speaker and np.array_equal(read_audio(c, announce=False), take) for c in clips)
    for speaker, query in draw.queries:
        assert any(sh.speaker_of(c) == speaker and np.array_equal(read_audio(c, announce=False), query) for c in clips)


def test_joined_phrase_takes_come_from_distinct_speakers_who_said_both_words():
    draw = sh.joined_phrase_draw(np.random.default_rng(0), 6)
    first, second = draw.label.split()
    assert 3 <= len(draw.takes) == len(set(draw.take_speakers)) <= 5
    assert len(draw.queries) == 6 and not {s for s, _ in draw.queries} & set(draw.take_speakers)
    for speaker in [*draw.take_speakers, *(s for s, _ in draw.queries)]:
        for word in (first, second):
            assert list((sh.OCEAN / word).glob(f"{speaker}_nohash_*.flac"))


def test_a_phrase_excludes_sentences_saying_it_but_keeps_its_words_alone():
    texts = sentence_texts()
    draw = sh.Draw("what about", [], [], [])
    kept = {p.stem for p in sh.sentences(draw)}
    saying = {u for u, t in texts.items() if " what about " in f" {t} "}
    assert saying and not saying & kept
    assert any("what" in texts[u].split() for u in kept)  # "what" alone is still a negative


def test_tts_takes_and_queries_are_said_by_different_unseen_variants():
    draw = sh.tts_draw(np.random.default_rng(0), 4)
    assert len(set(draw.take_speakers)) == len(draw.takes) >= 3
    assert set(draw.take_speakers) <= set(sh.UNSEEN_VARIANTS)
    assert not {v for v, _ in draw.queries} & set(draw.take_speakers)


def test_negatives_never_hold_the_enrolled_word():
    texts = sentence_texts()
    draw = sh.one_speaker_draw(np.random.default_rng(3), 4)
    saying = {u for u, t in texts.items() if draw.label in t.split()}
    assert saying  # the corpus does say it: exclusion is needed
    assert {p.stem for p in sh.sentences(draw)} == set(texts) - saying
    audio, truth = sh.build_stream(draw, 3.0, 0.3, np.random.default_rng(3))
    sentences = [w for w in truth if w["source"] == sh.SENTENCE_SOURCE]
    prose = [w for w in truth if w["source"] == sh.PROSE_SOURCE]
    assert sentences and prose
    for w in sentences:
        assert draw.label not in texts[w["word"]].split()
    for w in prose:
        assert draw.label not in w["word"].lower().replace(",", " ").split()
    keywords = [w for w in truth if w["keyword"]]
    assert len(keywords) == len(draw.queries) and all(w["word"] == draw.label for w in keywords)
    assert abs(truth[-1]["end_s"] - len(audio) / sh.SR) < 1.2  # the truth spans the audio (its last pause after)


def test_identical_seed_gives_identical_stream():
    def stream(seed: int):
        rng = np.random.default_rng(seed)
        return sh.build_stream(sh.household_draw(rng, 4), 1.0, 0.2, rng)

    (a, ta), (b, tb), (c, _) = stream(7), stream(7), stream(8)
    assert np.array_equal(a, b) and ta == tb
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_replayed_counts_match_the_live_detector_on_known_positions():
    """Offset 0 of the benchmark's curve must count what the shipped detector, run live over the stream, finds:
    each detection overlapping a query of the enrolled word is a hit (once per query), every other one a false accept."""
    draw = household(4, 8)  # a draw whose stream holds false accepts as well as hits
    audio, truth = sh.build_stream(draw, 1.5, 0.3, np.random.default_rng(4))
    curve, _ = sh.edge_meta_curve(None, draw, audio, truth)
    point = next(p for p in curve if p["offset"] == 0.0)
    with Runtime.open() as rt:
        sh.enroll(rt, draw)
        det = rt.detector(DetectorConfig())
        found = [d for i in range(0, len(audio), 1600) for d in det.process(audio[i : i + 1600])] + det.flush()
    queries = [(w["start_s"], w["end_s"]) for w in truth if w["keyword"]]
    used: set[int] = set()
    false_accepts = 0
    for d in found:  # each query found once; a second detection of it, or one elsewhere, is a false accept
        i = next((i for i, (s, e) in enumerate(queries)
                  if i not in used and d.label == draw.label and s < d.end_s and e > d.start_s), None)
        if i is None:
            false_accepts += 1
        else:
            used.add(i)
    assert point["keywords"] == len(queries) == 8
    assert used and point["hits"] == len(used)
    assert false_accepts and point["false_accepts"] == false_accepts


def test_bad_snr_is_a_clear_error():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stream_home.py"), "--snr", "loud"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--snr 'loud'" in proc.stderr and "Traceback" not in proc.stderr
