"""Enrollment that holds (issues 16 and 17): copies of one take, a wrong-word take, takes that disagree, takes
from several voices, quiet takes and takes with sound around the word, each on real recordings."""

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_meta.audio import SAMPLE_RATE, read_audio, speech_region
from edge_meta.device import Runtime
from edge_meta.device.prompts import Prompter
from edge_meta.device.sources import ArraySource
from edge_meta.device.quality import loudest_frame_dbfs
from edge_meta.device.verifier import SCALES, TemplateVerifier
from edge_meta.errors import AudioError

CLICK_S = 0.5  # silence between the word and a click after it


def household(rt: Runtime, gsc_dir: Path, word: str, take: Callable[[Path], np.ndarray | None],
              one_by_one: bool) -> list[Path]:
    """Five Speech Commands speakers' takes of ``word``, as ``take`` gives enrollment each file (None: it refuses
    it), that enrollment's own calibration finds disagreeing (the threshold they need lets more than the target of
    background speech through) though none is odd; with ``one_by_one``, each also passes the prompts' take-by-take
    check in turn. Sought among seeded draws of speakers, so that the tests below follow the bundle instead of
    naming speakers one bundle happened to split."""
    files = sorted((gsc_dir / word).glob("*_nohash_0.flac"))
    takes: dict[int, np.ndarray | None] = {}
    emb: dict[int, np.ndarray] = {}
    rng = np.random.default_rng(0)
    for _ in range(300):
        pick = [int(i) for i in rng.choice(len(files), 5, replace=False)]
        for i in pick:
            if i not in takes:
                takes[i] = take(files[i])
                if takes[i] is not None:
                    emb[i] = rt.embed([takes[i]])[0]
        if any(takes[i] is None for i in pick):
            continue
        if one_by_one and any(rt.unlike(emb[i], np.stack([emb[j] for j in pick[:k]]))[0]
                              for k, i in enumerate(pick) if k):
            continue
        c = rt.calibrate_takes(word, "", np.stack([emb[i] for i in pick]))
        if c.capped and not c.odd and c.background_rate > c.false_accept:
            return [files[i] for i in pick]
    raise AssertionError(f"no five speakers' takes of {word!r} disagree here: the check has nothing to refuse")


def fsdd(fsdd_dir: Path, digit: int, speaker: str, take: int) -> np.ndarray:
    return read_audio(fsdd_dir / "recordings" / f"{digit}_{speaker}_{take}.wav", announce=False)


def stream_frames(rt: Runtime, x: np.ndarray) -> np.ndarray:
    """The log-mel frames the detector's template check sees around a word said alone in a stream."""
    return rt.logmel.log_mel_frames(np.concatenate([np.zeros(4800, np.float32), x, np.zeros(1600, np.float32)]))


def at_dbfs(x: np.ndarray, level: float) -> np.ndarray:
    """``x`` scaled so its loudest 20 ms frame is at ``level`` dBFS."""
    return (x * 10.0 ** ((level - loudest_frame_dbfs(x)) / 20.0)).astype(np.float32)


def edge_meta(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_copies_of_one_take_are_refused_by_name(fsdd_dir, tmp_path):
    """`--from go_0.wav go_0.wav go_1.wav` made a word whose takes agreed perfectly: it reported a healthy median
    and never fired. The same recording again, at another gain, shifted and with noise added, is refused too."""
    rec = fsdd_dir / "recordings"
    r = edge_meta("enroll-word", "two", "--from", rec / "2_theo_0.wav", rec / "2_theo_0.wav", rec / "2_theo_1.wav",
                  "--store", tmp_path / "p.db")
    assert r.returncode == 2, r.stdout
    assert "2_theo_0.wav: is the same recording as" in r.stderr and "say it again for each take" in r.stderr
    x = fsdd(fsdd_dir, 2, "theo", 0)
    noise = np.random.default_rng(0).normal(scale=0.01 * np.abs(x).max(), size=len(x) + 37).astype(np.float32)
    near_copy = 0.5 * np.concatenate([np.zeros(37, np.float32), x]) + noise
    with Runtime.open() as rt, pytest.raises(AudioError, match="take 3: is the same recording as take 1"):
        rt.enroll_word("two", [x, fsdd(fsdd_dir, 2, "theo", 1), near_copy])


def test_the_template_scale_stays_away_from_zero(fsdd_dir):
    """Takes that repeat one recording (enrolled before the copy check, or imported) gave the template check a
    scale of 1e-6: no held-out take ever passed it, so the word never fired. Bounded below by the closest one
    speaker's distinct takes come, most of the speaker's other takes pass (as with distinct takes)."""
    with Runtime.open() as rt:
        copies = TemplateVerifier(rt.logmel, [[fsdd(fsdd_dir, 4, "george", t) for t in (0, 0, 1)]], 1.3, 5.0)
        held_out = [stream_frames(rt, fsdd(fsdd_dir, 4, "george", t)) for t in range(5, 25)]
        assert copies.scales[0] >= SCALES[0]
        assert np.mean([copies.accepts(0, h, 0.0) for h in held_out]) > 0.5


def test_a_wrong_word_take_is_named_and_refused_unless_forced(fsdd_dir, tmp_path):
    """One "one" among four takes of "four" (similarity -0.01 to them) was enrolled silently, and the summary
    blamed noise; now it is named, and only --force enrolls it."""
    rec = fsdd_dir / "recordings"
    paths = [rec / f"4_lucas_{t}.wav" for t in (0, 1, 2)] + [rec / "1_lucas_4.wav", rec / "4_lucas_3.wav"]
    store = tmp_path / "p.db"
    r = edge_meta("enroll-word", "four", "--from", *paths, "--store", store)
    assert r.returncode == 2, r.stdout
    assert "1_lucas_4.wav: is unlike the other takes of 'four'" in r.stderr and "--force" in r.stderr
    assert "nothing enrolled" in edge_meta("list", "--store", store).stdout
    r = edge_meta("enroll-word", "four", "--from", *paths, "--store", store, "--force")
    assert r.returncode == 0, r.stderr
    assert "forced with takes unlike the others" in r.stdout and "1_lucas_4.wav" in r.stdout
    with Runtime.open() as rt:  # the four takes of "four" pass untouched
        assert rt.enroll_word("four", [fsdd(fsdd_dir, 4, "lucas", t) for t in range(4)]).calibration.odd == ()


def test_takes_that_disagree_never_lower_the_threshold_silently(gsc_dir, tmp_path):
    """Five voices' takes of "go" disagree: the leave-one-out cap would put the threshold below the bundle's
    background-calibrated point. Enrollment refuses that unless forced, and `list` then gives the share of
    background speech the lowered threshold lets through, not the target it no longer meets."""
    with Runtime.open() as rt:
        paths = household(rt, gsc_dir, "go", lambda p: read_audio(p, announce=False), one_by_one=False)
    store = tmp_path / "p.db"
    r = edge_meta("enroll-word", "go", "--from", *paths, "--store", store)
    assert r.returncode == 2, r.stdout
    assert "the takes of 'go' disagree" in r.stderr and "--user" in r.stderr
    assert edge_meta("enroll-word", "go", "--from", *paths, "--store", store, "--force").returncode == 0
    with Runtime.open(store=store) as rt:
        c = rt.calibrations()[("go", "")]
    assert c.threshold < c.safe_threshold and c.background_rate > c.false_accept
    listed = edge_meta("list", "--store", store).stdout
    assert "at 1.0% false accepts" not in listed
    assert f"forced below its 1.0% false-accept point ({c.safe_threshold:.3f})" in listed
    assert f"{c.background_rate:.1%} of background speech scores above it" in listed


def test_the_template_check_keeps_filtering_when_takes_come_from_several_voices(gsc_dir):
    """With each word's takes from five speakers the scale grew with the voices' spread: the check passed 83% of
    other words said by others here (and 92% of the word by further speakers), next to no filtering. Bounded by
    the largest scale one speaker's takes give, it rejects at least a quarter of the other words (35% here; the
    word: 80% pass at no encoder margin), and still passes the word more often than other words."""
    words = ("go", "no", "yes", "left", "right", "up")
    by_word = {w: sorted((gsc_dir / w).glob("*_nohash_0.flac")) for w in words}
    rng = np.random.default_rng(1)
    own, other = [], []
    with Runtime.open() as rt:
        for w in words:
            files = [by_word[w][i] for i in rng.permutation(len(by_word[w]))[:15]]
            v = TemplateVerifier(rt.logmel, [[read_audio(p, announce=False) for p in files[:5]]], 1.3, 5.0)
            own += [v.accepts(0, stream_frames(rt, read_audio(p, announce=False)), 0.0) for p in files[5:]]
            for o in words:
                if o != w:
                    other += [v.accepts(0, stream_frames(rt, read_audio(p, announce=False)), 0.0)
                              for p in [by_word[o][i] for i in rng.permutation(len(by_word[o]))[:2]]]
    assert np.mean(other) <= 3 / 4
    assert np.mean(own) > np.mean(other)


def test_a_quiet_take_makes_the_template_of_a_loud_one(fsdd_dir):
    """The energy VAD keeps frames above -55 dBFS only: a take peaking at -45 dBFS kept its loudest 10 dB and its
    template lost the consonants (a median quarter of its frames over FSDD). Normalised first, a take's template
    does not depend on its level."""
    with Runtime.open() as rt:
        v = TemplateVerifier(rt.logmel, [], 1.3, 5.0)
        for speaker in ("george", "jackson", "nicolas", "theo"):
            for digit in (0, 3, 6):
                x = fsdd(fsdd_dir, digit, speaker, 3)
                loud, quiet = v.template(at_dbfs(x, -15.0)), v.template(at_dbfs(x, -45.0))
                assert quiet.shape == loud.shape, (speaker, digit)
                np.testing.assert_allclose(quiet, loud, atol=0.05 * np.abs(loud).max())


def test_a_click_or_background_around_the_word_does_not_move_its_window(fsdd_dir, arabic_dir):
    """A take's window was its loudest second: a click after the word, or background before it, pulled the word
    off centre (embeddings down to cosine 0.65 with the clean take's). Chosen by its speech frames, the window
    embeds like the clean take's (each at least as close as the worst clean take padded by silence is)."""
    noise = read_audio(sorted((arabic_dir / "_background_noise_").glob("*"))[0], announce=False)
    n = SAMPLE_RATE
    rng = np.random.default_rng(0)
    with Runtime.open() as rt:
        cos_padded, cos_around = [], []
        for speaker in ("george", "lucas", "theo", "yweweler"):
            for digit in (1, 4, 8):
                x = fsdd(fsdd_dir, digit, speaker, 7)
                clean = rt.embed([x])[0]
                click = np.zeros(160, np.float32)
                click[::2], click[1::2] = 0.5 * np.abs(x).max(), -0.5 * np.abs(x).max()
                padded = np.concatenate([np.zeros(6000, np.float32), x, np.zeros(12000, np.float32)])
                clicked = np.concatenate([np.zeros(3000, np.float32), x, np.zeros(int(CLICK_S * n), np.float32),
                                          click, np.zeros(8000, np.float32)])
                start = int(rng.integers(0, len(noise) - len(x) - 2 * n))
                bed = noise[start : start + len(x) + 2 * n] * (0.05 * np.sqrt(np.mean(x ** 2))
                                                              / np.sqrt(np.mean(noise[start : start + 2 * n] ** 2)))
                bed[n : n + len(x)] += x
                cos_padded.append(float(rt.embed([padded])[0] @ clean))
                cos_around += [float(e @ clean) for e in rt.embed([clicked, bed.astype(np.float32)])]
    assert min(cos_around) >= min(cos_padded) - 0.1
    assert np.median(cos_around) >= 0.9


def test_the_prompts_ask_again_when_the_takes_disagree(gsc_dir):
    """Five voices' takes of "no" each pass the prompts' take-by-take check, and enrollment then lowered the
    threshold below the background point. Calibrated as enrollment does once all are in, the least alike take
    is asked for again (here the input then ends: the takes still disagree)."""
    def in_room(p: Path) -> np.ndarray:
        room = np.random.default_rng(0)  # the same quiet room (about -80 dBFS) around every take
        x = speech_region(read_audio(p, announce=False))
        return np.concatenate([1e-4 * room.standard_normal(9600), x, 1e-4 * room.standard_normal(12800)]).astype(
            np.float32)

    def captured(p: Path) -> np.ndarray | None:
        """The take the prompts keep from ``p`` said alone in a quiet room (None when they ask again)."""
        with contextlib.suppress(AudioError):
            return Prompter(rt, ArraySource(in_room(p)), io.StringIO(), meter=False, attempts=1).word_takes("no", 1)[0]
        return None

    out = io.StringIO()
    with Runtime.open() as rt, pytest.raises(AudioError, match="ended before all takes"):
        audio = np.concatenate([in_room(p) for p in household(rt, gsc_dir, "no", captured, one_by_one=True)])
        Prompter(rt, ArraySource(audio), out, meter=False).word_takes("no", 5)
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("  ok:") for line in lines) == 5
    retakes = [line for line in lines if line.startswith("  retake:")]
    assert len(retakes) == 1 and "unlike the other takes" in retakes[0]
    assert lines[-1].startswith("Say 'no' after the tone (")  # the retake's prompt, which the input did not answer


def windows_in_noise(noise: np.ndarray, every: int, snr_db: float) -> list[tuple[int, int, int, int]]:
    """FSDD words (every ``every``-th) placed at a seeded offset in 2 s takes with real noise at ``snr_db``: per
    take, (`word_start` of the noisy take, of the same take without noise, where the word starts, its length)."""
    from edge_meta.audio import read_audio
    from edge_meta.corpora import read_fsdd
    from edge_meta.device.takes import word_start
    from edge_meta.noise import mix

    rng, n, out = np.random.default_rng(5), 16000, []
    for item in read_fsdd("../shared/data/fsdd").items[::every]:
        word = read_audio(item.path, announce=False)
        take = np.zeros(32000, np.float32)
        at = int(rng.integers(0, len(take) - len(word)))
        take[at : at + len(word)] = word
        cut = int(rng.integers(0, len(noise) - len(take)))
        out.append((word_start(mix(take, noise[cut : cut + len(take)], snr_db), n), word_start(take, n), at, len(word)))
    return out


def test_a_take_in_steady_noise_is_windowed_on_its_word():
    """At 10 dB SNR every frame is within 30 dB of the loudest, so a level VAD calls the whole take speech and
    centres the window on the middle of the recording; the word's power above the noise floor still finds it."""
    from edge_meta.corpora import read_corpus
    from edge_meta.noise import load_noise_part

    noise = np.concatenate(load_noise_part(sorted(read_corpus("../shared/data/arabic_speech_commands").noise), "eval"))
    takes = windows_in_noise(noise, 60, 10.0)
    covered = sum(start <= at and at + length <= start + 16000 for start, _, at, length in takes)
    assert covered >= 0.9 * len(takes), f"the window held the whole word in {covered} of {len(takes)} takes"


def test_a_take_in_loud_noise_is_windowed_where_the_clean_take_is():
    """At 5 dB SNR the take's broadband power is mostly noise (a boiler, a room): its choice landed more than
    0.1 s from the clean take's in over half of these takes. Band by band the word still stands out."""
    from edge_meta.bench.fewshot import eval_noise

    takes = windows_in_noise(np.concatenate(eval_noise("../shared/data")), 30, 5.0)
    covered = sum(start <= at and at + length <= start + 16000 for start, _, at, length in takes)
    near = sum(abs(start - clean) <= 1600 for start, clean, _, _ in takes)
    assert covered >= 0.85 * len(takes), f"the window held the whole word in {covered} of {len(takes)} takes"
    assert near >= 0.75 * len(takes), f"the window started within 0.1 s of the clean take's in {near} of {len(takes)}"


def test_a_take_cut_tight_around_its_word_is_windowed_as_if_said_in_a_quiet_room():
    """FSDD's clips are cut tight around the digit: no floor to stand over, so band floors centred the window on
    the word's loudest part, 50 ms or more from where the same word padded by a quiet room is windowed in 8% of
    clips (the clean few-shot rows lost 0.3-0.9 points). A take no longer than the window is placed as a whole."""
    from edge_meta.corpora import read_fsdd
    from edge_meta.device.takes import word_start

    n, pad, room = 16000, 8000, np.random.default_rng(0)
    off = []
    for item in read_fsdd("../shared/data/fsdd").items[::10]:
        x = read_audio(item.path, announce=False)
        if len(x) > n:
            continue
        quiet = (1e-4 * room.standard_normal(len(x) + 2 * pad)).astype(np.float32)
        quiet[pad : pad + len(x)] += x
        off.append(abs(word_start(x, n) - (word_start(quiet, n) - pad)))
    far = sum(o > 800 for o in off)
    assert len(off) >= 250 and far <= 0.02 * len(off), f"{far} of {len(off)} windows 50 ms or more apart"
