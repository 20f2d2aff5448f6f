import warnings

import numpy as np
import pytest
import soundfile as sf

from edge_meta.audio import AudioConversionWarning, fix_length, read_audio, require_speech
from edge_meta.errors import AudioError


def test_reads_16k_flac_without_warning(gsc_dir):
    path = next((gsc_dir / "yes").glob("*.flac"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = read_audio(path)
    assert x.dtype == np.float32 and len(x) == 16000


def test_fsdd_8k_is_resampled_and_says_so(fsdd_dir):
    path = fsdd_dir / "recordings" / "7_jackson_32.wav"
    native, sr = sf.read(path)
    with pytest.warns(AudioConversionWarning, match="8000 Hz to 16000 Hz"):
        x = read_audio(path)
    assert sr == 8000 and abs(len(x) - 2 * len(native)) <= 1


def test_stereo_is_downmixed_with_a_warning(tmp_path, gsc_dir):
    mono = read_audio(next((gsc_dir / "no").glob("*.flac")))
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 16000)
    with pytest.warns(AudioConversionWarning, match="2 channels"):
        x = read_audio(path)
    np.testing.assert_allclose(x, 0.75 * mono, atol=2e-4)


@pytest.mark.parametrize("content, match", [
    (None, "no such file"),
    (b"", "empty"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "not a readable audio file"),
    (b"this is a text file, not audio\n" * 20, "not a readable audio file"),
])
def test_bad_files_raise_a_clear_error(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=match) as err:
        read_audio(path)
    assert str(path) in str(err.value)


def test_nan_samples_are_refused(tmp_path):
    path = tmp_path / "nan.wav"
    x = np.zeros(1600, dtype=np.float32)
    x[10] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        read_audio(path)


def test_fix_length_pads_short_and_keeps_the_loud_part_of_long():
    short = np.ones(100, np.float32)
    out = fix_length(short, 1000)
    assert len(out) == 1000 and out[450:550].sum() == 100
    long = np.zeros(5000, np.float32)
    long[3000:3500] = 1.0
    out = fix_length(long, 1000)
    assert len(out) == 1000 and out.sum() == 500


def test_silence_and_clipping_are_refused(gsc_dir):
    with pytest.raises(AudioError, match="silent"):
        require_speech(np.zeros(16000, np.float32), "take 1")
    speech = read_audio(next((gsc_dir / "yes").glob("*.flac")))
    require_speech(speech, "ok")
    with pytest.raises(AudioError, match="clipped"):
        require_speech(np.clip(speech * 1000, -1, 1), "take 2")


def test_a_take_too_long_to_be_one_is_refused_from_its_header(tmp_path, fsdd_dir):
    """Enrollment read a take whole before its length check (a 10 h file: 2.9 GB and a misleading message): now a
    recording longer than a take can be is refused from its header, before a sample is decoded."""
    import tracemalloc

    from edge_meta.device import Runtime
    from edge_meta.device.limits import MAX_VOICE_TAKE_S, MAX_WORD_TAKE_S

    speech = np.concatenate([read_audio(p, announce=False, sample_rate=8000)
                             for p in sorted((fsdd_dir / "recordings").glob("*_theo_*.wav"))[:150]])
    path = tmp_path / "two_minutes.wav"
    sf.write(path, np.tile(speech, 3)[: 120 * 8000], 8000, subtype="PCM_16")
    decoded = 120 * 16000 * 4
    with Runtime.open() as rt:
        for enroll, limit in ((lambda: rt.enroll_word("five", [path]), MAX_WORD_TAKE_S),
                              (lambda: rt.enroll_voice("theo", [path]), MAX_VOICE_TAKE_S)):
            tracemalloc.start()
            with pytest.raises(AudioError, match=f"is 120 s long; this takes at most {limit:.0f} s"):
                enroll()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < 0.05 * decoded
