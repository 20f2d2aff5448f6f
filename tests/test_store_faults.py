"""The profile store when the disk fails it: full, read-only, or a store file copied with loose permissions.
Each failure must be a StoreError that says what to fix (never advice to delete the store for an access
problem), change nothing, and leave every earlier enrollment readable."""

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_meta.device import Runtime
from edge_meta.device.store import ProfileStore
from edge_meta.errors import StoreError

pytestmark = pytest.mark.filterwarnings("ignore::edge_meta.device.runtime.SpeakerFallbackWarning")


def takes(fsdd_dir, digit, n=3):
    return [fsdd_dir / "recordings" / f"{digit}_nicolas_{t}.wav" for t in range(n)]


def snapshot(store: ProfileStore) -> list:
    return [(w.label, w.user, w.threshold, w.embeddings.tobytes(), len(store.takes_audio(w.label, w.user)))
            for w in store.words()]


def intact(path: Path) -> list:
    """The store as a fresh process would see it, after checking the file's integrity."""
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    store = ProfileStore(path)
    try:
        return snapshot(store)
    finally:
        store.close()


def test_disk_full_injected_refuses_the_enrollment_and_keeps_the_store(tmp_path, fsdd_dir):
    """Disk full, injected: SQLite's own SQLITE_FULL, from capping the file at its current size with
    PRAGMA max_page_count (runs anywhere; the tmpfs test below fills a real filesystem)."""
    path = tmp_path / "p.db"
    with Runtime.open(store=path) as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3), user="nico")
        before = snapshot(rt.store)
        pages = rt.store.db.execute("PRAGMA page_count").fetchone()[0]
        rt.store.db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match="disk is full") as err:
            rt.enroll_word("four", takes(fsdd_dir, 4), user="nico")
        assert "nothing was changed" in err.value.message and "free some disk space" in err.value.hint
        assert snapshot(rt.store) == before
    assert intact(path) == before


def test_read_only_store_injected_mid_run_refuses_writes_and_keeps_the_store(tmp_path, fsdd_dir):
    """A store that turns read-only while open, injected with PRAGMA query_only (a real filesystem cannot be
    remounted read-only under an open writer: the kernel says busy)."""
    path = tmp_path / "p.db"
    with Runtime.open(store=path) as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3), user="nico")
        before = snapshot(rt.store)
        rt.store.db.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreError, match="cannot write to the profile store .attempt to write a readonly") as err:
            rt.enroll_word("four", takes(fsdd_dir, 4), user="nico")
        assert "check that the store is writable" in err.value.hint
        with pytest.raises(StoreError, match="readonly database"):
            rt.forget_user("nico")
        assert snapshot(rt.store) == before
    assert intact(path) == before


@pytest.fixture()
def tiny_fs(tmp_path):
    """A 1 MB tmpfs (needs root and mount rights: skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
                                           capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(folder: Path) -> Path:
    """Write zeros until the filesystem is full; the file to delete to free it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(65536))
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC
    try:
        while True:
            os.write(fd, bytes(512))
    except OSError:
        pass
    os.close(fd)
    return filler


def test_a_really_full_filesystem_refuses_clearly_then_recovers(tiny_fs, fsdd_dir):
    path = tiny_fs / "p.db"
    with Runtime.open(store=path) as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3), user="nico")
        before = snapshot(rt.store)
        filler = fill(tiny_fs)
        with pytest.raises(StoreError, match="disk is full") as err:
            rt.enroll_word("four", takes(fsdd_dir, 4), user="nico")
        assert "nothing was changed" in err.value.message and "free some disk space" in err.value.hint
        assert snapshot(rt.store) == before
        filler.unlink()
        rt.enroll_word("four", takes(fsdd_dir, 4), user="nico")  # space again: the same process carries on
        after = snapshot(rt.store)
    assert [w[0] for w in after] == ["four", "three"] and intact(path) == after


def test_a_store_on_a_read_only_filesystem_is_refused_with_the_fix(tiny_fs, tmp_path, fsdd_dir):
    with Runtime.open(store=tiny_fs / "p.db") as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3), user="nico")
        before = snapshot(rt.store)
    view = tmp_path / "ro"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(tiny_fs), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        with pytest.raises(StoreError, match="Read-only file system") as err:
            Runtime.open(store=view / "p.db")
        assert "permissions" in err.value.hint
    finally:
        subprocess.run(["umount", "-l", str(view)], check=True)
    assert intact(tiny_fs / "p.db") == before


READ_ONLY_FILE_AND_FOLDER = """
    import os, sys, warnings
    from pathlib import Path
    from edge_meta.device import Runtime
    from edge_meta.errors import StoreError
    warnings.simplefilter("ignore")
    folder, clips = Path(sys.argv[1]), sys.argv[2:]
    store = folder / "p.db"
    with Runtime.open(store=store) as rt:
        rt.enroll_word("three", clips, user="nico")
    for mode_file, mode_dir in ((0o400, 0o700), (0o600, 0o500)):
        os.chmod(store, mode_file)
        os.chmod(folder, mode_dir)
        try:
            Runtime.open(store=store).close()
            print("opened")
        except StoreError as exc:
            print(f"{exc.message} | {exc.hint}")
    os.chmod(folder, 0o700)
    os.chmod(store, 0o600)
    with Runtime.open(store=store) as rt:
        print([w.label for w in rt.store.words()])
"""


def test_a_read_only_store_file_or_folder_names_the_fix_and_keeps_the_words(tmp_path, fsdd_dir):
    """Real file modes. Root ignores them, so as root the check runs in a child without CAP_DAC_OVERRIDE."""
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    r = subprocess.run([*prefix, sys.executable, "-c", textwrap.dedent(READ_ONLY_FILE_AND_FOLDER), str(folder),
                        *map(str, takes(fsdd_dir, 3))], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    read_only_file, read_only_folder, words = r.stdout.splitlines()
    assert "cannot open the profile store (Permission denied)" in read_only_file
    assert "cannot open the profile store for writing" in read_only_folder and "-wal" in read_only_folder
    assert "remove it" not in read_only_file + read_only_folder  # an access problem never asks to delete the store
    assert words == "['three']"


def test_a_store_copied_with_loose_permissions_is_made_private(tmp_path, fsdd_dir):
    path = tmp_path / "p.db"
    with Runtime.open(store=path) as rt:
        rt.enroll_word("three", takes(fsdd_dir, 3), user="nico")
    os.chmod(path, 0o644)  # e.g. restored with `cp` under umask 022
    old = os.umask(0)
    try:
        with Runtime.open(store=path) as rt:
            rt.enroll_word("four", takes(fsdd_dir, 4), user="nico")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(old)
    assert modes == {"p.db": 0o600, "p.db-wal": 0o600, "p.db-shm": 0o600}
