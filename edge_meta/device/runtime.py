"""The device API, small enough to hold in your head:

    rt = Runtime.open("bundle/", store="profiles.db")
    rt.enroll_word("lights on", [pcm1, pcm2, pcm3], user="alice")
    rt.enroll_voice("alice", [pcm4, pcm5, pcm6])
    for d in rt.listen(WavSource("test.wav")):
        print(d.label, d.score, d.speaker, d.start_s)

Enrollment checks every take (speech present, not clipped, loud enough, fits the window), embeds
it, calibrates thresholds with the bundle's own word head against the background bank, and stores
takes, embeddings and thresholds in the profile store in one transaction. Words and voices enrolled
with an older bundle are re-embedded from their kept audio when a new bundle opens the store.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edge_meta.audio import SAMPLE_RATE, check_length, fix_length, read_audio
from edge_meta.bundle import REBUILD_HINT, Bundle
from edge_meta.device.backends import EncoderBackend, open_backend
from edge_meta.commands.decoding import ChannelModel, CommandDecoder
from edge_meta.commands.grammar import words_of
from edge_meta.device.calibration import UNLIKE_QUANTILE, Calibration, calibrate, calibrate_all
from edge_meta.device.commands import CommandModel, CommandProfile
from edge_meta.device.detector import Detection, DetectorConfig, StreamingDetector
from edge_meta.device.heads import HEADS, PrototypeHead
from edge_meta.device.limits import (MAX_VOICE_TAKE_S, MAX_WORD_TAKE_S, check_false_accept, check_name,
                                     check_take_count)
from edge_meta.device.profile_file import Profile, read_profile, write_profile
from edge_meta.device.quality import check_distinct, check_voice_take, check_word_take
from edge_meta.device.scorer import Scorer, Vocabulary
from edge_meta.device.sources import AudioSource, WavSource
from edge_meta.device.takes import word_window
from edge_meta.device.verifier import TemplateVerifier
from edge_meta.device.store import ProfileStore, StoredWord, from_pcm16, to_pcm16
from edge_meta.errors import AudioError, BundleError, StoreError
from edge_meta.frontend import LogMel
from edge_meta.metrics import unit
from edge_meta.resources import default_bundle_path

Clip = np.ndarray | str | Path


class SpeakerFallbackWarning(UserWarning):
    """The bundle has no speaker output: voices are told apart with the word embedding."""


@dataclass
class EnrolledWord:
    label: str
    user: str
    takes: int
    calibration: Calibration
    speaker: str | None  # the voice the word is bound to


@dataclass
class EnrolledVoice:
    user: str
    takes: int
    calibration: Calibration


def _key(label: str, user: str) -> str:
    return f"{label}\0{user}"


def _refuse_disagreeing(label: str, c: Calibration, names: list[str]) -> None:
    """AudioError naming the odd take, or saying the takes disagree, when ``c`` could not keep its target."""
    if c.odd:
        i = min(c.odd, key=lambda k: c.take_scores[k])
        raise AudioError(f"{names[i]}: is unlike the other takes of {label!r} (similarity {c.take_scores[i]:.3f}: "
                         "one in ten background clips scores higher): another word, or noise?",
                         "record it again or leave it out; if it is the word, add --force to enroll it anyway")
    if c.capped:
        cost = (f"would let {c.background_rate:.1%} of background speech through, not {c.false_accept:.1%}"
                if c.background_rate > c.false_accept else "is below the bundle's floor, where words start to "
                "fire on other speech in long streams")
        raise AudioError(f"the takes of {label!r} disagree (each scored against the others: median {c.held_out:.3f}): "
                         f"a threshold low enough to detect them ({c.threshold:.3f}) {cost} "
                         f"(the false-accept target needs {c.safe_threshold:.3f})",
                         "record the takes again, said the same way in a quiet place; takes from several people: "
                         "enroll each person's with their own --user; or add --force for the lower threshold")


class Runtime:
    def __init__(self, bundle: Bundle, backend: EncoderBackend, store: ProfileStore) -> None:
        self.bundle, self.backend, self.store = bundle, backend, store
        self.logmel = LogMel(bundle.frontend)
        m = bundle.manifest
        head = m["heads"].get("word")
        if not isinstance(head, dict) or head.get("kind") not in HEADS:
            kind = head.get("kind") if isinstance(head, dict) else None
            raise BundleError(f"{bundle.root}: unknown word head kind {kind!r} (this edge-meta knows {sorted(HEADS)})",
                              "upgrade edge-meta on the device, or export the bundle with a known learner")
        self.head_kind = head["kind"]
        arrays = bundle.load_heads()
        self._head_arrays = {k[len("word."):]: v for k, v in arrays.items() if k.startswith("word.")}
        self._head_graphs = {name: bundle.read(path) for name, path in head.get("graphs", {}).items()}  # verified
        self.open_set = HEADS[self.head_kind].open_set
        outputs = m["encoder"].get("outputs", ["word"])
        self.speaker_output = "speaker" if "speaker" in outputs else "word"
        self.background = arrays.get("background.word", np.zeros((0, 0))).astype(np.float32)
        self.speaker_background = (arrays.get("background.speaker", np.zeros((0, 0))).astype(np.float32)
                                   if self.speaker_output == "speaker" else self.background)
        thresholds = m.get("thresholds", {})
        self.default_threshold = float(thresholds.get("word", 0.5))
        # A voice threshold comes from the speaker background bank; only a bundle without one needs a fixed floor.
        self.speaker_floor = float(thresholds.get("speaker", 0.5 if not len(self.speaker_background) else -1.0))
        self._warned: set[str] = set()
        self._check_heads()
        self._refresh()
        store.set_bundle_id(bundle.bundle_id)

    @classmethod
    def open(cls, bundle: str | Path | None = None, store: str | Path = ":memory:", backend: str = "onnx",
             precision: str = "int8", threads: int = 1) -> "Runtime":
        """Open and verify a bundle (default: the one shipped with edge-meta) and a profile store."""
        b = Bundle.open(bundle or default_bundle_path())
        s = None
        try:
            s = ProfileStore(store)
            return cls(b, open_backend(b, backend, precision, threads), s)
        except BaseException:
            if s is not None:
                s.close()
            b.close()
            raise

    def close(self) -> None:
        self.store.close()
        self.bundle.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- heads ---------------------------------------------------------------------------------------
    def _check_heads(self) -> None:
        """Fit and score the word head, and size the background banks, on the encoder's own output once: head arrays
        that do not fit this encoder are refused at open, naming heads.npz, not with a traceback at first use."""
        probe = self.encode(np.zeros((1, self.logmel.spec.window_samples), np.float32))
        try:
            for name, bank, output in (("background.word", self.background, "word"),
                                       ("background.speaker", self.speaker_background, self.speaker_output)):
                if len(bank) and bank.shape[1:] != probe[output].shape[1:]:
                    raise ValueError(f"{name} has shape {bank.shape}; the encoder makes {probe[output].shape[1:]}")
            word = probe["word"]
            scores = self.make_word_head().fit({"a": np.repeat(word, 2, 0), "b": -np.repeat(word, 2, 0)}).scores(word)
            if np.shape(scores) != (1, 2):
                raise ValueError(f"the {self.head_kind} head scores 2 words as {np.shape(scores)}")
        except Exception as exc:  # noqa: BLE001 - whatever the arrays break, it is the bundle's fault
            raise BundleError(f"{self.bundle.path_of('heads.npz')}: the {self.head_kind} head does not fit this "
                              f"bundle's encoder ({type(exc).__name__}: {str(exc)[:200]})", REBUILD_HINT) from None

    def make_word_head(self):
        """A fresh instance of the bundle's word head (unfitted)."""
        return HEADS[self.head_kind].from_bundle(self._head_arrays, self._head_graphs)

    def _calibration_head(self):
        """The head whose scores are thresholded: the word head, or the prototype gate for softmax heads."""
        return self.make_word_head() if self.open_set else PrototypeHead()

    @property
    def _word_floor(self) -> float:
        """The bundle's default threshold is a prototype cosine: a floor for prototype scores only."""
        return self.default_threshold if not self.open_set or self.head_kind == "prototype" else -math.inf

    def _is_current(self, bundle_ids: list[str]) -> bool:
        """True when every take's embedding comes from this bundle."""
        return bool(bundle_ids) and all(b == self.bundle.bundle_id for b in bundle_ids)

    def _current(self) -> list[StoredWord]:
        return [w for w in self.store.words() if self._is_current(w.bundle_ids)]

    def _calibrate_words(self, takes: dict[str, np.ndarray], false_accept: dict[str, float]) -> dict[str, Calibration]:
        try:
            return calibrate_all(self._calibration_head(), takes, self.background, self._word_floor, false_accept)
        except ValueError as exc:  # a graph head with fewer label slots than words
            raise StoreError(str(exc), "remove a word first (edge-meta device remove WORD)") from None

    def _warn_once(self, message: str, category: type[Warning] = UserWarning) -> None:
        """Say it once per runtime, however many detectors and enrollments ask."""
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, category, stacklevel=3)

    def _warn_speaker_fallback(self) -> None:
        if self.speaker_output == "word":
            self._warn_once("this bundle has no speaker output: voices are matched with the word embedding, which tells "
                            "voices apart poorly (a bundle exported with a speaker head fixes it)", SpeakerFallbackWarning)

    # -- embedding -----------------------------------------------------------------------------------
    def load_clip(self, clip: Clip, name: str = "take", max_s: float = MAX_VOICE_TAKE_S) -> np.ndarray:
        """A take as 16 kHz float32 mono, from a path or an array, of at most ``max_s`` seconds (a longer file is
        refused from its header, before it is decoded)."""
        if isinstance(clip, (str, Path)):
            return read_audio(clip, max_s=max_s)
        x = np.asarray(clip, dtype=np.float32)
        check_length(len(x), SAMPLE_RATE, max_s, name)
        if x.ndim != 1 or len(x) == 0:
            raise AudioError(f"{name}: expected a non-empty 1-D array of 16 kHz samples", "pass mono float32 audio")
        if not np.all(np.isfinite(x)):
            raise AudioError(f"{name}: contains NaN or infinite samples", "record it again")
        return x

    def embed(self, clips: Sequence[np.ndarray], output: str = "word") -> np.ndarray:
        """Unit-length embeddings of keyword takes, each from its spoken part's model window (`word_window`)."""
        n = self.logmel.spec.window_samples
        return self.encode(np.stack([word_window(c, n) for c in clips]), [output])[output]

    def encode(self, windows: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """The encoder's outputs for model windows (B, window_samples): their log-mel features, and the samples
        themselves for a graph that takes them (the trunk flavour's word graph)."""
        return self.backend.embed(self.logmel.batch(windows), outputs, waveform=windows)

    def embed_voice(self, clip: np.ndarray) -> np.ndarray:
        """A voice take's speaker embedding: the mean over the model windows that cover its speech."""
        n = self.logmel.spec.window_samples
        if len(clip) <= n:
            windows = fix_length(clip, n)[None]
        else:
            starts = np.arange(0, len(clip) - n + 1, n // 2)
            windows = np.stack([clip[s : s + n] for s in starts])
            energy = np.mean(np.square(windows, dtype=np.float64), axis=1)
            windows = windows[energy >= 0.1 * energy.max()]  # skip windows of mostly silence
        emb = self.encode(windows, [self.speaker_output])[self.speaker_output]
        return unit(emb.mean(axis=0)).astype(np.float32)

    def check_take(self, x: np.ndarray, name: str) -> None:
        """Refuse a keyword take that is silent, clipped, too quiet, too short or longer than the window."""
        check_word_take(x, name, self.logmel.spec.window_s)

    def unlike(self, take: np.ndarray, others: np.ndarray) -> tuple[bool, float]:
        """(True when a take's embedding looks less like the other takes than a tenth of the background bank does,
        its cosine to the others' prototype)."""
        proto = unit(unit(others).mean(axis=0))
        score = float(unit(take) @ proto)
        if len(self.background):
            bar = float(np.quantile(self.background @ proto, UNLIKE_QUANTILE))
        else:
            bar = self.default_threshold - 0.1
        return score < bar, score

    def _takes(self, clips: Sequence[Clip], what: str, max_s: float) -> tuple[list[np.ndarray], list[str]]:
        check_take_count(len(clips), what)
        names = [str(c) if isinstance(c, (str, Path)) else f"take {i + 1}" for i, c in enumerate(clips)]
        # rounded to 16 bits as the store keeps them, so that re-embedding kept audio (a new bundle, an import)
        # gives back exactly the embeddings enrollment stored
        return [from_pcm16(to_pcm16(self.load_clip(c, n, max_s))) for c, n in zip(clips, names)], names

    # -- enrollment ----------------------------------------------------------------------------------
    def _calibrate_with(self, label: str, user: str, emb: np.ndarray,
                        false_accept: float) -> tuple[list[StoredWord], dict[str, Calibration]]:
        """The words enrolled now besides (label, user), and every word's calibration with ``emb`` as its takes."""
        words = [w for w in self._current() if w.key != (label, user)]
        all_takes = {**{_key(*w.key): w.embeddings for w in words}, _key(label, user): emb}
        fa = {**{_key(*w.key): w.false_accept for w in words}, _key(label, user): false_accept}
        return words, self._calibrate_words(all_takes, fa)

    def calibrate_takes(self, label: str, user: str, emb: np.ndarray, false_accept: float = 0.01) -> Calibration:
        """What enrolling takes embedded as ``emb`` would give (label, user) beside the words enrolled now: the
        prompts ask for a retake when a take is odd or the takes are capped, before `enroll_word` refuses them."""
        return self._calibrate_with(label, user, emb, false_accept)[1][_key(label, user)]

    def enroll_word(self, label: str, clips: Sequence[Clip], user: str = "", keep_audio: bool = True,
                    false_accept: float = 0.01, bind_speaker: bool = False, force: bool = False) -> EnrolledWord:
        """Teach a word from a few takes. ``bind_speaker``: the word fires only when ``user``'s enrolled voice
        is heard (enroll the voice with `enroll_voice`). Copies of one recording are refused; a take unlike the
        others, or takes too unlike each other for the false-accept target, are refused unless ``force``."""
        label = check_name(label, "word")
        user = check_name(user, "user name", allow_empty=True)
        if bind_speaker and not user:
            raise StoreError(f"{label!r} cannot be bound to a voice without a user", "give --user NAME with --bind")
        false_accept = check_false_accept(false_accept)
        takes, names = self._takes(clips, repr(label), MAX_WORD_TAKE_S)
        for x, n in zip(takes, names):
            self.check_take(x, n)
        check_distinct(takes, names)
        emb = self.embed(takes)
        words, cal = self._calibrate_with(label, user, emb, false_accept)
        if not force:
            _refuse_disagreeing(label, cal[_key(label, user)], names)
        with self.store.transaction():
            self.store.add_word(label, user, cal[_key(label, user)].threshold, emb, self.bundle.bundle_id,
                                takes if keep_audio else None, SAMPLE_RATE, speaker=user if bind_speaker else None,
                                false_accept=false_accept)
            self.store.set_thresholds({w.key: cal[_key(*w.key)].threshold for w in words})
        return EnrolledWord(label, user, len(takes), cal[_key(label, user)], user if bind_speaker else None)

    def enroll_voice(self, user: str, clips: Sequence[Clip], keep_audio: bool = True,
                     false_accept: float = 0.01) -> EnrolledVoice:
        """Teach a user's voice from a few takes of any speech (a sentence each works best)."""
        user = check_name(user, "user name")
        false_accept = check_false_accept(false_accept)
        self._warn_speaker_fallback()
        takes, names = self._takes(clips, f"{user}'s voice", MAX_VOICE_TAKE_S)
        for x, n in zip(takes, names):
            check_voice_take(x, n)
        emb = np.stack([self.embed_voice(x) for x in takes])
        cal = self._calibrate_voice(user, emb, false_accept)
        self.store.add_voice(user, cal.threshold, emb, self.bundle.bundle_id, takes if keep_audio else None, SAMPLE_RATE)
        return EnrolledVoice(user, len(takes), cal)

    def _calibrate_voice(self, user: str, emb: np.ndarray, false_accept: float = 0.01) -> Calibration:
        return calibrate(PrototypeHead(), {user: emb}, user, self.speaker_background, self.speaker_floor, false_accept)

    def remove_word(self, label: str, user: str = "") -> None:
        label, user = check_name(label, "word"), check_name(user, "user name", allow_empty=True)
        with self.store.transaction():
            removed = self.store.remove_word(label, user)
            if removed:
                self._recalibrate_words()
        self.store.compact()  # its recordings out of the file now, not when the last program closes it
        if not removed:
            owners = sorted(w.user or "(no user)" for w in self.store.words() if w.label == label)
            if owners:  # `list` shows the word: say whose it is rather than that it does not exist
                raise StoreError(f"{label!r} is not enrolled " + (f"for user {user!r}" if user else "without a user")
                                 + f"; it is enrolled for {', '.join(owners)}",
                                 f"say whose: edge-meta device remove {label!r} --user {owners[0]}")
            raise StoreError(f"no enrolled word {label!r}" + (f" for user {user!r}" if user else ""),
                             "see the enrolled words with `edge-meta device list`")

    def remove_voice(self, user: str) -> None:
        user = check_name(user, "user name")
        removed = self.store.remove_voice(user)
        self.store.compact()
        if not removed:
            raise StoreError(f"no enrolled voice for {user!r}", "see the enrolled voices with `edge-meta device list`")

    def forget_user(self, name: str) -> dict[str, int]:
        """Delete all of a user's words, voice and recordings (and words bound to their voice), then compact the
        store so the deleted bytes are gone from the file. An empty name is refused: it would match every word
        enrolled without a user."""
        name = check_name(name, "user name")
        with self.store.transaction():
            counts = self.store.delete_user(name)
            if any(counts.values()):
                self._recalibrate_words()
        self.store.compact()  # even for no such user: finishes erasing after a try that found the store busy
        if not any(counts.values()):
            raise StoreError(f"no user {name!r} in {self.store.path}", "see the users with `edge-meta device list`")
        return counts

    def plan_import(self, path: str | Path) -> Profile:
        """Read a profile file (`edge_meta.device.profile_file`) and make it this device's own, writing nothing:
        every take with audio is checked as enrollment checks it and embedded again, voice thresholds are calibrated
        here (word thresholds when imported); a take without audio keeps its embedding only if this bundle made it
        and it has this model's size and unit length. An entry that fails is moved to `rejected` with its reason;
        `Profile.replaces` says what importing would overwrite."""
        profile = read_profile(path)
        probe = self.encode(np.zeros((1, self.logmel.spec.window_samples), np.float32))
        for kind, entries in (("words", profile.words), ("voices", profile.voices)):
            dim = probe["word" if kind == "words" else self.speaker_output].shape[1]
            kept = []
            for entry in entries:
                name = f"word {entry['label']!r}" if kind == "words" else f"{entry['user']}'s voice"
                try:
                    entry["embeddings"], entry["bundle_ids"] = self._imported_embeddings(entry, kind, dim)
                except (AudioError, StoreError) as exc:
                    profile.rejected.append(f"{kind}: {name}: {exc}")
                    continue
                if kind == "voices":
                    entry["threshold"] = self._calibrate_voice(entry["user"], entry["embeddings"]).threshold
                kept.append(entry)
            entries[:] = kept
        return profile

    def _imported_embeddings(self, entry: dict, kind: str, dim: int) -> tuple[np.ndarray, list[str]]:
        """An imported entry's embeddings, never the file's word for them (a file could carry any vectors)."""
        if entry["audio"] is not None:
            check = self.check_take if kind == "words" else check_voice_take
            for i, x in enumerate(entry["audio"]):
                check(x, f"take {i + 1}")
            emb = self.embed(entry["audio"]) if kind == "words" else np.stack([self.embed_voice(x) for x in entry["audio"]])
            return emb, [self.bundle.bundle_id] * len(emb)
        if not self._is_current(entry["bundle_ids"]):
            raise StoreError("embedded by another model and its audio was not kept", "enroll it again on this device")
        emb = entry["embeddings"]
        norms = np.linalg.norm(emb, axis=1)
        if emb.shape[1] != dim or not np.all(np.abs(norms - 1.0) < 1e-3):
            raise StoreError(f"its embeddings ({emb.shape[1]} values, lengths {norms.min():.3g}-{norms.max():.3g}) are "
                             f"not this model's (unit length, {dim} values) and there is no audio to embed again",
                             "export it again from the device that enrolled it")
        return emb, entry["bundle_ids"]

    def import_profile(self, profile: Profile | str | Path, replace: bool = False) -> dict[str, int]:
        """Add a profile (a file, or `plan_import`'s result) in one transaction and recalibrate every word.
        Entries that would overwrite a word, voice or command phrasings already here are refused unless
        ``replace`` (the CLI lists them and asks first)."""
        if not isinstance(profile, Profile):
            profile = self.plan_import(profile)
        replaced = profile.replaces(self.store)
        if replaced and not replace:
            raise StoreError(f"{profile.path}: importing would replace " + ", ".join(replaced),
                             "check them, then confirm (edge-meta device import-profile --yes)")
        with self.store.transaction():
            counts = write_profile(self.store, profile, self.default_threshold)
            self._recalibrate_words()
        return counts

    def calibrations(self) -> dict[tuple[str, str], Calibration]:
        """The calibration behind each current word's threshold, as the enrolled set gives it now."""
        words = self._current()
        cal = self._calibrate_words({_key(*w.key): w.embeddings for w in words},
                                    {_key(*w.key): w.false_accept for w in words}) if words else {}
        return {w.key: cal[_key(*w.key)] for w in words}

    def _recalibrate_words(self) -> None:
        cal = self.calibrations()
        if cal:
            self.store.set_thresholds({key: c.threshold for key, c in cal.items()})

    def _refresh(self) -> None:
        """Re-embed words and voices enrolled with another bundle from their kept audio (in one transaction)."""
        stale_words = [w for w in self.store.words() if not self._is_current(w.bundle_ids)]
        stale_voices = [v for v in self.store.voices() if not self._is_current(v.bundle_ids)]
        if not stale_words and not stale_voices:
            return
        with self.store.transaction():
            for w in stale_words:
                audio = self.store.takes_audio(w.label, w.user)
                if not audio:
                    warnings.warn(f"word {w.label!r} was enrolled with another model and its audio was not kept: "
                                  "enroll it again", stacklevel=3)
                    continue
                self.store.add_word(w.label, w.user, w.threshold, self.embed(audio), self.bundle.bundle_id, audio,
                                    SAMPLE_RATE, speaker=w.speaker, false_accept=w.false_accept)
            for v in stale_voices:
                audio = self.store.voice_audio(v.user)
                if not audio:
                    warnings.warn(f"the voice of {v.user!r} was enrolled with another model and its audio was not "
                                  "kept: enroll it again", stacklevel=3)
                    continue
                emb = np.stack([self.embed_voice(x) for x in audio])
                self.store.add_voice(v.user, self._calibrate_voice(v.user, emb).threshold, emb, self.bundle.bundle_id,
                                     audio, SAMPLE_RATE)
            self._recalibrate_words()

    # -- commands ------------------------------------------------------------------------------------
    @functools.cached_property
    def commands(self) -> "CommandModel | None":
        """The bundle's command language model (Meta Networks-adapted per household), or None; loaded on first use."""
        return CommandModel.from_bundle(self.bundle)

    def enroll_command(self, phrases: Sequence[str], user: str = "", command: str | None = None) -> CommandProfile:
        """Add example phrasings of commands ("turn the kitchen lights off") to a user's profile; the command
        decoder adapts its language model to them."""
        if self.commands is None:
            raise BundleError(f"{self.bundle.root}: this bundle has no command model",
                              "export one with `edge-meta export ... --commands runs/commands/best.pt`")
        user = check_name(user, "user name", allow_empty=True)
        phrases = [check_name(p, "command phrase") for p in phrases]  # NFC, as the enrolled words are; no controls
        stored = self.store.command_profiles().get(user)
        heard = {w for label, _ in self.vocabulary()[0].keys for w in words_of(label)}
        profile = self.commands.enroll_command(phrases, command, CommandProfile.from_json(stored) if stored else None,
                                               heard=heard)
        self.store.set_command_profile(user, profile.to_json())
        return profile

    def command_decoder(self) -> "CommandDecoder | None":
        """A decoder from word detections to commands over the enrolled words, adapted to every user's examples
        (one household profile); None when the bundle has no command model or nobody enrolled a command:
        command events are opt-in, so a household that only enrolled words gets only word events, and only
        commands of an enrolled intent are emitted (a "stop" enrolled as a word is no music_stop)."""
        profiles = self.store.command_profiles()
        if not profiles or self.commands is None:
            return None
        examples = [e for text in profiles.values() for e in CommandProfile.from_json(text).examples]
        labels = sorted({label for label, _ in self.vocabulary()[0].keys})
        # detection scores are calibrated thresholds, not probabilities: the channel reads only the error rates
        return self.commands.decoder(labels, CommandProfile(examples), channel=ChannelModel(score_weight=0.0),
                                     report={e.command.intent for e in examples})

    # -- detection -----------------------------------------------------------------------------------
    def vocabulary(self) -> tuple[Vocabulary, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """What the detector listens for, with the word and voice takes its heads are fitted on."""
        voices = [v for v in self.store.voices() if self._is_current(v.bundle_ids)]
        names = [v.user for v in voices]
        words = []
        for w in self._current():
            if w.speaker is not None and w.speaker not in names:
                self._warn_once(f"word {w.label!r} is bound to {w.speaker}'s voice, which is not enrolled: it cannot fire "
                                f"(edge-meta device enroll-voice {w.speaker})")
                continue
            words.append(w)
        if voices or any(w.speaker for w in words):
            self._warn_speaker_fallback()
        vocab = Vocabulary(keys=[w.key for w in words],
                           thresholds=np.array([w.threshold for w in words], np.float32),
                           bound=np.array([names.index(w.speaker) if w.speaker else -1 for w in words], np.int64),
                           voices=names, voice_thresholds=np.array([v.threshold for v in voices], np.float32))
        return vocab, {_key(*w.key): w.embeddings for w in words}, {v.user: v.embeddings for v in voices}

    def scorer(self) -> Scorer:
        vocab, word_takes, voice_takes = self.vocabulary()
        head = self.make_word_head().fit(word_takes)
        gate = None if self.open_set else PrototypeHead().fit(word_takes)
        return Scorer(vocab, head, gate, PrototypeHead().fit(voice_takes), self.speaker_output)

    def verifier(self, vocabulary: Vocabulary, config: DetectorConfig) -> TemplateVerifier | None:
        """The template check of the enrolled words from their kept takes (None when the config's template_ratio
        is inf: off). A word enrolled with --no-keep-audio has no templates: the encoder alone decides for it."""
        if math.isinf(config.template_ratio):
            return None
        takes = [self.store.takes_audio(label, user) for label, user in vocabulary.keys]
        for (label, _), audio in zip(vocabulary.keys, takes):
            if not audio:
                self._warn_once(f"word {label!r} was enrolled without keeping its audio: it is not template-checked, "
                                "so it may fire more often on other speech (enroll it again to check it)")
        return TemplateVerifier(self.logmel, [a or None for a in takes], config.template_ratio, config.template_slope)

    def detector(self, config: DetectorConfig | None = None) -> StreamingDetector:
        config = config or DetectorConfig()
        if config.hold_below is None:  # device.toml leaves it to the bundle: the margin measured for its encoder
            config = replace(config, hold_below=self.bundle.hold_below)
        scorer = self.scorer()
        return StreamingDetector(self.logmel, self.backend, scorer, config,
                                 self.verifier(scorer.vocabulary, config))

    def reload(self, detector: StreamingDetector) -> None:
        """Point a running detector at the words and voices in the store now (another process enrolled, removed or
        forgot some): a forgotten user's words stop firing at once, not at the next restart."""
        scorer = self.scorer()
        detector.use(scorer, self.verifier(scorer.vocabulary, detector.cfg))

    def listen(self, source: AudioSource, config: DetectorConfig | None = None) -> Iterator[Detection]:
        det = self.detector(config)
        for chunk in source.chunks():
            yield from det.process(chunk)
        yield from det.flush()

    def detect_file(self, path: str | Path, config: DetectorConfig | None = None) -> list[Detection]:
        return list(self.listen(WavSource(path), config))


__all__ = ["Detection", "EnrolledVoice", "EnrolledWord", "Runtime", "SpeakerFallbackWarning"]
