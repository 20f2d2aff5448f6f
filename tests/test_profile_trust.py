"""A profile file is never trusted, and every backup restores.

Issue 18: a file could take over a voice-bound word (a voice threshold of -1.0 kept, all-zero embeddings kept,
a file for one user replacing another's voice, replacements made silently), and enrollment accepted values
that import refused, so a backup could not be restored. Real FSDD audio throughout.
"""

import base64
import json
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from edge_meta.audio import read_audio
from edge_meta.device import Runtime
from edge_meta.device.limits import FALSE_ACCEPT, MAX_NAME, MAX_TAKES
from edge_meta.device.profile_file import export_profile
from edge_meta.errors import StoreError

pytestmark = pytest.mark.filterwarnings("ignore::edge_meta.device.runtime.SpeakerFallbackWarning",
                                        "ignore::edge_meta.audio.AudioConversionWarning")


def takes(fsdd_dir, digit, speaker, idx):
    return [fsdd_dir / "recordings" / f"{digit}_{speaker}_{t}.wav" for t in idx]


def sentences(fsdd_dir, speaker, n=3):
    return [np.concatenate([read_audio(fsdd_dir / "recordings" / f"{d}_{speaker}_{30 + i}.wav", announce=False)
                            for d in (1, 2, 3, 4)]) for i in range(n)]


@pytest.fixture(scope="module")
def household(tmp_path_factory, fsdd_dir):
    """lucas's "seven" bound to his voice, his voice, theo's "four" and theo's voice, exported whole."""
    folder = tmp_path_factory.mktemp("household")
    with Runtime.open(store=folder / "a.db") as rt:
        rt.enroll_word("seven", takes(fsdd_dir, 7, "lucas", range(3)), user="lucas", bind_speaker=True)
        rt.enroll_voice("lucas", sentences(fsdd_dir, "lucas"))
        rt.enroll_word("four", takes(fsdd_dir, 4, "theo", range(3)), user="theo")
        rt.enroll_voice("theo", sentences(fsdd_dir, "theo"))
        export_profile(rt.store, folder / "all.json")
    return json.loads((folder / "all.json").read_text())


def write(tmp_path, doc: dict, name: str) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def state(rt: Runtime) -> dict:
    """What detection uses: every word's and voice's threshold and embeddings."""
    return {**{("word",) + w.key: (w.threshold, w.embeddings.tobytes()) for w in rt.store.words()},
            **{("voice", v.user): (v.threshold, v.embeddings.tobytes()) for v in rt.store.voices()}}


def test_thresholds_in_a_file_are_ignored_and_recalibrated_here(tmp_path, household, fsdd_dir):
    """A voice threshold of -1.0 let any speaker fire lucas's bound word as lucas."""
    tampered = json.loads(json.dumps(household))
    tampered["voices"][0]["threshold"] = -1.0
    for w in tampered["words"]:
        w["threshold"] = -1.0
    others = [p for s in ("jackson", "nicolas", "theo", "yweweler") for p in takes(fsdd_dir, 7, s, (20, 21))]
    fired = {}
    for name, doc in (("clean", household), ("tampered", tampered)):
        with Runtime.open(store=tmp_path / f"{name}.db") as rt:
            rt.import_profile(write(tmp_path, doc, f"{name}.json"))
            fired[name] = (state(rt), sum(d.label == "seven" for p in others for d in rt.detect_file(p)))
    assert fired["tampered"] == fired["clean"]
    assert min(t for t, _ in fired["tampered"][0].values()) > -1.0


def test_embeddings_in_a_file_are_recomputed_or_refused(tmp_path, household):
    """All-zero embeddings with no audio made a word fire on other words; with audio they were stored as they came."""
    zero = json.loads(json.dumps(household))
    for entry in zero["words"] + zero["voices"]:
        for take in entry["takes"]:
            take["embedding"] = base64.b64encode(bytes(len(base64.b64decode(take["embedding"])))).decode()
    with Runtime.open(store=tmp_path / "clean.db") as rt:
        rt.import_profile(write(tmp_path, household, "clean.json"))
        clean = state(rt)
    with Runtime.open(store=tmp_path / "zero.db") as rt:
        rt.import_profile(write(tmp_path, zero, "zero.json"))
        assert state(rt) == clean  # recomputed from the audio: the file's vectors play no part
    for entry in zero["words"] + zero["voices"]:
        for take in entry["takes"]:
            take["audio"] = None
    with Runtime.open(store=tmp_path / "noaudio.db") as rt:
        profile = rt.plan_import(write(tmp_path, zero, "noaudio.json"))
        assert len(profile.rejected) == 4 and all("not this model's" in r for r in profile.rejected), profile.rejected
        rt.import_profile(profile)
        assert rt.store.words() == [] and rt.store.voices() == []


def test_a_file_touches_only_the_users_it_declares(tmp_path, household, fsdd_dir):
    """A file for theo carrying a voice entry for lucas silently replaced lucas's voice."""
    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.import_profile(write(tmp_path, household, "all.json"))
        before = state(rt)
        theo = json.loads(json.dumps(household))
        theo["users"] = ["theo"]
        theo["words"] = [w for w in theo["words"] if w["user"] == "theo"]
        lucas_voice = next(v for v in theo["voices"] if v["user"] == "lucas")
        lucas_voice["takes"] = next(v for v in theo["voices"] if v["user"] == "theo")["takes"]  # theo's voice as lucas
        theo["voices"] = [lucas_voice]
        theo["words"].append({**household["words"][1], "label": "eight"})  # a word bound to lucas's voice
        profile = rt.plan_import(write(tmp_path, theo, "theo.json"))
        assert sorted(r.split(":")[0] for r in profile.rejected) == ["voices[0].user", "words[1] ('eight').user"]
        assert all("not one of the users the file declares" in r for r in profile.rejected)
        rt.import_profile(profile, replace=True)
        assert state(rt) == before  # theo's word imported again from the same audio: nothing of lucas's changed


def test_what_an_import_replaces_is_listed_and_confirmed(tmp_path, household):
    path = write(tmp_path, household, "all.json")
    store = tmp_path / "p.db"
    with Runtime.open(store=store) as rt:
        rt.import_profile(path)
        assert rt.plan_import(path).replaces(rt.store) == ["word 'four' of theo", "word 'seven' of lucas",
                                                          "lucas's voice", "theo's voice"]
        with pytest.raises(StoreError, match="importing would replace word 'four' of theo"):
            rt.import_profile(path)
    cli = [sys.executable, "-m", "edge_meta.cli", "device", "import-profile", path, "--store", str(store)]
    r = subprocess.run(cli, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 2 and "add --yes" in r.stderr and "Traceback" not in r.stderr
    assert "  word 'seven' of lucas" in r.stdout and "  lucas's voice" in r.stdout
    r = subprocess.run(cli + ["--yes"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0 and "imported 2 words, 2 voices" in r.stdout, r.stderr


BAD_NAMES = ["lights\u00a0on", "lights\u2009on", "lights\u2028on", "lights\ton", "lights\x1bon", "a" * (MAX_NAME + 1), ""]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=["nbsp", "thin-space", "line-separator", "tab", "escape", "long", "empty"])
def test_enrollment_and_import_refuse_the_same_names(tmp_path, household, fsdd_dir, bad):
    """Enrollment accepted U+00A0, U+2009 and U+2028 in names that import then refused."""
    with Runtime.open(store=tmp_path / "p.db") as rt:
        with pytest.raises(StoreError):
            rt.enroll_word(bad, takes(fsdd_dir, 4, "theo", range(3)), user="theo")
        doc = json.loads(json.dumps(household))
        doc["words"][0]["label"] = bad
        profile = rt.plan_import(write(tmp_path, doc, "bad.json"))
        assert [r.split(":")[0] for r in profile.rejected] == ["words[0].label"]
        rt.import_profile(profile)
        assert [w.label for w in rt.store.words()] == ["seven"]


def test_every_accepted_edge_value_survives_export_and_import(tmp_path, fsdd_dir):
    """The smallest and largest names, take counts and false-accept targets enrollment accepts all come back;
    one step beyond each is refused. Two spellings of one name (NFD, NFC) are one word."""
    low, high = FALSE_ACCEPT
    nfd = unicodedata.normalize("NFD", "café")
    with Runtime.open(store=tmp_path / "a.db") as rt:
        rt.enroll_word("s" * MAX_NAME, takes(fsdd_dir, 6, "theo", range(MAX_TAKES)), user="u" * MAX_NAME,
                       false_accept=low)
        rt.enroll_word("é", takes(fsdd_dir, 5, "theo", range(1)), false_accept=np.nextafter(high, 0))
        rt.enroll_word(nfd, takes(fsdd_dir, 3, "theo", range(3)), user="zoë")
        rt.enroll_word("café", takes(fsdd_dir, 3, "theo", range(3, 6)), user=unicodedata.normalize("NFD", "zoë"))
        rt.enroll_voice("u" * MAX_NAME, sentences(fsdd_dir, "theo", n=1))
        for label, clips, fa in (("s" * (MAX_NAME + 1), 3, 0.01), ("x", MAX_TAKES + 1, 0.01), ("x", 3, low / 10),
                                 ("x", 3, high)):
            with pytest.raises(StoreError):
                rt.enroll_word(label, takes(fsdd_dir, 6, "theo", range(clips)), false_accept=fa)
        enrolled = {w.key: (w.false_accept, len(w.embeddings)) for w in rt.store.words()}
        export_profile(rt.store, tmp_path / "backup.json")
    assert enrolled == {("s" * MAX_NAME, "u" * MAX_NAME): (low, MAX_TAKES), ("é", ""): (np.nextafter(high, 0), 1),
                        ("café", "zoë"): (0.01, 3)}
    with Runtime.open(store=tmp_path / "b.db") as rt:
        profile = rt.plan_import(tmp_path / "backup.json")
        assert profile.rejected == []
        rt.import_profile(profile)
        assert {w.key: (w.false_accept, len(w.embeddings)) for w in rt.store.words()} == enrolled
        assert [v.user for v in rt.store.voices()] == ["u" * MAX_NAME]


def test_a_name_typed_in_another_normal_form_finds_the_same_user(tmp_path, fsdd_dir):
    """Names are NFC at every door: remove, forget-user and export --user find what enrollment stored."""
    nfd, nfc = unicodedata.normalize("NFD", "zoë"), unicodedata.normalize("NFC", "zoë")
    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.enroll_word("four", takes(fsdd_dir, 4, "theo", range(3)), user=nfc)
        rt.enroll_word("six", takes(fsdd_dir, 6, "theo", range(3)), user=nfc)
        assert export_profile(rt.store, tmp_path / "zoe.json", user=nfd)["words"] == 2
        rt.remove_word("four", nfd)
        assert rt.forget_user(nfd)["words"] == 1
        assert rt.store.words() == []
