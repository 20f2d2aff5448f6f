"""Property-based fuzzing of everything the device reads from outside (see benchmarks/fuzz_targets.py): every
audio file, bundle and profile file is either accepted and valid, or refused with the library's typed error;
never another exception, never a hang (a per-example deadline), never a half-imported profile.

benchmarks/fuzz.py runs the same targets for >= 10,000 cases each; CI runs a few hundred."""

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from fuzz_targets import (FSDD, AudioCase, BundleCase, ProfileCase, audio_cases, audio_target,  # noqa: E402
                          bundle_cases, bundle_target, profile_cases, profile_target)

CI = settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))


def run(target, case) -> None:
    with tempfile.TemporaryDirectory(prefix="edge-meta-fuzz-") as tmp:
        assert target(case, Path(tmp)) in ("ok", "typed")


@CI
@given(audio_cases)
def test_any_audio_file_decodes_to_16k_mono_or_raises_audio_error(case):
    run(audio_target, case)


@CI
@given(bundle_cases)
def test_any_damaged_or_hostile_bundle_is_refused_with_bundle_error(case):
    run(bundle_target, case)


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD (../shared/data/fsdd) is absent")
@CI
@given(profile_cases)
def test_any_mutated_profile_imports_cleanly_or_changes_nothing(case):
    run(profile_target, case)


def _wav(x, rate: int, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


# Inputs that crashed the device before the fix named beside each (found by the fuzzer or while writing it).
REGRESSIONS = {
    "rate 2^31-1: MemoryError from resampling (audio.py refuses rates outside 4-384 kHz)":
        (audio_target, AudioCase(_wav(np.zeros(800, np.float32), 2**31 - 1, "PCM_16"), ".wav")),
    "stereo float WAV near float32 max: the down-mix overflowed to inf, returned as audio (down-mix in float64)":
        (audio_target, AudioCase(_wav(np.full((400, 2), 3e38, np.float32), 16000, "FLOAT"), ".wav", expect=400)),
    "8 kHz float WAV near float32 max: resampling overshot to inf, returned as audio (result checked)":
        (audio_target, AudioCase(_wav(np.full(400, 3e38, np.float32) * np.sign(np.sin(np.arange(400))), 8000, "FLOAT"),
                                 ".wav")),
    "manifest nested 100,000 deep: RecursionError (bundle.py catches it)":
        (bundle_target, BundleCase("manifest_text", "deep_array")),
    "manifest with a 5000-digit number: ValueError":
        (bundle_target, BundleCase("manifest_text", "long_int")),
    "frontend n_mels = 'x': TypeError in the frontend (FrontendSpec.check)":
        (bundle_target, BundleCase("field", (("frontend", "n_mels"), "x"), rehash=True)),
    "frontend hop_length = 0: ValueError in the frontend":
        (bundle_target, BundleCase("field", (("frontend", "hop_length"), 0), rehash=True)),
    "frontend n_mels = 41: onnxruntime error at the first window (backends check the input shape)":
        (bundle_target, BundleCase("field", (("frontend", "n_mels"), 41), rehash=True)),
    "encoder outputs naming one the model lacks: accepted, KeyError when first used (e.g. 'speaker' at a voice)":
        (bundle_target, BundleCase("field", (("encoder", "outputs"), ["word", "speaker", "accent"]), rehash=True)),
    "heads.word.kind = []: TypeError in Runtime":
        (bundle_target, BundleCase("field", (("heads", "word", "kind"), []), rehash=True)),
    "encoder file name [] : TypeError in Bundle.encoder_file":
        (bundle_target, BundleCase("field", (("encoder", "files"), [{"backend": "onnx", "precision": "int8", "file": []}]),
                                   rehash=True)),
    "thresholds.word = 'x': ValueError in Runtime":
        (bundle_target, BundleCase("field", (("thresholds", "word"), "x"), rehash=True)),
    "manifest.json a symlink out of the bundle: accepted":
        (bundle_target, BundleCase("file", ("manifest_symlink", 0, b"x"), must_refuse=True)),
    "profile nested 100,000 deep: RecursionError (profile_file.py catches it)":
        (profile_target, ProfileCase("hostile", "deep_array")),
    "profile with a 5000-digit number: ValueError":
        (profile_target, ProfileCase("hostile", "long_int_profile")),
    "profile embeddings of 64 values under this bundle's id: imported, then every detector failed "
    "(a file's embeddings are never trusted: the takes' audio is embedded again, so it imports and detects)":
        (profile_target, ProfileCase("take", ("embedding_size", 0, 64), expect=True)),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_inputs_that_once_crashed_are_refused_with_the_typed_error(name, fsdd_dir):
    target, case = REGRESSIONS[name]
    with tempfile.TemporaryDirectory(prefix="edge-meta-fuzz-") as tmp:
        assert target(case, Path(tmp)) == ("ok" if getattr(case, "expect", None) else "typed")
