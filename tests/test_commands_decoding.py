"""Decoding word detections into commands (torch-free): streams of the device's `Detection`s, the prior
fixing deletions and low-score substitutions, stray words rejected, multi-word keywords, injected noise."""

from __future__ import annotations

import numpy as np
import pytest

from edge_meta.commands.decoding import (ChannelModel, CommandDecoder, CommandPrior, DecoderConfig, WordEvent,
                                         candidate_phrases, decode)
from edge_meta.commands.grammar import Command, default_grammar
from edge_meta.commands.noise import NoiseRates, noisy_detections
from edge_meta.device.detector import Detection

KITCHEN_OFF = Command("lights_off", (("room", "kitchen"),))


@pytest.fixture(scope="module")
def grammar():
    return default_grammar()


@pytest.fixture(scope="module")
def labels(grammar):
    return grammar.content_words() + ["attic"]


def _prior(grammar, labels, favour=None, boost=6.0):
    """A prior without a language model, or one whose log-probabilities favour the phrases of one command."""
    phrases = candidate_phrases(grammar, labels)
    if favour is None:
        return CommandPrior.build(phrases, labels)
    return CommandPrior.build(phrases, labels, np.array([boost if p.command == favour else 0.0 for p in phrases]))


def _word(label, t, score=0.9):
    """The device detector's own event type: a 1 s window centred on t."""
    return Detection(label, "", score, t - 0.5, t + 0.5)


def test_a_stream_of_detections_becomes_command_events(grammar, labels):
    decoder = CommandDecoder(_prior(grammar, labels), ChannelModel())
    stream = [_word("kitchen", 1.0), _word("lights", 1.6), _word("off", 2.2), _word("play", 6.0), _word("jazz", 6.6),
              _word("lock", 10.0), _word("front", 10.5), _word("door", 11.0)]
    events = [e for d in stream for e in decoder.push(d)] + decoder.flush()
    assert [e.command.name for e in events] == ["lights_off(room=kitchen)", "music_play(genre=jazz)",
                                                "door_lock(door=front)"]
    first = events[0].to_event()
    assert first["event"] == "command" and first["intent"] == "lights_off" and first["slots"] == {"room": "kitchen"}
    assert first["words"] == ["kitchen", "lights", "off"] and first["t"] == 2.2 and first["start_t"] == 1.0
    assert all(e.confidence > 0.5 for e in events)


def test_the_prior_restores_a_deleted_room(grammar, labels):
    heard = [WordEvent("lights", 0.9, 0.0), WordEvent("off", 0.9, 0.5)]
    assert decode(_prior(grammar, labels), heard, ChannelModel()).command == Command("lights_off")
    assert decode(_prior(grammar, labels, favour=KITCHEN_OFF), heard, ChannelModel()).command == KITCHEN_OFF


def test_scores_are_likelihoods_a_weak_word_yields_to_the_prior(grammar, labels):
    prior = _prior(grammar, labels, favour=KITCHEN_OFF)
    heard = [WordEvent("kitchen", 0.9, 0.0), WordEvent("lights", 0.9, 0.5)]
    weak = decode(prior, [*heard, WordEvent("on", 0.02, 1.0)], ChannelModel())
    strong = decode(prior, [*heard, WordEvent("on", 0.995, 1.0)], ChannelModel())
    assert weak.command == KITCHEN_OFF
    assert strong.command == Command("lights_on", (("room", "kitchen"),))


def test_stray_words_are_no_command(grammar, labels):
    decoder = CommandDecoder(_prior(grammar, labels), ChannelModel(insertion=0.2))
    stray = [WordEvent("jazz", 0.6, 0.0), WordEvent("door", 0.6, 0.5), WordEvent("dim", 0.6, 1.0),
             WordEvent("front", 0.6, 1.5)]
    assert decode(decoder.prior, stray, decoder.channel).confidence < 0.5
    assert [e for d in stray for e in decoder.push(d)] + decoder.flush() == []


def test_the_decoder_groups_by_pause_ignores_unknown_labels_and_caps_words(grammar, labels):
    decoder = CommandDecoder(_prior(grammar, labels), ChannelModel(), DecoderConfig(gap_s=1.0, max_words=3))
    assert decoder.push(WordEvent("hello", 0.9, 0.0)) == []  # not a command word: ignored
    assert decoder.push(WordEvent("louder", 0.9, 0.5)) == []
    assert decoder.advance(1.2) == []  # the pause is not over yet
    assert [e.command.intent for e in decoder.advance(1.6)] == ["volume_up"]
    events = [e for w, t in (("send", 3.0), ("robot", 3.4), ("home", 3.8)) for e in decoder.push(WordEvent(w, 0.9, t))]
    assert [e.command.intent for e in events] == ["vacuum_stop"]  # closed at max_words, no flush needed
    assert decoder.flush() == []


def test_a_multi_word_keyword_is_one_unit(grammar):
    labels = ["kitchen", "lights on", "lights off", "play", "jazz"]
    prior = CommandPrior.build(candidate_phrases(grammar, labels), labels)
    event = decode(prior, [WordEvent("Kitchen", 0.9, 0.0), WordEvent("Lights Off", 0.9, 0.6)], ChannelModel())
    assert event.command == KITCHEN_OFF


def test_a_households_own_word_is_a_slot_value(grammar, labels):
    event = decode(_prior(grammar, labels), [WordEvent("attic", 0.9, 0.0), WordEvent("lights", 0.9, 0.5),
                                             WordEvent("on", 0.9, 1.0)], ChannelModel())
    assert event.command == Command("lights_on", (("room", "attic"),))


def test_injected_noise_follows_its_rates():
    rng = np.random.default_rng(0)
    labels = [f"w{i}" for i in range(20)]
    units = ["w1", "w2", "w3", "w4"]
    assert [d.label for d in noisy_detections(units, labels, NoiseRates(), rng)] == units
    assert noisy_detections(units, labels, NoiseRates(deletion=1.0), rng) == []
    runs = [noisy_detections(units, labels, NoiseRates(0.2, 0.1, 0.05), rng) for _ in range(3000)]
    assert np.mean([len(r) for r in runs]) == pytest.approx(4 * (0.9 + 0.05), abs=0.05)
    # per unit: kept as itself 0.9 * 0.8, substituted by one of the 16 of 19 other labels that are no unit,
    # or preceded by an insertion that is no unit (16 of 20 labels)
    foreign = (0.9 * 0.2 * 16 / 19 + 0.05 * 16 / 20) / (0.9 + 0.05)
    assert np.mean([d.label not in units for r in runs for d in r]) == pytest.approx(foreign, abs=0.02)
