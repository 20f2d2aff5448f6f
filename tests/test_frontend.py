import numpy as np
import torch

from edge_meta.audio import fix_length, read_audio
from edge_meta.frontend import FrontendSpec, LogMel
from edge_meta.train.frontend_torch import LogMelTorch


def _real_windows(gsc_dir, fsdd_dir, n=24):
    paths = sorted(gsc_dir.glob("*/*.flac"))[::200][: n // 2] + sorted((fsdd_dir / "recordings").glob("*.wav"))[::250][: n // 2]
    return np.stack([fix_length(read_audio(p, announce=False), 16000) for p in paths])


def test_numpy_and_torch_frontends_agree_on_real_speech(gsc_dir, fsdd_dir):
    spec = FrontendSpec()
    windows = _real_windows(gsc_dir, fsdd_dir)
    ours = LogMel(spec).batch(windows)
    twin = LogMelTorch(spec)(torch.from_numpy(windows)).numpy()
    assert ours.shape == twin.shape == (len(windows), 1, spec.n_mels, spec.n_frames)
    assert np.abs(ours - twin).max() <= 1e-4


def test_features_ignore_input_gain(gsc_dir, fsdd_dir):
    lm = LogMel(FrontendSpec())
    w = _real_windows(gsc_dir, fsdd_dir, 2)[0]
    # exact up to the tiny log floor, which a 26 dB quieter input approaches in its quietest bins
    np.testing.assert_allclose(lm(w), lm(0.05 * w), atol=2e-3)


def test_features_are_bounded_and_distinguish_words(gsc_dir):
    lm = LogMel(FrontendSpec())
    yes = lm(read_audio(next((gsc_dir / "yes").glob("*.flac"))))
    no = lm(read_audio(next((gsc_dir / "no").glob("*.flac"))))
    assert yes.min() >= -0.5 and yes.max() <= 0.5
    assert np.abs(yes - no).mean() > 0.05


def test_spec_round_trips_through_the_manifest_dict():
    spec = FrontendSpec(n_mels=32, f_max=7600.0)
    assert FrontendSpec.from_dict(spec.to_dict()) == spec
