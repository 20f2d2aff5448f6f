"""benchmarks/stream_home.py's bookkeeping on real audio (issue 17): its replayed counts are what the live
detector does on a stream with known keyword positions, its negatives never hold the enrolled word, household
enrollment takes come from distinct speakers and the queries from others, and a seed fixes the stream.

The audio is a small speechocean762-test-shaped corpus the module synthesises (espeak-ng voices as its speakers,
word clips and sentences.tsv laid out as the importer writes them), so the tests run where the real import is absent."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import stream_home as sh  # noqa: E402

from edge_meta.audio import read_audio  # noqa: E402
from edge_meta.device import Runtime  # noqa: E402
from edge_meta.device.detector import DetectorConfig  # noqa: E402
from edge_meta.importers.sentences import COLUMNS, MANIFEST  # noqa: E402
from edge_meta.train.synth import Voice, synthesize  # noqa: E402

# The corpus's speakers: espeak-ng dialects x variants, none of sh.UNSEEN_VARIANTS (the TTS condition's voices).
# 12 of them: a phrase draw enrolls up to 5 and the test asks for 6 more who said both words.
VOICES = tuple(Voice("espeak", name, pitch) for name, pitch in (
    ("en-us+m1", 40), ("en-gb+f2", 60), ("en-us+m3", 30), ("en-gb-scotland+f3", 55), ("en-029+m2", 45),
    ("en-us-nyc+f4", 65), ("en+m4", 35), ("en-gb-x-rp+f1", 50), ("en-us+m5", 25), ("en-gb+m6", 45),
    ("en-us+f5", 70), ("en-gb-x-rp+m7", 38)))
WORDS = ("something", "nothing", "about")  # the household words the corpus says (a subset of sh.HOUSEHOLD_WORDS)
PHRASES = (("what", "about"),)  # and the phrase (one of sh.JOINED_PHRASES)
RATES = (140, 180)  # wpm of each speaker's two takes: beside 5 enrolled, 7 speakers give the replay test its 8 queries
# Each said by two speakers. Some say a household word or a phrase (the negatives must leave them out), some a
# phrase's word alone ("what" without "about"), some FSDD digits (the one-speaker draw's word), and some start with
# "a boat", which the shipped detector hears as "about" (its false accepts, so the replay test has some to count).
SENTENCES = (
    "WHAT ABOUT DINNER TONIGHT", "WE TALKED ABOUT WHAT WE WOULD LIKE", "WHAT IS THE TIME",
    "I WOULD LIKE SOME TEA", "ARE YOU GOING THERE TOMORROW", "THERE IS NOTHING IN THE BOX",
    "SOMETHING SMELLS GOOD IN THE KITCHEN", "SOME THINGS NEVER CHANGE", "MY NUMBER IS ONE TWO THREE FOUR FIVE",
    "SIX SEVEN EIGHT NINE ZERO", "THE LITTLE DOG SLEPT ALL DAY", "PLEASE OPEN THE WINDOW AGAIN",
    "SHE SANG A SONG ABOUT THE SEA", "NOTHING IS BETTER THAN SLEEP", "PEOPLE LIKE TO TALK", "A BOAT CAME IN",
    "A BOAT SAILED BY")


def say_words(root: Path, tmp: str) -> None:
    """``<word>/<speaker>_nohash_<take>.flac`` for the household words and the phrase's words, as the importer
    lays out speechocean762's aligned word clips."""
    for word in sorted({*WORDS, *(w for phrase in PHRASES for w in phrase)}):
        (root / word).mkdir()
        for voice in VOICES:
            for take, rate in enumerate(RATES):
                sf.write(root / word / f"{voice.id}_nohash_{take}.flac", synthesize(word, voice, rate, tmp), sh.SR,
                         subtype="PCM_16")


def say_sentences(root: Path, tmp: str) -> None:
    """Each of SENTENCES said by two speakers, and the sentences.tsv that lists them (the importer's columns)."""
    (root / "WAVE").mkdir()
    rows = []
    for k, text in enumerate(SENTENCES):
        for j in range(2):
            voice, utterance = VOICES[(2 * k + j) % len(VOICES)], f"{k:03d}{j}"
            x = synthesize(text.lower(), voice, 150, tmp)
            path = root / "WAVE" / f"{utterance}.flac"
            sf.write(path, x, sh.SR, subtype="PCM_16")
            rows.append({"utterance": utterance, "speaker": voice.id, "path": str(path),
                         "seconds": f"{len(x) / sh.SR:.2f}", "status": "cut", "clips": "0", "text": text})
    with (root / MANIFEST).open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def espeak() -> None:
    """The corpus, the TTS condition and the prose negatives are all said by espeak-ng."""
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is needed to synthesise the test corpus and the TTS voices")


@pytest.fixture(scope="module")
def ocean(espeak, tmp_path_factory) -> Path:
    """The synthetic corpus, built once for the module."""
    root = tmp_path_factory.mktemp("speechocean762_test")
    with tempfile.TemporaryDirectory() as tmp:
        say_words(root, tmp)
        say_sentences(root, tmp)
    return root


@pytest.fixture
def fsdd() -> None:
    """The one-speaker draw reads FSDD itself: only its test needs it."""
    if not (sh.DATA / "fsdd").exists():
        pytest.skip(f"{sh.DATA / 'fsdd'} is missing (the one-speaker condition's corpus)")


def sentence_texts(root: Path) -> dict[str, str]:
    rows = [line.split("\t") for line in (root / "sentences.tsv").read_text().splitlines()[1:]]
    return {Path(r[2]).stem: r[6].lower() for r in rows}


def household(root: Path, seed: int, queries: int = 6) -> sh.Draw:
    return sh.household_draw(np.random.default_rng(seed), queries, root, WORDS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_household_takes_come_from_distinct_speakers_and_queries_from_others(ocean, seed):
    draw = household(ocean, seed)
    assert 3 <= len(draw.takes) <= 5
    assert len(set(draw.take_speakers)) == len(draw.takes)
    assert draw.queries and not {s for s, _ in draw.queries} & set(draw.take_speakers)
    clips = sorted((ocean / draw.label).glob("*.flac"))
    for take, speaker in zip(draw.takes, draw.take_speakers):  # each take really is that speaker's recording
        assert any(sh.speaker_of(c) == speaker and np.array_equal(read_audio(c, announce=False), take) for c in clips)
    for speaker, query in draw.queries:
        assert any(sh.speaker_of(c) == speaker and np.array_equal(read_audio(c, announce=False), query) for c in clips)


def test_joined_phrase_takes_come_from_distinct_speakers_who_said_both_words(ocean):
    draw = sh.joined_phrase_draw(np.random.default_rng(0), 6, ocean, PHRASES)
    first, second = draw.label.split()
    assert 3 <= len(draw.takes) == len(set(draw.take_speakers)) <= 5
    assert len(draw.queries) == 6 and not {s for s, _ in draw.queries} & set(draw.take_speakers)
    for speaker in [*draw.take_speakers, *(s for s, _ in draw.queries)]:
        for word in (first, second):
            assert list((ocean / word).glob(f"{speaker}_nohash_*.flac"))


def test_a_phrase_excludes_sentences_saying_it_but_keeps_its_words_alone(ocean):
    texts = sentence_texts(ocean)
    draw = sh.Draw("what about", [], [], [])
    kept = {p.stem for p in sh.sentences(draw, ocean)}
    saying = {u for u, t in texts.items() if " what about " in f" {t} "}
    assert saying and not saying & kept
    assert any("what" in texts[u].split() for u in kept)  # "what" alone is still a negative


def test_tts_takes_and_queries_are_said_by_different_unseen_variants(espeak):
    draw = sh.tts_draw(np.random.default_rng(0), 4)
    assert len(set(draw.take_speakers)) == len(draw.takes) >= 3
    assert set(draw.take_speakers) <= set(sh.UNSEEN_VARIANTS)
    assert not {v for v, _ in draw.queries} & set(draw.take_speakers)


def test_negatives_never_hold_the_enrolled_word(ocean, fsdd):
    texts = sentence_texts(ocean)
    draw = sh.one_speaker_draw(np.random.default_rng(3), 4)
    saying = {u for u, t in texts.items() if draw.label in t.split()}
    assert saying  # the corpus does say it: exclusion is needed
    assert {p.stem for p in sh.sentences(draw, ocean)} == set(texts) - saying
    audio, truth = sh.build_stream(draw, 3.0, 0.3, np.random.default_rng(3), ocean)
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


def test_identical_seed_gives_identical_stream(ocean):
    def stream(seed: int):
        rng = np.random.default_rng(seed)
        draw = sh.household_draw(rng, 4, ocean, WORDS)
        return sh.build_stream(draw, 1.0, 0.2, rng, ocean)

    (a, ta), (b, tb), (c, _) = stream(7), stream(7), stream(8)
    assert np.array_equal(a, b) and ta == tb
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_replayed_counts_match_the_live_detector_on_known_positions(ocean):
    """Offset 0 of the benchmark's curve must count what the shipped detector, run live over the stream, finds:
    each detection overlapping a query of the enrolled word is a hit (once per query), every other one a false accept."""
    # "about": its stream holds hits and false accepts (the detector hears it in the "a boat ..." sentences)
    draw = household(ocean, 4, 8)
    audio, truth = sh.build_stream(draw, 1.5, 0.3, np.random.default_rng(4), ocean)
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


def test_runs_in_pieces_add_their_cells_for_one_bundle_and_never_mix_bundles(tmp_path):
    store = tmp_path / "stream_home.json"
    cell = lambda hours: {"draws": [{"hours": hours}], "peers": [sh.Row("peer", error="absent")], "sources": {}}  # noqa: E731
    sh.merged({"household, clean": cell(6.0)}, "bundle-a", store)
    both = sh.merged({"one-speaker, 5 dB": cell(1.0)}, "bundle-a", store)
    assert list(both) == ["household, clean", "one-speaker, 5 dB"]
    assert both["household, clean"]["draws"][0]["hours"] == 6.0 and both["household, clean"]["peers"][0].error == "absent"
    assert "command:" in both["household, clean"]["measured"]  # each cell says how it was measured
    again = sh.merged({"household, clean": cell(7.0)}, "bundle-a", store)  # a rerun replaces its cell
    assert again["household, clean"]["draws"][0]["hours"] == 7.0 and len(again) == 2
    other = sh.merged({"household, 5 dB": cell(2.0)}, "bundle-b", store)  # another bundle starts afresh
    assert list(other) == ["household, 5 dB"]


def test_a_rerun_without_peers_keeps_their_rows_and_says_when_they_were_measured(tmp_path):
    store = tmp_path / "stream_home.json"
    with_peers = {"draws": [{"hours": 6.0}], "peers": [sh.Row("peer", stream_hours=6.0)], "sources": {}}
    first = sh.merged({"household, clean": with_peers}, "bundle-a", store)["household, clean"]
    rerun = sh.merged({"household, clean": {"draws": [{"hours": 7.0}], "peers": [], "sources": {}}}, "bundle-a", store)
    cell = rerun["household, clean"]
    assert cell["draws"][0]["hours"] == 7.0 and [r.name for r in cell["peers"]] == ["peer"]
    assert cell["peers_measured"] == first["measured"]
    # another bundle: the same seeded streams and takes, so the peers' rows stay (their scores never depend on the
    # bundle), while the other bundle's own cells go
    other = sh.merged({"one-speaker, clean": {"draws": [], "peers": [], "sources": {}}}, "bundle-b", store)
    assert list(other) == ["one-speaker, clean"]
    moved = sh.merged({"household, clean": {"draws": [{"hours": 8.0}], "peers": [], "sources": {}}}, "bundle-b", store)
    assert [r.name for r in moved["household, clean"]["peers"]] == ["peer"]
    assert moved["household, clean"]["peers_measured"] == first["measured"]
