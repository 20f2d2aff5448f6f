"""The interactive enrollment, driven from a test: a fake microphone plays a recorded session (real FSDD takes,
some of them bad) while the prompts, tones, level meter and retakes are checked; then the same through the CLI."""

import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from edge_meta.audio import read_audio
from edge_meta.device import Runtime
from edge_meta.device.prompts import Prompter
from edge_meta.device.quality import loudest_frame_dbfs
from edge_meta.device.sources import ArraySource
from edge_meta.errors import AudioError

RNG = np.random.default_rng(0)


def noise(seconds: float) -> np.ndarray:
    return (1e-4 * RNG.standard_normal(int(seconds * 16000))).astype(np.float32)  # a quiet room, -80 dBFS


def clip(fsdd_dir, digit, speaker, take) -> np.ndarray:
    return read_audio(fsdd_dir / "recordings" / f"{digit}_{speaker}_{take}.wav", announce=False)


def session(*utterances: np.ndarray) -> np.ndarray:
    """What the microphone hears: each utterance between stretches of room noise."""
    return np.concatenate([np.concatenate([noise(0.6), u, noise(0.8)]) for u in utterances])


def test_prompts_retake_bad_takes_and_keep_good_ones(fsdd_dir):
    good = [clip(fsdd_dir, 2, "jackson", t) for t in (11, 13, 14)]
    quiet = clip(fsdd_dir, 2, "jackson", 10)
    quiet = quiet * 10 ** ((-53 - loudest_frame_dbfs(quiet)) / 20)
    clipped = np.clip(clip(fsdd_dir, 2, "jackson", 12) * 40, -1, 1)
    other_word = clip(fsdd_dir, 5, "jackson", 2)  # "five" (take 5 of it scored at the unlike bar itself: 0.40)
    audio = np.concatenate([session(quiet, good[0], clipped, other_word, good[1]), noise(9.0), session(good[2])])
    out, tones = io.StringIO(), []
    with Runtime.open() as rt:
        prompter = Prompter(rt, ArraySource(audio), out, tone=lambda: tones.append(1), meter=True)
        takes = prompter.word_takes("two", 3)
        text = out.getvalue()
        assert len(takes) == 3
        for got, want in zip(takes, good):  # each kept take holds the whole word, cut from the stream
            assert 0.9 * len(want) < len(got) < len(want) + 16000
        w = rt.enroll_word("two", takes, user="jackson")
    lines = [line.split("\r")[-1] for line in text.splitlines()]
    prompts = [line for line in lines if line.startswith("Say 'two' after the tone")]
    assert prompts == ["Say 'two' after the tone (1/3)"] * 2 + ["Say 'two' after the tone (2/3)"] * 3 + \
        ["Say 'two' after the tone (3/3)"] * 2
    assert len(tones) == len(prompts)
    retakes = [line for line in lines if line.startswith("  retake:")]
    assert len(retakes) == 4
    assert "too quiet" in retakes[0] and "clipped" in retakes[1] and "unlike the other takes" in retakes[2]
    assert "heard nothing" in retakes[3]
    assert "level [" in text and "dBFS" in text  # the live meter
    assert w.calibration.threshold > 0


def test_voice_prompts_and_an_input_that_ends_too_soon(fsdd_dir):
    sentences = [np.concatenate([clip(fsdd_dir, d, "theo", 30 + i) for d in (1, 2, 3, 4)]) for i in range(2)]
    out = io.StringIO()
    with Runtime.open() as rt:
        prompter = Prompter(rt, ArraySource(session(*sentences)), out, meter=False)
        with pytest.raises(AudioError, match="ended before all takes"):
            prompter.voice_takes("theo", 3)
    text = out.getvalue()
    assert "theo, read this aloud after the tone (1/3)" in text and text.count("  ok:") == 2
    assert "level [" not in text


def test_cli_enrolls_from_a_recorded_session_and_summarises(tmp_path, fsdd_dir):
    rec = tmp_path / "session.wav"
    sf.write(rec, session(*[clip(fsdd_dir, 8, "nicolas", t) for t in range(3)]), 16000, subtype="PCM_16")
    r = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "enroll-word", "eight", "--user", "nico",
                        "--takes", "3", "--input", str(rec), "--store", str(tmp_path / "p.db")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Say 'eight' after the tone (3/3)" in r.stdout and r.stdout.count("  ok:") == 3
    assert "enrolled 'eight' for nico from 3 takes" in r.stdout and "threshold" in r.stdout
    assert "level [" not in r.stdout  # no meter when stdout is not a terminal
