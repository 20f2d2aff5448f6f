"""`edge-meta data ...` importers on tiny corpora the tests build: real espeak-ng speech, real files, real aligner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_meta.audio import SAMPLE_RATE, read_audio
from edge_meta.cli import main
from edge_meta.corpora import ENGLISH_EVAL_WORDS, EVAL_SOUNDALIKES, is_validation_speaker, read_corpus

GAP_S = 0.25  # silence between the fixture's words: the aligner must place each boundary within TOLERANCE_S
TOLERANCE_S = 0.1


def _word_audio(word: str, tmp: Path) -> np.ndarray:
    """One word said by espeak-ng at 16 kHz, trimmed to where its samples rise above 2% of its peak."""
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is needed to synthesise the fixture sentences")
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



def assert_cut_where_said(items, truth, words) -> None:
    """Each clip is a verbatim cut of its sentence: find where, and check it is the word put there."""
    for item in items:
        utt, k = item.path.stem.split("_nohash_")[1].rsplit("-", 1)
        sentence, spans = truth[utt]
        assert item.word == words[utt][int(k)].lower()
        clip = sf.read(item.path, dtype="int16")[0]
        at = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(sentence, 64) == clip[:64], axis=1))
        assert len(at) == 1
        start, end = at[0] / SAMPLE_RATE, (at[0] + len(clip)) / SAMPLE_RATE
        true_start, true_end = spans[int(k)]
        # a word keeps at most 50 ms of silence either side, so boundaries sit within tolerance + that margin
        assert abs(start - true_start) <= TOLERANCE_S + 0.05, (item.path.name, start, true_start)
        assert abs(end - true_end) <= TOLERANCE_S + 0.05, (item.path.name, end, true_end)


# speaker, utterance, words; the last train sentence holds a word no dictionary knows
TRAIN = [("s01", "0001", "YELLOW GARDEN WINDOW"), ("s01", "0002", "KITCHEN LIGHTS FOR SEVEN"),
         ("s02", "0003", "BIRDBATH MORNING"), ("s02", "0004", "QWXZPT PLANET")]
TEST = [("s03", "0005", "MORNING GARDEN")]


@pytest.fixture(scope="module")
def speechocean(tmp_path_factory) -> tuple[Path, dict[str, tuple[np.ndarray, list[tuple[float, float]]]]]:
    """A speechocean762-shaped folder (Kaldi train/ and test/, WAVE/, resource/lexicon.txt) and its truth."""
    pytest.importorskip("pocketsphinx")
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
    assert not (set(train.words) | set(test.words)) & (ENGLISH_EVAL_WORDS | EVAL_SOUNDALIKES)
    assert set(train.speakers) == {"s01", "s02"} and set(test.speakers) == {"s03"}
    assert_cut_where_said(train.items + test.items, truth, {u: t.split() for _, u, t in TRAIN + TEST})


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


def test_librispeech_folders_are_cut_into_words_like_speechocean(tmp_path):
    """``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + FLAC per line; a digit is said but never kept."""
    pytest.importorskip("pocketsphinx")
    sentences = {"19-198-0000": "PURPLE BLANKET", "19-198-0001": "FIVE ORANGES", "26-495-0000": "SILVER BLANKET"}
    truth = {}
    for k, (uid, text) in enumerate(sentences.items()):
        speaker, chapter, _ = uid.split("-")
        folder = tmp_path / "train-clean" / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        audio, spans = say(text.split(), tmp_path, seed=k)
        sf.write(folder / f"{uid}.flac", audio, SAMPLE_RATE, subtype="PCM_16")
        truth[uid] = (sf.read(folder / f"{uid}.flac", dtype="int16")[0], spans)
        with (folder / f"{speaker}-{chapter}.trans.txt").open("a") as f:
            f.write(f"{uid} {text}\n")
    out = tmp_path / "libri"
    assert main(["data", "librispeech", str(tmp_path / "train-clean"), "--out", str(out), "--quiet"]) == 0
    corpus = read_corpus(out)
    assert set(corpus.words) == {"purple", "blanket", "oranges", "silver"}
    assert set(corpus.speakers) == {"19", "26"}
    assert_cut_where_said(corpus.items, truth, {u: t.split() for u, t in sentences.items()})


def _real_clips(gsc_dir: Path, word: str, n: int) -> list[Path]:
    return sorted((gsc_dir / word).glob("*.flac"))[:n]


@pytest.fixture()
def speech_commands(gsc_dir, tmp_path) -> Path:
    """A Speech Commands v0.02-shaped folder of real clips: WAV files, the two lists, background noise."""
    root = tmp_path / "speech_commands_v0.02"
    for word in ("yes", "marvin", "three"):
        (root / word).mkdir(parents=True)
        for f in _real_clips(gsc_dir, word, 4):
            x, sr = sf.read(f, dtype="int16")
            sf.write(root / word / f"{f.stem}.wav", x, sr, subtype="PCM_16")
    (root / "_background_noise_").mkdir()
    for f in sorted((gsc_dir / "_silence_").glob("*.flac"))[:2]:
        sf.write(root / "_background_noise_" / f"{f.stem}.wav", sf.read(f, dtype="int16")[0], SAMPLE_RATE)
    (root / "testing_list.txt").write_text(
        "".join(f"{w}/{sorted((root / w).iterdir())[0].name}\n" for w in ("yes", "marvin", "three")))
    (root / "validation_list.txt").write_text(f"yes/{sorted((root / 'yes').iterdir())[1].name}\n")
    return root


def test_speech_commands_keeps_its_test_list_apart_losslessly_and_without_digits(speech_commands, tmp_path):
    out = tmp_path / "gsc"
    assert main(["data", "speech-commands", str(speech_commands), "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    train, test = read_corpus(tmp_path / "gsc_train"), read_corpus(tmp_path / "gsc_test")
    assert train.words == test.words == ["marvin", "yes"]
    assert len(train.items) == 6 and len(test.items) == 2 and len(train.noise) == 2
    testing = set((speech_commands / "testing_list.txt").read_text().split())
    for item in train.items + test.items:
        source = speech_commands / item.word / f"{item.path.stem}.wav"
        assert (f"{item.word}/{source.name}" in testing) == (item in test.items)
        assert np.array_equal(sf.read(item.path, dtype="int16")[0], sf.read(source, dtype="int16")[0])
    assert "4 clips of FSDD's evaluation words" in (tmp_path / "gsc_train" / "SOURCE.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "gsc_train").rglob("*.flac")}
    assert main(["data", "speech-commands", str(speech_commands), "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "gsc_train").rglob("*.flac")} == stamps


def test_mswc_decodes_opus_follows_its_splits_and_skips_invalid_rows(gsc_dir, tmp_path):
    """MSWC's layout with real speech as 48 kHz Opus; its 128-hex speaker ids; TRAIN/DEV/TEST rows and VALID."""
    import hashlib

    from edge_meta.audio import resample

    root, rows, sources = tmp_path / "mswc", ["SET,LINK,WORD,VALID,SPEAKER,GENDER"], {}
    for k, (word, f) in enumerate((w, f) for w in ("marvin", "sheila", "three") for f in _real_clips(gsc_dir, w, 3)):
        link = f"{word}/common_voice_en_{1000 + k}.opus"
        (root / "en" / "clips" / word).mkdir(parents=True, exist_ok=True)
        x = read_audio(f, announce=False)
        sf.write(root / "en" / "clips" / link, resample(x, SAMPLE_RATE, 48000), 48000, format="OGG", subtype="OPUS")
        speaker = hashlib.sha512(f.stem.split("_nohash_")[0].encode()).hexdigest()
        split, valid = ("TEST", "True") if k % 3 == 0 else ("DEV" if k % 3 == 1 else "TRAIN", str(k != 2))
        rows.append(f"{split},{link},{word},{valid},{speaker},FEMALE")
        sources[f"common_voice_en_{1000 + k}"] = (x, split, valid, speaker)
    (root / "en" / "en_splits.csv").write_text("\n".join(rows) + "\n")
    assert main(["data", "mswc", str(root), "--lang", "en", "--out", str(tmp_path / "mswc_en"), "--quiet"]) == 0
    train, test = read_corpus(tmp_path / "mswc_en_train"), read_corpus(tmp_path / "mswc_en_test")
    assert train.words == test.words == ["marvin", "sheila"]
    digits = {f"common_voice_en_{k}" for k in (1006, 1007, 1008)}  # "three"
    kept = {n for n, (_, _, valid, _) in sources.items() if valid == "True"} - digits
    assert {i.path.stem.split("_nohash_")[1] for i in train.items + test.items} == kept
    for item in train.items + test.items:
        x, split, _, speaker = sources[item.path.stem.split("_nohash_")[1]]
        assert (split == "TEST") == (item in test.items) and item.speaker == speaker[:16]
        y, sr = sf.read(item.path, dtype="float32")
        assert sr == SAMPLE_RATE and abs(len(y) - len(x)) <= 0.03 * SAMPLE_RATE
        # lossy, but the same speech: the best-aligned correlation with the source is high
        n = min(len(x), len(y)) - 800
        corr = max(abs(np.corrcoef(x[400:400 + n], y[400 + lag:400 + lag + n])[0, 1]) for lag in range(-320, 321, 4))
        assert corr > 0.9


def test_speechocean762_without_pocketsphinx_says_how_to_install_it(speechocean, tmp_path):
    root, _ = speechocean
    code = ("import sys; sys.modules['pocketsphinx'] = None\nfrom edge_meta.cli import main\n"
            f"sys.exit(main(['data', 'speechocean762', r'{root}', '--out', r'{tmp_path / 'so'}', '--jobs', '2']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pocketsphinx" in r.stderr and "edge-meta[data]" in r.stderr and "Traceback" not in r.stderr
