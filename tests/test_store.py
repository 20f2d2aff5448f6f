"""The profile store: privacy, atomic enrollment (even under SIGKILL), forgetting for real, migration,
and the portable profile file."""

import base64
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::edge_meta.device.runtime.SpeakerFallbackWarning")

from edge_meta.audio import read_audio
from edge_meta.device import Runtime
from edge_meta.device.profile_file import export_profile, read_profile
from edge_meta.device.store import ProfileStore, to_pcm16
from edge_meta.errors import StoreError


def takes(fsdd_dir, digit, speaker, idx):
    return [fsdd_dir / "recordings" / f"{digit}_{speaker}_{t}.wav" for t in idx]


def sentences(fsdd_dir, speaker, n=3):
    """Voice takes: a few digits of one speaker run together, like a short sentence."""
    return [np.concatenate([read_audio(fsdd_dir / "recordings" / f"{d}_{speaker}_{30 + i}.wav", announce=False)
                            for d in (1, 2, 3, 4)]) for i in range(n)]


def store_bytes(path) -> bytes:
    """Everything SQLite keeps for this store on disk (main file, WAL, shared memory)."""
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
                    if p.exists())


def test_files_are_private_and_settings_durable(tmp_path, fsdd_dir):
    path = tmp_path / "p.db"
    with Runtime.open(store=path) as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3, "nicolas", range(3)), user="nico")
        assert rt.store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert rt.store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        for p in tmp_path.iterdir():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_a_failed_enrollment_changes_nothing(tmp_path, fsdd_dir):
    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3, "nicolas", range(3)), user="nico")
        before = [(w.label, w.threshold, len(w.embeddings)) for w in rt.store.words()]
        with pytest.raises(RuntimeError), rt.store.transaction():
            rt.store.add_word("four", "nico", 0.9, np.ones((2, 8), np.float32), "b", None, 16000)
            raise RuntimeError("power cut")
        assert [(w.label, w.threshold, len(w.embeddings)) for w in rt.store.words()] == before


KILLED_MID_ENROLLMENT = """
    import os, sys, time
    from edge_meta.device import Runtime
    from edge_meta.device.store import ProfileStore

    original = ProfileStore._insert_take
    count = 0
    def slow_insert(self, *args):
        global count
        original(self, *args)
        count += 1
        if count == 2:  # inside the enrollment's transaction, two takes written
            open(sys.argv[2], "w").close()
            time.sleep(600)
    ProfileStore._insert_take = slow_insert
    with Runtime.open(store=sys.argv[1]) as rt:
        rt.enroll_word("eight", sys.argv[3:])
"""


def test_store_is_intact_after_sigkill_mid_enrollment(tmp_path, fsdd_dir):
    store, marker = tmp_path / "p.db", tmp_path / "inside"
    with Runtime.open(store=store) as rt:
        rt.enroll_word("two", takes(fsdd_dir, 2, "george", range(3)), user="george")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_MID_ENROLLMENT), str(store), str(marker),
                             *map(str, takes(fsdd_dir, 8, "george", range(4)))], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the child never reached the middle of the enrollment"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Runtime.open(store=store) as rt:
        words = {w.label: len(w.embeddings) for w in rt.store.words()}
    assert words == {"two": 3}  # "eight" is all there or not at all: here not at all


def test_forget_user_removes_their_bytes_from_the_file(tmp_path, fsdd_dir):
    path = tmp_path / "p.db"
    alice = [read_audio(p, announce=False) for p in takes(fsdd_dir, 5, "theo", range(3))]
    bob = [read_audio(p, announce=False) for p in takes(fsdd_dir, 6, "jackson", range(3))]
    with Runtime.open(store=path) as rt:
        rt.enroll_word("five", alice, user="alice-zq7")
        rt.enroll_word("unlock", alice, user="alice-zq7", bind_speaker=True)
        rt.enroll_voice("alice-zq7", sentences(fsdd_dir, "theo"))
        rt.enroll_word("six", bob, user="bob")
        rt.enroll_command(["turn the porch lights off"], user="alice-zq7")
    probes = [to_pcm16(x)[4000:4064] for x in alice + sentences(fsdd_dir, "theo")]  # 32 samples of each take
    bob_probe = to_pcm16(bob[0])[4000:4064]
    data = store_bytes(path)
    assert all(p in data for p in probes) and b"alice-zq7" in data and bob_probe in data and b"porch" in data
    with Runtime.open(store=path) as rt:
        counts = rt.forget_user("alice-zq7")
        assert counts == {"users": 1, "words": 2, "voices": 1, "command profiles": 1}
        assert [w.label for w in rt.store.words()] == ["six"] and rt.store.voices() == []
        data = store_bytes(path)  # while the store is still open, WAL included
        assert not any(p in data for p in probes) and b"alice-zq7" not in data and b"porch" not in data
        assert bob_probe in data
        with pytest.raises(StoreError, match="no user 'alice-zq7'"):
            rt.forget_user("alice-zq7")
    data = store_bytes(path)
    assert not any(p in data for p in probes) and b"alice-zq7" not in data


def test_a_schema_1_store_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE words (id INTEGER PRIMARY KEY, label TEXT NOT NULL, user TEXT NOT NULL DEFAULT '',
                            threshold REAL NOT NULL, created REAL NOT NULL, UNIQUE (label, user));
        CREATE TABLE takes (id INTEGER PRIMARY KEY, word_id INTEGER NOT NULL REFERENCES words(id) ON DELETE CASCADE,
                            bundle_id TEXT NOT NULL, embedding BLOB NOT NULL, audio BLOB, sample_rate INTEGER NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO words VALUES (1, 'lights', 'alice', 0.9, 0.0);
    """)
    db.execute("INSERT INTO takes VALUES (1, 1, 'old', ?, NULL, 16000)", (np.ones(4, np.float32).tobytes(),))
    db.commit()
    db.close()
    store = ProfileStore(path)
    [w] = store.words()
    assert (w.label, w.user, w.speaker, w.false_accept, w.bundle_ids) == ("lights", "alice", None, 0.01, ["old"])
    assert store.users() == ["alice"] and store.voices() == []
    store.close()


def test_a_newer_or_foreign_file_is_refused(tmp_path):
    path = tmp_path / "new.db"
    ProfileStore(path).db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer than this edge-meta"):
        ProfileStore(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    os.chmod(junk, 0o644)
    with pytest.raises(StoreError, match="is not a profile store") as refused:
        ProfileStore(junk)
    assert "remove" not in refused.value.hint and stat.S_IMODE(junk.stat().st_mode) == 0o644  # was chmod'ed 0600
    foreign = tmp_path / "app.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"another program's SQLite database \(tables invoices\)"):
        ProfileStore(foreign)
    tables = sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("invoices",)]  # edge-meta's tables were added to it


def test_profile_round_trip_moves_a_user_to_another_store(tmp_path, fsdd_dir):
    with Runtime.open(store=tmp_path / "a.db") as rt:
        rt.enroll_word("seven", takes(fsdd_dir, 7, "lucas", range(3)), user="lucas")
        rt.enroll_word("one", takes(fsdd_dir, 1, "lucas", range(3)), user="lucas", keep_audio=False)
        rt.enroll_voice("lucas", sentences(fsdd_dir, "lucas"))
        rt.enroll_word("four", takes(fsdd_dir, 4, "theo", range(3)), user="theo")
        rt.enroll_command(["turn the porch lights off"], user="lucas")
        rt.enroll_command(["lights on"], user="theo")
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me")
        (tmp_path / "lucas.json.part").symlink_to(victim)  # planted where the export writes first: not followed
        counts = export_profile(rt.store, tmp_path / "lucas.json", user="lucas")
        assert victim.read_text() == "keep me" and not (tmp_path / "lucas.json.part").exists()
        words = {w.label: w for w in rt.store.words()}
    assert counts == {"users": 1, "words": 2, "voices": 1, "command profiles": 1}
    assert stat.S_IMODE((tmp_path / "lucas.json").stat().st_mode) == 0o600
    doc = json.loads((tmp_path / "lucas.json").read_text())
    assert doc["format"] == "edge-meta-profile" and doc["version"] == 1
    with Runtime.open(store=tmp_path / "b.db") as rt:
        assert rt.import_profile(tmp_path / "lucas.json") == counts
        assert list(rt.store.command_profiles()) == ["lucas"] and "porch" in rt.store.command_profiles()["lucas"]
        got = {w.label: w for w in rt.store.words()}
        assert set(got) == {"seven", "one"}
        np.testing.assert_allclose(got["seven"].embeddings, words["seven"].embeddings)
        assert len(rt.store.takes_audio("seven", "lucas")) == 3 and rt.store.takes_audio("one", "lucas") == []
        assert [v.user for v in rt.store.voices()] == ["lucas"]
        assert rt.detect_file(fsdd_dir / "recordings" / "7_lucas_20.wav")[0].label == "seven"


def _corrupt(doc: dict, how: str) -> dict:
    doc = json.loads(json.dumps(doc))
    take = doc["words"][0]["takes"][0]
    if how == "version":
        doc["version"] = 7
    elif how == "lists":
        doc["words"] = {"seven": doc["words"]}
    elif how == "base64":
        take["embedding"] = "%%% not base64"
    elif how == "nan":
        take["embedding"] = base64.b64encode(np.full(128, np.nan, np.float32).tobytes()).decode()
    elif how == "rate":
        take["sample_rate"] = 44100
    elif how == "label":
        doc["words"][0]["label"] = "\x1b[2J"
    elif how == "extra":
        take["pickle"] = "gASV"
    elif how == "command":
        doc["commands"] = [{"user": "lucas", "examples": [{"words": ["lights", "on"], "command": "lights_on"}]}]
    return doc


@pytest.fixture(scope="module")
def lucas_file(tmp_path_factory, fsdd_dir):
    """An export of lucas's "seven" and "two" (words[0] is "seven")."""
    folder = tmp_path_factory.mktemp("lucas")
    with Runtime.open(store=folder / "a.db") as rt:
        rt.enroll_word("seven", takes(fsdd_dir, 7, "lucas", range(3)), user="lucas")
        rt.enroll_word("two", takes(fsdd_dir, 2, "lucas", range(3)), user="lucas")
        export_profile(rt.store, folder / "p.json")
    return json.loads((folder / "p.json").read_text())


@pytest.mark.parametrize("how, needle", [("version", "newer than this edge-meta"), ("lists", "expected lists")])
def test_a_file_that_is_not_a_profile_is_refused_and_nothing_imported(tmp_path, lucas_file, how, needle):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_corrupt(lucas_file, how)))
    with Runtime.open(store=tmp_path / "b.db") as rt:
        with pytest.raises(StoreError, match=needle):
            rt.import_profile(bad)
        assert rt.store.words() == [] and rt.store.users() == [] and rt.store.command_profiles() == {}


@pytest.mark.parametrize("how, needle", [("base64", "not valid base64"), ("nan", "NaN"), ("rate", "sample_rate"),
                                         ("label", "U+001B"), ("extra", "expected exactly"),
                                         ("command", r"commands[0].examples")])
def test_one_bad_entry_is_left_out_with_its_reason_and_the_rest_imported(tmp_path, lucas_file, how, needle):
    """Import was all-or-nothing: one bad word blocked restoring everyone."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_corrupt(lucas_file, how)))
    with Runtime.open(store=tmp_path / "b.db") as rt:
        profile = rt.plan_import(bad)
        assert len(profile.rejected) == 1 and needle in profile.rejected[0], profile.rejected
        rt.import_profile(profile)
        words = [w.label for w in rt.store.words()]
    assert words == (["seven", "two"] if how == "command" else ["two"])


def test_not_a_profile_file(tmp_path):
    f = tmp_path / "x.json"
    f.write_text("[1, 2, 3]")
    with pytest.raises(StoreError, match="invalid profile file"):
        read_profile(f)
    f.write_bytes(os.urandom(64))
    with pytest.raises(StoreError, match="not a profile file"):
        read_profile(f)


def test_forget_user_says_so_when_another_reader_keeps_the_bytes_in_the_file(tmp_path, fsdd_dir):
    """A reader's open transaction pins the old pages: forget-user must not claim the store was compacted then; run
    again once the reader is done, it erases what was left."""
    path = tmp_path / "p.db"
    alice = [read_audio(p, announce=False) for p in takes(fsdd_dir, 5, "theo", range(3))]
    with Runtime.open(store=path) as rt:
        rt.enroll_word("five", alice, user="alice")
    probes = [to_pcm16(x)[4000:4064] for x in alice]
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM takes").fetchone()
    forget = [sys.executable, "-m", "edge_meta.cli", "device", "forget-user", "alice", "--yes", "--store", str(path)]
    done = subprocess.run(forget, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "still in the file" in done.stderr and "compacted" not in done.stdout
    assert any(p in store_bytes(path) for p in probes)  # what it said is true
    reader.execute("COMMIT")
    subprocess.run(forget, capture_output=True, text=True, timeout=120)
    assert not any(p in store_bytes(path) for p in probes)
    reader.close()


def test_a_profile_may_carry_takes_only_as_long_as_enrollment_allows(tmp_path, fsdd_dir, monkeypatch):
    """Takes up to 60 s were imported (the template check then asked 1.2 GB at every start), and files up to 512 MB
    were parsed (MemoryError): a word's take is at most 10 s and a voice's 30 s, as at enrollment, a file at most
    64 MB, and export refuses to write a backup that import would refuse."""
    import edge_meta.device.profile_file as profile_file
    from edge_meta.device.limits import MAX_WORD_TAKE_S

    with Runtime.open(store=tmp_path / "a.db") as rt:
        rt.enroll_word("seven", takes(fsdd_dir, 7, "lucas", range(3)), user="lucas")
        export_profile(rt.store, tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    speech = np.concatenate([read_audio(p, announce=False) for p in takes(fsdd_dir, 7, "lucas", range(40))])
    long_take = speech[: int((MAX_WORD_TAKE_S + 1) * 16000)]
    doc["words"][0]["takes"][0]["audio"] = base64.b64encode(to_pcm16(long_take)).decode()
    (tmp_path / "long.json").write_text(json.dumps(doc))
    profile = read_profile(tmp_path / "long.json")
    assert profile.words == [] and any("at most 10 s" in r for r in profile.rejected)

    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(65 << 20)  # sparse: nothing is written or read
    with pytest.raises(StoreError, match="larger than 64 MB"):
        read_profile(big)
    monkeypatch.setattr(profile_file, "MAX_BYTES", 1000)
    with Runtime.open(store=tmp_path / "a.db") as rt, pytest.raises(StoreError, match="export one user at a time"):
        export_profile(rt.store, tmp_path / "q.json")
    assert not (tmp_path / "q.json").exists()



def test_command_phrases_are_stored_in_one_spelling_and_without_control_characters(tmp_path):
    """A phrase typed in NFD (e + combining acute) was stored as another word than its NFC spelling, and a bell
    or escape character was stored as typed: phrases go through the names' normalisation (limits.check_name)."""
    from edge_meta.device.commands import CommandProfile

    with Runtime.open(store=tmp_path / "p.db") as rt:
        rt.enroll_command(["caf\u00e9 lights on"], command="lights_on")
        profile = rt.enroll_command(["cafe\u0301 lights on"], command="lights_on")
        assert profile.examples[0].words == profile.examples[1].words == ("caf\u00e9", "lights", "on")
        for bad in ("lights on\x07", "lights\x1b[2J on"):
            with pytest.raises(StoreError, match=r"command phrase .* holds the character U\+00"):
                rt.enroll_command([bad], command="lights_on")
        assert len(CommandProfile.from_json(rt.store.command_profiles()[""]).examples) == 2


def test_import_counts_what_the_store_holds_from_the_file(tmp_path, fsdd_dir):
    """A word entry repeated in a file was counted twice ("4 words" for 3 stored), a user named over and over once
    per mention."""
    with Runtime.open(store=tmp_path / "a.db") as rt:
        for digit in (1, 2, 3):
            rt.enroll_word(str(digit), takes(fsdd_dir, digit, "lucas", range(3)), user="lucas")
        export_profile(rt.store, tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["words"].append(doc["words"][0])
    doc["users"] = doc["users"] * 50
    (tmp_path / "p.json").write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", "import-profile", str(tmp_path / "p.json"),
                           "--yes", "--store", str(tmp_path / "b.db")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "imported 3 words, 0 voices, 0 command phrasings of 1 users" in done.stdout
    with Runtime.open(store=tmp_path / "b.db") as rt:
        assert len(rt.store.words()) == 3 and rt.store.users() == ["lucas"]
