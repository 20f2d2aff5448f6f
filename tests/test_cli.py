"""Bad input from the shell: one line naming the problem and the fix, exit code 2, never a traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf


def edge_meta(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_meta.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture()
def takes(fsdd_dir):
    return [fsdd_dir / "recordings" / f"6_lucas_{i}.wav" for i in range(3)]


def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    for n in needles:
        assert n in r.stderr


def test_the_readmes_main_command_runs_the_demo_end_to_end(tmp_path):
    """`edge-meta demo` (the README's first command): enroll the shipped words, stream the shipped recording,
    find them; the numbers it prints come from the run."""
    r = edge_meta("demo", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    streaming = next(line for line in r.stdout.splitlines() if line.startswith("streaming "))
    assert float(streaming.split("(")[1].split(" s:")[0]) > 10  # the recording's length, from its header
    result = next(line for line in r.stdout.splitlines() if line.startswith("result: "))
    hits, keywords = map(int, result.split()[1].split("/"))
    assert keywords >= 6 and hits >= keywords - 1


def test_missing_empty_corrupt_and_non_audio_takes(tmp_path, takes):
    store = tmp_path / "p.db"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(takes[0].read_bytes()[:30])
    text = tmp_path / "notes.wav"
    text.write_text("hello\n" * 100)
    for bad, why in [(tmp_path / "nope.wav", "no such file"), (empty, "empty"), (corrupt, "not a readable audio file"),
                     (text, "not a readable audio file")]:
        _refused(edge_meta("device", "enroll-word", "six", "--from", takes[0], bad, "--store", store), str(bad), why)


def test_silent_and_overlong_takes(tmp_path, takes):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    _refused(edge_meta("device", "enroll-word", "six", "--from", silent, "--store", tmp_path / "p.db"), "silent")
    rng = np.random.default_rng(0)
    speechy = np.concatenate([sf.read(t)[0] for t in takes] * 4)
    long = tmp_path / "long.wav"
    sf.write(long, speechy + 0.01 * rng.standard_normal(len(speechy)), 8000)
    _refused(edge_meta("device", "enroll-word", "six", "--from", long, "--store", tmp_path / "p.db"), "must fit in")


def test_wrong_rate_and_stereo_are_converted_with_a_warning(tmp_path, takes):
    stereo = tmp_path / "stereo44k.wav"
    x, sr = sf.read(takes[0])
    from scipy.signal import resample_poly

    y = resample_poly(x, 441, 80)
    sf.write(stereo, np.stack([y, y], 1), 44100)
    r = edge_meta("device", "enroll-word", "six", "--from", stereo, takes[1], takes[2], "--store", tmp_path / "p.db")
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "44100 Hz to 16000 Hz" in r.stderr and "down-mixed" in r.stderr


def test_enrolling_without_kept_audio_says_what_it_gives_up(tmp_path, takes):
    kept = edge_meta("device", "enroll-word", "six", "--from", *takes, "--store", tmp_path / "a.db")
    dropped = edge_meta("device", "enroll-word", "six", "--from", *takes, "--store", tmp_path / "b.db", "--no-keep-audio")
    assert kept.returncode == dropped.returncode == 0, dropped.stderr
    assert "not template-checked" in dropped.stdout and "not template-checked" not in kept.stdout


def test_missing_and_damaged_bundle(tmp_path, takes):
    _refused(edge_meta("device", "enroll-word", "six", "--from", *takes, "--bundle", tmp_path / "nope"), "no such bundle")
    from edge_meta.resources import default_bundle_path
    import shutil

    broken = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), broken)
    (broken / "heads.npz").write_bytes(b"garbage")
    _refused(edge_meta("device", "detect", takes[0], "--bundle", broken, "--store", tmp_path / "p.db"),
             "heads.npz is damaged", "re-export")


def test_unknown_label_and_nothing_enrolled(tmp_path, takes):
    store = tmp_path / "p.db"
    _refused(edge_meta("device", "detect", takes[0], "--store", store), "no words are enrolled")
    _refused(edge_meta("device", "remove", "lights", "--store", store), "no enrolled word 'lights'")


def test_help_teaches(tmp_path):
    r = edge_meta("--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "edge-meta demo" in r.stdout
    r = edge_meta("device", "enroll-word", "--help")
    assert r.returncode == 0 and "--from" in r.stdout


def test_device_help_teaches(tmp_path):
    r = edge_meta("device", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "forget-user" in r.stdout and "enroll-voice" in r.stdout
    r = edge_meta("device", "enroll-word", "--help")
    assert r.returncode == 0 and "after the tone" in r.stdout and "--bind" in r.stdout and "retake" in r.stdout
    r = edge_meta("device", "run", "--help")
    assert r.returncode == 0 and '"speaker_score"' in r.stdout and "SIGTERM" in r.stdout


def _sentences(fsdd_dir, tmp_path, speaker):
    """Three voice takes for the CLI: four digits of one speaker run together, written as WAV files."""
    paths = []
    for i in range(3):
        x = np.concatenate([sf.read(fsdd_dir / "recordings" / f"{d}_{speaker}_{30 + i}.wav")[0] for d in (1, 2, 3, 4)])
        paths.append(tmp_path / f"{speaker}_{i}.wav")
        sf.write(paths[-1], x, 8000)
    return paths


def test_profiles_from_the_shell(tmp_path, takes, fsdd_dir):
    store, other = tmp_path / "p.db", tmp_path / "q.db"
    r = edge_meta("device", "enroll-word", "six", "--user", "lucas", "--bind", "--from", *takes, "--store", store)
    assert r.returncode == 0, r.stderr
    assert "bound to lucas's voice" in r.stdout and "enroll-voice lucas" in r.stdout
    r = edge_meta("device", "enroll-voice", "lucas", "--from", *_sentences(fsdd_dir, tmp_path, "lucas"), "--store", store)
    assert r.returncode == 0, r.stderr
    assert "enrolled lucas's voice from 3 takes" in r.stdout and "(speaker embedding;" in r.stdout
    listing = json.loads(edge_meta("device", "list", "--json", "--store", store).stdout)
    assert listing["users"] == ["lucas"] and listing["words"][0]["bound_to"] == "lucas"
    assert listing["voices"][0]["takes"] == 3
    assert edge_meta("device", "export-profile", tmp_path / "lucas.json", "--user", "lucas", "--store", store).returncode == 0
    r = edge_meta("device", "import-profile", tmp_path / "lucas.json", "--store", other)
    assert r.returncode == 0 and "imported 1 words, 1 voices, 0 command phrasings of 1 users" in r.stdout
    _refused(edge_meta("device", "forget-user", "lucas", "--store", other), "add --yes")
    r = edge_meta("device", "forget-user", "lucas", "--yes", "--store", other)
    assert r.returncode == 0 and "1 words and 1 voices deleted" in r.stdout
    assert "nothing enrolled" in edge_meta("device", "list", "--store", other).stdout
    assert edge_meta("device", "remove", "--voice", "lucas", "--store", store).returncode == 0
    _refused(edge_meta("device", "remove", "--voice", "lucas", "--store", store), "no enrolled voice for 'lucas'")


def test_bad_voice_takes_profiles_and_configs(tmp_path, takes):
    store = tmp_path / "p.db"
    _refused(edge_meta("device", "enroll-voice", "lucas", "--from", *takes, "--store", store), "holds only", "sentence")
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "edge-meta-profile", "version": 1, "users": "alice"}')
    _refused(edge_meta("device", "import-profile", junk, "--store", store), "invalid profile file")
    _refused(edge_meta("device", "forget-user", "nobody", "--yes", "--store", store), "no user 'nobody'")
    _refused(edge_meta("device", "run", "--input", takes[0], "--store", store), "no usable words are enrolled")
    _refused(edge_meta("device", "run", "--config", tmp_path / "none.toml"), "no such config file")


def test_forget_user_refuses_an_empty_name_and_keeps_shared_words(tmp_path, takes):
    """An empty name matched every word enrolled without a user: `forget-user "" --yes` deleted them all."""
    store = tmp_path / "p.db"
    assert edge_meta("device", "enroll-word", "six", "--from", *takes, "--store", store).returncode == 0
    for empty in ("", "  "):
        _refused(edge_meta("device", "forget-user", empty, "--yes", "--store", store), "user name is empty")
    listing = json.loads(edge_meta("device", "list", "--json", "--store", store).stdout)
    assert [w["word"] for w in listing["words"]] == ["six"]


def test_threads_below_one_is_refused_on_the_command_line_as_in_the_config(tmp_path):
    """Issue 16: --threads 0 was taken (and quietly run on one thread) where device.toml's `threads = 0` is refused."""
    config = tmp_path / "device.toml"
    config.write_text("[runtime]\nthreads = 0\n")
    _refused(edge_meta("device", "run", "--config", config, "--store", tmp_path / "p.db"), "runtime.threads",
             "must be between 1 and")
    for value in ("0", "-2", "two", "65"):
        r = edge_meta("device", "list", "--threads", value, "--store", tmp_path / "p.db")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "argument --threads: must be between 1 and" in r.stderr
    assert edge_meta("device", "list", "--threads", "2", "--store", tmp_path / "p.db").returncode == 0


def test_removing_a_word_without_its_user_says_whose_it_is(takes, tmp_path):
    """Issue 16: `remove "lights on"` said the word did not exist while `list` showed it under carol."""
    store = tmp_path / "p.db"
    assert edge_meta("device", "enroll-word", "six", "--user", "carol", "--from", *takes, "--store", store).returncode == 0
    _refused(edge_meta("device", "remove", "six", "--store", store), "enrolled for carol", "--user carol")
    assert "word  six (user carol)" in edge_meta("device", "list", "--store", store).stdout  # nothing removed
    assert edge_meta("device", "remove", "six", "--user", "carol", "--store", store).returncode == 0
    _refused(edge_meta("device", "remove", "six", "--store", store), "no enrolled word 'six'")


def test_export_profile_does_not_replace_a_file_unasked(takes, tmp_path):
    """Issue 16: export-profile overwrote an existing file (a backup, say) without a word."""
    store, backup = tmp_path / "p.db", tmp_path / "backup.json"
    assert edge_meta("device", "enroll-word", "six", "--from", *takes, "--store", store).returncode == 0
    backup.write_text("an older backup")

    def export(*extra):
        return subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "export-profile", str(backup), "--store",
                               str(store), *extra], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)

    _refused(export(), "backup.json exists", "--yes")
    assert backup.read_text() == "an older backup"
    assert export("--yes").returncode == 0
    assert json.loads(backup.read_text())["words"][0]["label"] == "six"


def test_detect_takes_the_daemons_config(takes, fsdd_dir, tmp_path):
    """Issue 16: `detect` had no --config, so the README's [detector] tuning could not be tried on a recording.
    refractory_s = 10 allows no two detections within 10 s; the defaults (1 s) find the word more often."""
    store = tmp_path / "p.db"
    assert edge_meta("device", "enroll-word", "six", "--from", *takes, "--store", store).returncode == 0
    pause = np.zeros(12000, np.float32)  # 1.5 s at FSDD's 8 kHz
    clips = [sf.read(fsdd_dir / "recordings" / f"6_lucas_{i}.wav", dtype="float32")[0] for i in range(3, 9)]
    sf.write(tmp_path / "stream.wav", np.concatenate([pause] + [x for c in clips for x in (c, pause)]), 8000)
    config = tmp_path / "device.toml"
    config.write_text("[detector]\nrefractory_s = 10.0\n")

    def times(*extra):
        r = edge_meta("device", "detect", tmp_path / "stream.wav", "--json", "--store", store, *extra)
        assert r.returncode == 0, r.stderr
        return np.array([json.loads(line)["t"] for line in r.stdout.splitlines()])

    default, tuned = times(), times("--config", config)
    assert len(tuned) >= 1 and np.all(np.diff(tuned) >= 10.0)
    assert np.any(np.diff(default) < 10.0)
    _refused(edge_meta("device", "detect", tmp_path / "stream.wav", "--store", store, "--config", tmp_path / "no.toml"),
             "no such config file")


@pytest.mark.parametrize("args, needle", [(["--takes", "51"], "51 takes given"),
                                          (["--false-accept", "1e-7"], "false-accept target 1e-07 is out of range"),
                                          (["--takes", "0"], "0 takes given")])
def test_what_enrollment_refuses_is_refused_before_anyone_is_asked_to_speak(tmp_path, takes, args, needle):
    """A prompted enrollment with 51 takes used to ask for all 51, then be refused."""
    recording = tmp_path / "takes.wav"
    sf.write(recording, np.concatenate([sf.read(t)[0] for t in takes]), 8000)
    r = edge_meta("device", "enroll-word", "six", "--input", recording, *args, "--store", tmp_path / "p.db")
    _refused(r, needle)
    assert "Say" not in r.stdout
