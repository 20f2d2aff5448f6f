"""`edge-meta data ...` importers on tiny corpora the tests build: real espeak-ng speech, real files, real aligner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_meta.audio import SAMPLE_RATE, read_audio
from edge_meta.cli import main
from edge_meta.corpora import ENGLISH_EVAL_WORDS, is_validation_speaker, read_corpus

pytest.importorskip("pocketsphinx")
if not shutil.which("espeak-ng"):
    pytest.skip("espeak-ng is needed to synthesise the fixture sentences", allow_module_level=True)

GAP_S = 0.25  # silence between the fixture's words: the aligner must place each boundary within TOLERANCE_S
TOLERANCE_S = 0.1


def _word_audio(word: str, tmp: Path) -> np.ndarray:
    """One word said by espeak-ng at 16 kHz, trimmed to where its samples rise above 2% of its peak."""
    wav = tmp / f"{word}.wav"
    if not wav.exists():
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), word.lower()], check=True)
    x = read_audio(wav, announce=False)
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return x[loud[0]:loud[-1] + 1]


def say(words: list[str], tmp: Path, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A sentence of ``words`` with GAP_S of quiet noise between them, and where each word truly starts and ends."""
    parts, spans, t = [np.zeros(int(0.4 * SAMPLE_RATE), np.float32)], [], 0.4
    for w in words:
        x = _word_audio(w, tmp)
        spans.append((t, t + len(x) / SAMPLE_RATE))
        parts += [x, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        t += len(x) / SAMPLE_RATE + GAP_S
    parts.append(np.zeros(int(0.15 * SAMPLE_RATE), np.float32))
    audio = np.concatenate(parts) + np.random.default_rng(seed).normal(0, 3e-4, sum(map(len, parts)))
    return (0.7 * audio / np.abs(audio).max()).astype(np.float32), spans


# speaker, utterance, words; the last train sentence holds a word no dictionary knows
TRAIN = [("s01", "0001", "YELLOW GARDEN WINDOW"), ("s01", "0002", "KITCHEN SEVEN LIGHTS"),
         ("s02", "0003", "BIRDBATH MORNING"), ("s02", "0004", "QWXZPT PLANET")]
TEST = [("s03", "0005", "MORNING GARDEN")]


@pytest.fixture(scope="module")
def speechocean(tmp_path_factory) -> tuple[Path, dict[str, tuple[np.ndarray, list[tuple[float, float]]]]]:
    """A speechocean762-shaped folder (Kaldi train/ and test/, WAVE/, resource/lexicon.txt) and its truth."""
    root, synth = tmp_path_factory.mktemp("so"), tmp_path_factory.mktemp("say")
    truth = {}
    for split, rows in (("train", TRAIN), ("test", TEST)):
        (root / split).mkdir()
        for name, line in (("text", "{u}\t{t}"), ("wav.scp", "{u}\tWAVE/SPEAKER{s}/{u}.WAV"), ("utt2spk", "{u} {s}")):
            (root / split / name).write_text("".join(line.format(u=u, s=s, t=t) + "\n" for s, u, t in rows))
        for k, (s, u, t) in enumerate(rows):
            audio, spans = say(t.split(), synth, seed=k)
            (root / "WAVE" / f"SPEAKER{s}").mkdir(parents=True, exist_ok=True)
            sf.write(root / "WAVE" / f"SPEAKER{s}" / f"{u}.WAV", audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            truth[u] = (sf.read(root / "WAVE" / f"SPEAKER{s}" / f"{u}.WAV", dtype="int16")[0], spans)
    (root / "resource").mkdir()
    (root / "resource" / "lexicon.txt").write_text("BIRDBATH\tB ER1 D B AA0 TH\nMORNING\tM AO1 R N IH0 NG\n")
    return root, truth


def _import(root: Path, out: Path) -> int:
    return main(["data", "speechocean762", str(root), "--out", str(out), "--jobs", "2", "--quiet"])


def test_speechocean762_cuts_each_word_where_it_was_said(speechocean, tmp_path):
    root, truth = speechocean
    assert _import(root, tmp_path / "so") == 0
    train, test = read_corpus(tmp_path / "so_train"), read_corpus(tmp_path / "so_test")
    assert set(train.words) == {"yellow", "garden", "window", "kitchen", "lights", "birdbath", "morning"}
    assert set(test.words) == {"morning", "garden"}
    assert not (set(train.words) | set(test.words)) & ENGLISH_EVAL_WORDS
    assert set(train.speakers) == {"s01", "s02"} and set(test.speakers) == {"s03"}
    words = {u: t.split() for _, u, t in TRAIN + TEST}
    for item in train.items + test.items:
        utt, k = item.path.stem.split("_nohash_")[1].split("-")
        sentence, spans = truth[utt]
        assert item.word == words[utt][int(k)].lower()
        clip = sf.read(item.path, dtype="int16")[0]
        # the clip is a verbatim cut of its sentence: find where, and compare with where the word was put
        at = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(sentence, 64) == clip[:64], axis=1))
        assert len(at) == 1
        start, end = at[0] / SAMPLE_RATE, (at[0] + len(clip)) / SAMPLE_RATE
        true_start, true_end = spans[int(k)]
        # a word keeps at most 50 ms of silence either side, so boundaries sit within tolerance + that margin
        assert abs(start - true_start) <= TOLERANCE_S + 0.05, (item.path.name, start, true_start)
        assert abs(end - true_end) <= TOLERANCE_S + 0.05, (item.path.name, end, true_end)


def test_speechocean762_manifest_counts_skips_and_records_held_out_speakers(speechocean, tmp_path):
    root, _ = speechocean
    assert _import(root, tmp_path / "so") == 0
    rows = (tmp_path / "so_train" / "sentences.tsv").read_text().splitlines()
    status = {r.split("\t")[0]: r.split("\t")[4] for r in rows[1:]}
    assert status == {"0001": "cut", "0002": "cut", "0003": "cut", "0004": "unknown-word"}
    source = (tmp_path / "so_train" / "SOURCE.md").read_text()
    assert "CC BY 4.0" in source and "1 skipped for a word with no pronunciation" in source
    held_out = [i.speaker for i in read_corpus(tmp_path / "so_train").items if is_validation_speaker(i)]
    assert f"{len(set(held_out))} speakers: {' '.join(sorted(set(held_out)))}" in source
    assert "no training recipe names this corpus" in (tmp_path / "so_test" / "SOURCE.md").read_text()


def test_speechocean762_rerun_skips_what_is_done_and_finishes_what_is_not(speechocean, tmp_path):
    root, _ = speechocean
    assert _import(root, tmp_path / "so") == 0
    manifest = tmp_path / "so_train" / "sentences.tsv"
    clips = sorted((tmp_path / "so_train").glob("*/*.flac"))
    stamps = {p: p.stat().st_mtime_ns for p in clips}
    # an interrupted run: the last sentence never reached the manifest and its clips are gone
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(l for l in lines if not l.startswith("0003")) + "\n")
    lost = [p for p in clips if "_nohash_0003-" in p.name]
    for p in lost:
        p.unlink()
    assert _import(root, tmp_path / "so") == 0
    assert sorted(manifest.read_text().splitlines()) == sorted(lines)
    assert sorted((tmp_path / "so_train").glob("*/*.flac")) == clips
    assert all(p.stat().st_mtime_ns == stamps[p] for p in clips if p not in lost)


def test_data_import_of_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "speechocean762", str(tmp_path / "nowhere"), "--out", str(tmp_path / "so")]) == 2
    err = capsys.readouterr().err
    assert "speechocean762 folder not found" in err and "Traceback" not in err


def test_speechocean762_import_runs_without_torch(speechocean, run_without_torch, tmp_path):
    root, _ = speechocean
    r = run_without_torch(f"""
        from edge_meta.cli import main
        assert main(["data", "speechocean762", r"{root}", "--out", r"{tmp_path / 'so'}", "--jobs", "1", "--quiet"]) == 0
        assert "torch" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")
