"""The hold margin an export measures (edge_meta.export.hold): its model of the detector is the detector's `Hold`,
and on real words the margin it picks keeps what scoring every hop finds."""

import numpy as np
import pytest

from edge_meta.bundle import Bundle
from edge_meta.device.backends import open_backend
from edge_meta.device.detector import DetectorConfig, Hold, HopScores
from edge_meta.export.exporter import calibration_sets
from edge_meta.export.hold import MAX_LOST, calibrate_hold, found, score_tracks
from edge_meta.frontend import LogMel
from edge_meta.resources import default_bundle_path


@pytest.fixture(scope="module")
def shipped(gsc_dir):
    """The shipped bundle's int8 word graph, its default threshold, and 120 calibration clips of real words."""
    b = Bundle.open(default_bundle_path())
    backend, logmel = open_backend(b), LogMel(b.frontend)
    items = calibration_sets(gsc_dir)[0][:120]
    yield (lambda w: backend.embed(logmel.batch(w), ["word"])["word"]), float(b.manifest["thresholds"]["word"]), items
    b.close()


def test_the_exports_model_of_holding_is_what_the_detectors_hold_does(shipped):
    embed, threshold, items = shipped
    tracks = score_tracks(embed, items, 16000, 1600)
    assert len(tracks) >= 60
    for below in (0.05, 0.15, 0.3, np.inf):
        for hops in (1, 2, 3):
            for track in tracks:
                hold = Hold(np.array([threshold]), below, hops)
                scored = hold.replay([HopScores(i, np.array([s], np.float32), np.zeros(0)) for i, s in enumerate(track)])
                assert found(track, threshold, below, hops) == any(h.words[0] >= threshold for h in scored)


def test_the_measured_margin_keeps_the_words_every_hop_finds_and_a_smaller_one_would_not(shipped):
    embed, threshold, items = shipped
    hops = DetectorConfig().hold_hops
    margin = calibrate_hold(embed, items, 16000, 16000, threshold)
    tracks = score_tracks(embed, items, 16000, 1600)
    reached = [t for t in tracks if found(t, threshold, np.inf, hops)]
    assert margin.found == len(reached) > 0.5 * len(tracks)  # most real words pass the default threshold
    assert margin.lost <= MAX_LOST * margin.found
    if margin.below > 0.1:  # the grid's smallest margin is not enough: the one below it loses more
        smaller = round(margin.below - 0.05, 2)
        assert sum(not found(t, threshold, smaller, hops) for t in reached) > MAX_LOST * len(reached)
