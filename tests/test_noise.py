"""Real noise for training and for the noisy benchmark: disjoint shares, and mixing at a true SNR."""

import numpy as np
import pytest

from edge_meta.audio import read_audio
from edge_meta.corpora import read_corpus, read_fsdd
from edge_meta.noise import active_power, load_noise_part, mix, noise_part, noisy_clips


@pytest.fixture(scope="module")
def noise_paths(gsc_dir, arabic_dir):
    return sorted(read_corpus(gsc_dir).noise + read_corpus(arabic_dir).noise)


def test_training_and_evaluation_shares_of_the_noise_are_disjoint_and_complete(noise_paths):
    short = [p for p in noise_paths if "_silence_" in str(p)]
    long = [p for p in noise_paths if "_background_noise_" in str(p)]
    assert len(short) > 100 and len(long) == 2
    in_eval = [noise_part(str(p), read_audio(p, announce=False), "eval") is not None for p in short]
    in_train = [noise_part(str(p), read_audio(p, announce=False), "train") is not None for p in short]
    assert all(a != b for a, b in zip(in_eval, in_train))  # each room clip belongs to exactly one part
    assert 0.2 < np.mean(in_eval) < 0.4
    for p in long:
        x = read_audio(p, announce=False)
        train, ev = noise_part(str(p), x, "train"), noise_part(str(p), x, "eval")
        assert len(train) + len(ev) == len(x) and np.array_equal(np.concatenate([train, ev]), x)
        assert 0.25 < len(ev) / len(x) < 0.35


def test_what_training_loads_never_contains_evaluation_audio(gsc_dir, arabic_dir, noise_paths):
    from edge_meta.train.data import CorpusSpec, load_noise

    train = load_noise([CorpusSpec(str(gsc_dir)), CorpusSpec(str(arabic_dir))])
    ev = load_noise_part(noise_paths, "eval")
    assert train and ev
    probes = {x[1000:1064].tobytes() for x in ev}  # 4 ms of every evaluation piece
    for x in train:
        raw = x.tobytes()
        assert not any(p in raw for p in probes)


def test_mixing_puts_active_speech_exactly_at_the_snr(noise_paths):
    fsdd = read_fsdd("../shared/data/fsdd")
    speech = read_audio(fsdd.items[0].path, announce=False)
    pool = load_noise_part(noise_paths, "eval")
    [padded] = noisy_clips([speech], pool, None, seed=1)
    for snr in (20.0, 10.0, 5.0, 0.0):
        [noisy] = noisy_clips([speech], pool, snr, seed=1)
        noise = noisy - padded  # same seed: same offset, so the difference is the scaled noise alone
        measured = 10 * np.log10(active_power(padded) / np.square(noise.astype(np.float64)).mean())
        assert measured == pytest.approx(snr, abs=0.01)
    # padding with silence does not dilute the speech level (within a dB: frames at the word's edges
    # fall on another grid), where the plain mean power drops with the clip's share of the 2 s
    level = lambda p: 10 * np.log10(p)  # noqa: E731
    assert abs(level(active_power(padded)) - level(active_power(speech))) < 1.0
    assert level(np.square(padded.astype(np.float64)).mean()) < level(active_power(speech)) - 3.0


def test_the_same_seed_gives_every_system_the_same_audio(noise_paths):
    fsdd = read_fsdd("../shared/data/fsdd")
    clips = [read_audio(i.path, announce=False) for i in fsdd.items[:20]]
    pool = load_noise_part(noise_paths, "eval")
    a, b = noisy_clips(clips, pool, 10.0, seed=7), noisy_clips(clips, pool, 10.0, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = noisy_clips(clips, pool, 10.0, seed=8)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert all(len(x) == 32000 for x in a)


def test_lower_snr_moves_the_shipped_encoders_embeddings_further(noise_paths):
    from edge_meta.bench.fewshot import embed_clips
    from edge_meta.bundle import Bundle
    from edge_meta.device.backends import open_backend
    from edge_meta.frontend import LogMel
    from edge_meta.resources import default_bundle_path

    fsdd = read_fsdd("../shared/data/fsdd")
    clips = [read_audio(i.path, announce=False) for i in fsdd.items[::60]]
    pool = load_noise_part(noise_paths, "eval")
    b = Bundle.open(default_bundle_path())
    try:
        backend, logmel = open_backend(b, "onnx", "int8", threads=1), LogMel(b.frontend)
        clean = embed_clips(backend, logmel, noisy_clips(clips, pool, None, seed=0))
        moved = [np.mean(1 - np.sum(clean * embed_clips(backend, logmel, noisy_clips(clips, pool, snr, seed=0)), axis=1))
                 for snr in (20.0, 10.0, 0.0)]
    finally:
        b.close()
    assert moved[0] < moved[1] < moved[2]
