"""One damaged row in the store (an outside edit, a bad disk) used to crash every command, `remove`, `forget-user`
and `export-profile` included, with a traceback. A damaged word or voice is now left out with a warning that
names it and how to remove it, and everything else keeps working; damage to the store as a whole is refused
with the fix, and changes nothing."""

import json
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

SEVEN_TAKE = "(SELECT min(t.id) FROM takes t JOIN words w ON w.id = t.word_id WHERE w.label = 'seven')"
ROW_DAMAGE = {
    "short blob": f"UPDATE takes SET embedding = X'0102' WHERE id = {SEVEN_TAKE}",
    "text threshold": "UPDATE words SET threshold = 'high' WHERE label = 'seven'",
    "odd audio": f"UPDATE takes SET audio = X'010203' WHERE id = {SEVEN_TAKE}",
    "nan embedding": f"UPDATE takes SET embedding = X'{'0000c07f' * 128}' WHERE id = {SEVEN_TAKE}",
    "no takes": f"DELETE FROM takes WHERE word_id = (SELECT id FROM words WHERE label = 'seven')",
}


def device(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_meta.cli", "device", *map(str, args)], capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, fsdd_dir):
    """bob's "seven" and "two", and bob's voice, from real recordings (five takes a word, as prompting takes)."""
    folder = tmp_path_factory.mktemp("damage")
    rec = fsdd_dir / "recordings"
    store = folder / "base.db"
    for digit in (7, 2):
        r = device("enroll-word", {7: "seven", 2: "two"}[digit], "--user", "bob", "--store", store, "--from",
                   *[rec / f"{digit}_theo_{i}.wav" for i in range(5)])  # the default five takes
        assert r.returncode == 0, r.stderr
    voice = folder / "voice.wav"
    sf.write(voice, np.concatenate([sf.read(rec / f"{d}_theo_30.wav")[0] for d in (1, 3, 4, 5, 6, 8)]), 8000)
    assert device("enroll-voice", "bob", "--from", voice, "--store", store).returncode == 0
    return store, rec


def damaged(tmp_path, base, sql: str):
    store = tmp_path / "p.db"
    shutil.copy(base, store)
    db = sqlite3.connect(store)
    db.execute(sql)
    db.commit()
    db.close()
    return store


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout


@pytest.mark.parametrize("how", list(ROW_DAMAGE))
def test_a_damaged_word_is_left_out_and_every_command_still_works(tmp_path, enrolled, how):
    base, rec = enrolled
    store = damaged(tmp_path, base, ROW_DAMAGE[how])
    r = device("list", "--store", store)
    assert "word 'seven' of bob is damaged" in ok(r) + r.stderr and "edge-meta device remove seven --user bob" in r.stderr
    assert "word  two (user bob)" in r.stdout and "voice bob" in r.stdout
    assert "two (bob)" in ok(device("detect", rec / "2_theo_10.wav", "--store", store))
    assert '"word": "two"' in ok(device("run", "--input", rec / "2_theo_10.wav", "--store", store))
    ok(device("export-profile", tmp_path / "backup.json", "--store", store))
    assert [w["label"] for w in json.loads((tmp_path / "backup.json").read_text())["words"]] == ["two"]
    shutil.copy(store, tmp_path / "q.db")
    ok(device("remove", "seven", "--user", "bob", "--store", store))
    r = device("list", "--store", store)
    assert "damaged" not in ok(r) + r.stderr and "word  two (user bob)" in r.stdout
    assert "2 words and 1 voices deleted" in ok(device("forget-user", "bob", "--yes", "--store", tmp_path / "q.db"))


def test_a_damaged_voice_and_damaged_command_phrasings_are_left_out(tmp_path, enrolled):
    base, rec = enrolled
    store = damaged(tmp_path, base, "UPDATE voices SET threshold = X'00' WHERE user = 'bob'")
    db = sqlite3.connect(store)
    db.execute("INSERT INTO command_profiles(user, profile, updated) VALUES ('bob', '{\"examples\": [', 0)")
    db.commit()
    db.close()
    r = device("list", "--store", store)
    assert "the voice of 'bob' is damaged" in r.stderr and "edge-meta device remove --voice bob" in r.stderr
    assert "voice bob" not in ok(r) and "word  seven (user bob)" in r.stdout
    r = device("export-profile", tmp_path / "backup.json", "--store", store)
    assert "command phrasings of 'bob' are damaged" in r.stderr
    assert "0 command phrasings" in ok(r)
    ok(device("remove", "--voice", "bob", "--store", store))


def test_a_dropped_column_with_a_default_is_added_back(tmp_path, enrolled):
    base, _ = enrolled
    store = damaged(tmp_path, base, "ALTER TABLE words DROP COLUMN false_accept")
    r = device("list", "--store", store)
    assert "lost its column false_accept" in r.stderr
    assert ok(r).count("at 1.0% false accepts") == 2


@pytest.mark.parametrize("sql, needle", [
    ("UPDATE meta SET value = 'three' WHERE key = 'schema_version'", "its schema version is 'three'"),
    ("ALTER TABLE words DROP COLUMN threshold", "table words has no column threshold"),
])
def test_damage_to_the_whole_store_is_refused_with_the_fix_and_changes_nothing(tmp_path, enrolled, sql, needle):
    base, rec = enrolled
    store = damaged(tmp_path, base, sql)
    before = store.read_bytes()
    for args in (["list"], ["detect", rec / "2_theo_10.wav"], ["remove", "two", "--user", "bob"],
                 ["export-profile", tmp_path / "x.json"]):
        r = device(*args, "--store", store)
        assert r.returncode == 2 and "Traceback" not in r.stderr and needle in r.stderr, r.stderr
        assert "fix: " in r.stderr
    assert store.read_bytes() == before
