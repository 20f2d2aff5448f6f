import numpy as np
import pytest

from edge_meta.corpora import read_fsdd
from edge_meta.episodes import EpisodeSampler


@pytest.fixture(scope="module")
def fsdd_ids(fsdd_dir):
    c = read_fsdd(fsdd_dir)
    words, speakers = sorted({i.word for i in c.items}), sorted({i.speaker for i in c.items})
    return (np.array([words.index(i.word) for i in c.items]), np.array([speakers.index(i.speaker) for i in c.items]))


def test_own_speaker_episodes_use_one_speaker_and_disjoint_takes(fsdd_ids):
    labels, speakers = fsdd_ids
    s = EpisodeSampler(labels, speakers, 10, 5, 5, "own", seed=3)
    for _ in range(20):
        ep = s.sample()
        assert len(set(speakers[np.concatenate([ep.support, ep.query])])) == 1
        assert not set(ep.support) & set(ep.query)
        assert (labels[ep.support] == ep.classes[ep.support_y]).all()
        assert (labels[ep.query] == ep.classes[ep.query_y]).all()


def test_household_episodes_take_queries_from_another_speaker(fsdd_ids):
    labels, speakers = fsdd_ids
    s = EpisodeSampler(labels, speakers, 10, 1, 5, "household", seed=3)
    for _ in range(20):
        ep = s.sample()
        a, b = set(speakers[ep.support]), set(speakers[ep.query])
        assert len(a) == 1 and len(b) == 1 and a != b
        assert len(ep.support) == 10 and len(ep.query) == 50


def test_disjoint_mode_keeps_query_speakers_out_of_a_class_support():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), 30)
    speakers = rng.integers(0, 8, size=len(labels))
    s = EpisodeSampler(labels, speakers, 5, 2, 3, "disjoint", seed=1)
    for _ in range(50):
        ep = s.sample()
        for c in range(5):
            sup = set(speakers[ep.support[ep.support_y == c]])
            qry = set(speakers[ep.query[ep.query_y == c]])
            assert len(sup) == 1 and not sup & qry


def test_episodes_are_reproducible_from_the_seed(fsdd_ids):
    labels, speakers = fsdd_ids
    a = [EpisodeSampler(labels, speakers, 10, 5, 5, "own", seed=7).sample() for _ in range(1)][0]
    b = EpisodeSampler(labels, speakers, 10, 5, 5, "own", seed=7).sample()
    np.testing.assert_array_equal(a.support, b.support)
    np.testing.assert_array_equal(a.query, b.query)


def test_impossible_episodes_are_refused_up_front(fsdd_ids):
    labels, speakers = fsdd_ids
    with pytest.raises(ValueError, match="need 11 classes"):
        EpisodeSampler(labels, speakers, 11, 1, 1, "any")
