"""The profile store: one SQLite file holding users, their enrolled words and voices, takes and embeddings.

Written for devices that lose power: WAL journal with synchronous=FULL, every enrollment in one
transaction (all takes and the new thresholds, or nothing), the file created 0600 (voice data is
personal). Each take's embedding is stored with the id of the bundle that made it; the enrollment
audio is kept (unless the caller opts out) so a new bundle can re-embed it instead of asking for
re-enrollment. Deleted rows are overwritten (secure_delete), and `compact` (VACUUM, then a truncating
WAL checkpoint) after removing a word or forgetting a user leaves their recordings nowhere in the file,
not just unlinked, or says it could not.

Schema 2 (tables): ``users(name)``; ``words(label, user, speaker, threshold, false_accept)`` where ``user``
is '' for a word anyone may say, ``speaker`` names the user whose voice must match for the word to
fire (NULL: any voice) and ``false_accept`` is the target its threshold was calibrated for; ``takes`` (a word's takes); ``voices(user, threshold)`` and ``voice_takes``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shlex
import sqlite3
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edge_meta.errors import StoreBusy, StoreError

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS words (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    threshold REAL NOT NULL,
    created REAL NOT NULL,
    speaker TEXT,
    false_accept REAL NOT NULL DEFAULT 0.01,
    UNIQUE (label, user)
);
CREATE TABLE IF NOT EXISTS takes (
    id INTEGER PRIMARY KEY,
    word_id INTEGER NOT NULL REFERENCES words(id) ON DELETE CASCADE,
    bundle_id TEXT NOT NULL,
    embedding BLOB NOT NULL,
    audio BLOB,
    sample_rate INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS voices (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL UNIQUE REFERENCES users(name) ON DELETE CASCADE,
    threshold REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS command_profiles (
    user TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS voice_takes (
    id INTEGER PRIMARY KEY,
    voice_id INTEGER NOT NULL REFERENCES voices(id) ON DELETE CASCADE,
    bundle_id TEXT NOT NULL,
    embedding BLOB NOT NULL,
    audio BLOB,
    sample_rate INTEGER NOT NULL
);
"""
@functools.cache
def _columns() -> dict[str, list[tuple]]:
    """Each table's columns as SCHEMA declares them (PRAGMA table_info rows of a fresh in-memory copy)."""
    db = sqlite3.connect(":memory:")
    try:
        for statement in SCHEMA.split(";"):
            db.execute(statement)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f"PRAGMA table_info({t})").fetchall() for t in tables}
    finally:
        db.close()


FIX_WRITE = "free some disk space or check that the store is writable"
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another writer's transaction
ERASE_WAIT_S = 2.0  # how long erasing waits for other readers to finish before saying it could not
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # primary result codes that mean the file itself is damaged
SQLITE_HEADER = b"SQLite format 3\x00"
NOT_A_STORE = "give --store the path of a profile store, or a new one; this file was left as it was"
SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # ... and that another connection holds the lock: try again later


class StoreDamageWarning(UserWarning):
    """A row of the store is damaged and was left out; the message says how to remove it."""


class _Damaged(Exception):
    pass


@dataclass
class StoredWord:
    label: str
    user: str  # '' when anyone may say it
    speaker: str | None  # whose voice must match for the word to fire (None: any voice)
    threshold: float
    false_accept: float  # the target the threshold was calibrated for
    embeddings: np.ndarray  # (takes, D) float32
    bundle_ids: list[str]

    @property
    def key(self) -> tuple[str, str]:
        return self.label, self.user


@dataclass
class StoredVoice:
    user: str
    threshold: float
    embeddings: np.ndarray  # (takes, D) float32
    bundle_ids: list[str]


class ProfileStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._depth = 0
        self._damage_warned: set[tuple[str, str]] = set()
        self._data_version: int | None = None
        if str(path) != ":memory:":
            self._create_private(self.path)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA secure_delete=ON")
            version = self._schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: profile store schema {version} is newer than this edge-meta",
                                 "upgrade edge-meta: pip install -U 'edge-meta[device]'")
            if version == 0:
                self._refuse_foreign()
            if version == 1:
                self._migrate_from_1()
            self._create_tables()
            self._restore_columns()
            if version != SCHEMA_VERSION:  # a new store: the only write an open makes, so reads never wait on a lock
                self._set_meta("schema_version", str(SCHEMA_VERSION))
            self.changed()  # from now on, changes by other connections only
            if str(path) != ":memory:":
                self._make_private(self.path)
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "db"):
                self.db.close()
            if _code(exc) in (SQLITE_BUSY, SQLITE_LOCKED):
                raise self._busy(exc) from None
            if _code(exc) in (SQLITE_CORRUPT, SQLITE_NOTADB):
                raise StoreError(f"{self.path}: not a usable profile store ({exc})",
                                 "restore it from a backup (edge-meta device export-profile) or remove it and re-enroll"
                                 ) from None
            # anything else is about access (a read-only file, folder or disk; no space; locked), not the data:
            # never suggest removing the store for it
            raise StoreError(f"{self.path}: cannot open the profile store for writing ({exc})",
                             f"check that this user can write the file and its folder {self.path.parent} (SQLite keeps "
                             "-wal and -shm files beside it) and that the disk has space") from None

    @staticmethod
    def _create_private(path: Path) -> None:
        """Create the file 0600 before SQLite touches it (SQLite would honour the umask instead). An existing file must
        be an SQLite database, and is left as it is until it proves to be a profile store (`_make_private`)."""
        if path.parent and not path.parent.exists():
            raise StoreError(f"{path}: the folder {path.parent} does not exist", "create it or choose another --store")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                head = os.read(fd, len(SQLITE_HEADER))
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the profile store ({exc.strerror})",
                             "check the path and its permissions") from None
        if head and head != SQLITE_HEADER:
            raise StoreError(f"{path}: is not a profile store (not an SQLite database)", NOT_A_STORE)

    @staticmethod
    def _make_private(path: Path) -> None:
        """A store copied with a loose umask made 0600, and its WAL and shared-memory files (which take the main file's
        permissions when SQLite creates them): voice data for its owner only."""
        try:
            for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                if p.exists() and p.stat().st_mode & 0o077:
                    os.chmod(p, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot make the profile store private ({exc.strerror})",
                             "check the path and its permissions") from None

    def _refuse_foreign(self) -> None:
        """A database with tables but no edge-meta schema belongs to another program: never add ours to it."""
        tables = [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        if tables:
            self.db.close()
            raise StoreError(f"{self.path}: is another program's SQLite database (tables {', '.join(tables[:5])}), not "
                             "a profile store", NOT_A_STORE)

    def _schema_version(self) -> int:
        has_meta = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        value = self._meta("schema_version") if has_meta else None
        if value is None:
            return 0
        if not str(value).isdigit():
            raise StoreError(f"{self.path}: the profile store is damaged: its schema version is {value!r}",
                             f"if this edge-meta made it, set the version back: sqlite3 {shlex.quote(str(self.path))} "
                             f"\"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version'\"; "
                             "else restore it from an exported profile")
        return int(value)

    def _migrate_from_1(self) -> None:
        """Schema 1 had words without users, voices or speaker binding."""
        with self.transaction():
            self.db.execute("ALTER TABLE words ADD COLUMN speaker TEXT")
            self.db.execute("ALTER TABLE words ADD COLUMN false_accept REAL NOT NULL DEFAULT 0.01")
            self._create_tables()
            self.db.execute("INSERT OR IGNORE INTO users(name, created) SELECT DISTINCT user, min(created) FROM words "
                            "WHERE user != '' GROUP BY user")

    def _create_tables(self) -> None:
        """Statement by statement: executescript would commit an open transaction."""
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)

    def _restore_columns(self) -> None:
        """Give back a column an outside edit dropped when it has a default (a word's speaker, its false-accept
        target); without one the store cannot be read, and says so instead of failing in every command."""
        for table, columns in _columns().items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for _, name, kind, notnull, default, pk in columns:
                if name in have:
                    continue
                if pk or (notnull and default is None):
                    raise StoreError(f"{self.path}: the profile store is damaged: table {table} has no column {name}",
                                     "move it aside and restore from an exported profile (edge-meta device "
                                     "import-profile), or re-enroll")
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"
                                + (f" NOT NULL DEFAULT {default}" if notnull else f" DEFAULT {default}" * (default is not None)))
                warnings.warn(f"{self.path}: table {table} had lost its column {name}: added back with its default",
                              StoreDamageWarning, stacklevel=3)

    def close(self) -> None:
        self.db.close()

    # -- transactions --------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside happen together or not at all (nested uses join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if _code(exc) in (SQLITE_BUSY, SQLITE_LOCKED):
                raise self._busy(exc) from None
            raise StoreError(f"{self.path}: cannot write to the profile store ({exc})", FIX_WRITE) from None
        self._depth = 1
        try:
            yield
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"{self.path}: could not save ({exc}); nothing was changed", FIX_WRITE) from None
        except BaseException:
            self._rollback()
            raise
        finally:
            self._depth = 0

    def _busy(self, exc: sqlite3.Error) -> StoreBusy:
        return StoreBusy(f"{self.path}: the profile store is busy: another program has been writing to it for "
                         f"{BUSY_TIMEOUT_S:.0f} s ({exc})", "wait for it (an import or enrollment?) to finish, then try "
                         "again; reading commands such as `list` work meanwhile")

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- meta ------------------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, value))

    @property
    def bundle_id(self) -> str | None:
        """The bundle that last opened this store."""
        return self._meta("bundle_id")

    def set_bundle_id(self, bundle_id: str) -> None:
        if self.bundle_id != bundle_id:
            with self.transaction():
                self._set_meta("bundle_id", bundle_id)

    # -- writing ---------------------------------------------------------------------------------------
    def add_user(self, name: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO users(name, created) VALUES (?, ?)", (name, time.time()))

    def add_word(self, label: str, user: str, threshold: float, embeddings: np.ndarray, bundle_id: str | list[str],
                 audio: list[np.ndarray] | None, sample_rate: int, speaker: str | None = None,
                 false_accept: float = 0.01) -> None:
        """Store (or replace) a word with all its takes, atomically; ``bundle_id`` made the embeddings (one, or
        one per take)."""
        with self.transaction():
            if user:
                self.add_user(user)
            self.db.execute("DELETE FROM words WHERE label = ? AND user = ?", (label, user))
            cur = self.db.execute(
                "INSERT INTO words(label, user, speaker, threshold, false_accept, created) VALUES (?, ?, ?, ?, ?, ?)",
                (label, user, speaker, float(threshold), float(false_accept), time.time()))
            self._insert_takes("takes", "word_id", cur.lastrowid, bundle_id, embeddings, audio, sample_rate)

    def add_voice(self, user: str, threshold: float, embeddings: np.ndarray, bundle_id: str | list[str],
                  audio: list[np.ndarray] | None, sample_rate: int) -> None:
        """Store (or replace) a user's voice with all its takes, atomically."""
        with self.transaction():
            self.add_user(user)
            self.db.execute("DELETE FROM voices WHERE user = ?", (user,))
            cur = self.db.execute("INSERT INTO voices(user, threshold, created) VALUES (?, ?, ?)",
                                  (user, float(threshold), time.time()))
            self._insert_takes("voice_takes", "voice_id", cur.lastrowid, bundle_id, embeddings, audio, sample_rate)

    def _insert_takes(self, table: str, owner: str, owner_id: int, bundle_id: str | list[str], embeddings: np.ndarray,
                      audio: list[np.ndarray] | None, sample_rate: int) -> None:
        emb = np.asarray(embeddings, dtype="<f4")
        ids = [bundle_id] * len(emb) if isinstance(bundle_id, str) else bundle_id
        for k in range(len(emb)):
            self._insert_take(table, owner, owner_id, ids[k], emb[k], None if audio is None else to_pcm16(audio[k]),
                              sample_rate)

    def _insert_take(self, table: str, owner: str, owner_id: int, bundle_id: str, embedding: np.ndarray,
                     pcm: bytes | None, sample_rate: int) -> None:
        self.db.execute(f"INSERT INTO {table}({owner}, bundle_id, embedding, audio, sample_rate) VALUES (?, ?, ?, ?, ?)",
                        (owner_id, bundle_id, embedding.tobytes(), pcm, sample_rate))

    def set_thresholds(self, thresholds: dict[tuple[str, str], float]) -> None:
        """New thresholds for words, keyed by (label, user)."""
        with self.transaction():
            for (label, user), value in thresholds.items():
                self.db.execute("UPDATE words SET threshold = ? WHERE label = ? AND user = ?", (float(value), label, user))

    def remove_word(self, label: str, user: str = "") -> bool:
        with self.transaction():
            return self.db.execute("DELETE FROM words WHERE label = ? AND user = ?", (label, user)).rowcount > 0

    def remove_voice(self, user: str) -> bool:
        with self.transaction():
            return self.db.execute("DELETE FROM voices WHERE user = ?", (user,)).rowcount > 0

    def delete_user(self, name: str) -> dict[str, int]:
        """Delete everything of a user: their words, words bound to their voice, their voice, and all those
        takes and recordings. Follow with `compact` (outside the transaction) to drop the bytes from the file."""
        with self.transaction():
            words = self.db.execute("DELETE FROM words WHERE user = ? OR speaker = ?", (name, name)).rowcount
            voices = self.db.execute("DELETE FROM voices WHERE user = ?", (name,)).rowcount
            commands = self.db.execute("DELETE FROM command_profiles WHERE user = ?", (name,)).rowcount
            users = self.db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount
        return {"users": users, "words": words, "voices": voices, "command profiles": commands}

    def set_command_profile(self, user: str, profile_json: str) -> None:
        """A user's example command phrasings (JSON from `edge_meta.device.commands.CommandProfile`)."""
        try:
            self.db.execute("INSERT INTO command_profiles(user, profile, updated) VALUES (?, ?, ?) "
                            "ON CONFLICT(user) DO UPDATE SET profile = excluded.profile, updated = excluded.updated",
                            (user, profile_json, time.time()))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: could not save the command examples ({exc}); nothing was changed",
                             FIX_WRITE) from None

    def command_profiles(self) -> dict[str, str]:
        """user -> their phrasings' JSON; a damaged entry is left out with a warning, as for words."""
        out = {}
        for user, text in self.db.execute("SELECT user, profile FROM command_profiles ORDER BY user").fetchall():
            try:
                if not isinstance(json.loads(text).get("examples"), list):
                    raise ValueError
                out[user] = text
            except (TypeError, ValueError, AttributeError):
                if (user, "commands") not in self._damage_warned:
                    self._damage_warned.add((user, "commands"))
                    warnings.warn(f"{self.path}: the command phrasings of {user!r} are damaged and left out; enroll "
                                  "them again (edge-meta device enroll-command) to replace them", StoreDamageWarning,
                                  stacklevel=2)
        return out

    def compact(self) -> None:
        """VACUUM and truncate the WAL: the file then holds only live rows, no deleted page or old version.

        Another connection's open read transaction pins the old pages: the checkpoint waits ERASE_WAIT_S for it,
        then says the bytes are still there instead of claiming they are gone. Compacting again (any `remove` or
        `forget-user` runs it) finishes the job once that reader is done."""
        try:
            self.db.execute("VACUUM")
            self.db.execute(f"PRAGMA busy_timeout = {int(ERASE_WAIT_S * 1000)}")
            try:
                busy = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: could not compact the store ({exc})", FIX_WRITE) from None
        if busy:
            raise StoreError(f"{self.path}: deleted, but the old bytes are still in the file: another program holds "
                             "a read transaction open on the store",
                             "close it (`fuser -v` on the store shows it), then run the same command again to finish "
                             "erasing")

    def changed(self) -> bool:
        """True when another connection committed to the store since the last call (SQLite's data_version: a read
        of shared memory, cheap enough for a daemon to ask every audio block)."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        changed, self._data_version = version != self._data_version, version
        return changed

    def forget_version(self) -> None:
        """Make the next `changed` say True: what the last change was to trigger failed, and is tried again."""
        self._data_version = None

    # -- reading ---------------------------------------------------------------------------------------
    def users(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM users ORDER BY name")]

    def words(self) -> list[StoredWord]:
        """Every usable word; a damaged one is left out with a warning that names it and how to remove it."""
        out = []
        for word_id, label, user, speaker, threshold, false_accept in self.db.execute(
                "SELECT id, label, user, speaker, threshold, false_accept FROM words ORDER BY label, user").fetchall():
            name = f"word {label!r}" + (f" of {user}" if user else "")
            fix = f"remove it: edge-meta device remove {shlex.quote(str(label))}" + (
                f" --user {shlex.quote(str(user))}" if user else "")
            fields = isinstance(label, str) and isinstance(user, str) and (speaker is None or isinstance(speaker, str))
            found = self._usable(name, fix, fields, {"threshold": threshold, "false_accept": false_accept},
                                 "takes", "word_id", word_id)
            if found:
                out.append(StoredWord(label, user, speaker, float(threshold), float(false_accept), *found))
        return out

    def voices(self) -> list[StoredVoice]:
        """Every usable voice; a damaged one is left out with a warning, as for words."""
        out = []
        for voice_id, user, threshold in self.db.execute("SELECT id, user, threshold FROM voices ORDER BY user").fetchall():
            found = self._usable(f"the voice of {user!r}", f"remove it: edge-meta device remove --voice "
                                 f"{shlex.quote(str(user))}", isinstance(user, str), {"threshold": threshold},
                                 "voice_takes", "voice_id", voice_id)
            if found:
                out.append(StoredVoice(user, float(threshold), *found))
        return out

    def _usable(self, name: str, fix: str, fields_ok: bool, numbers: dict[str, object], table: str, owner: str,
                owner_id: int) -> tuple[np.ndarray, list[str]] | None:
        """A row's embeddings and bundle ids, or None when the row is damaged (an outside edit, a bad disk): one bad
        row must not stop every command, least of all the `remove` that clears it."""
        try:
            if not fields_ok:
                raise _Damaged("a name that is not text")
            for field, value in numbers.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise _Damaged(f"{field} {value!r} is not a number")
            return self._embeddings(table, owner, owner_id)
        except _Damaged as exc:
            if (name, str(exc)) not in self._damage_warned:
                self._damage_warned.add((name, str(exc)))
                warnings.warn(f"{self.path}: {name} is damaged ({exc}) and left out; {fix}", StoreDamageWarning,
                              stacklevel=3)
            return None

    def _embeddings(self, table: str, owner: str, owner_id: int) -> tuple[np.ndarray, list[str]]:
        rows = self.db.execute(  # the audio's type and length only: reading every recording here would be slow
            f"SELECT embedding, bundle_id, typeof(audio), length(audio) FROM {table} WHERE {owner} = ? ORDER BY id",
            (owner_id,)).fetchall()
        sizes = sorted({len(e) if isinstance(e, bytes) else -1 for e, *_ in rows})
        if len(sizes) != 1 or sizes[0] <= 0 or sizes[0] % 4:
            raise _Damaged(f"takes with embeddings of {sizes} bytes" if rows else "no takes")
        if any(not isinstance(b, str) or kind not in ("blob", "null") or (kind == "blob" and n % 2)
               for _, b, kind, n in rows):
            raise _Damaged("a take with a bad bundle id or audio")
        emb = np.stack([np.frombuffer(e, dtype="<f4").astype(np.float32) for e, *_ in rows])
        if not np.all(np.isfinite(emb)):
            raise _Damaged("NaN or infinite embedding values")
        return emb, [b for _, b, *_ in rows]

    def takes_audio(self, label: str, user: str = "") -> list[np.ndarray]:
        rows = self.db.execute(
            "SELECT t.audio FROM takes t JOIN words w ON w.id = t.word_id WHERE w.label = ? AND w.user = ? ORDER BY t.id",
            (label, user)).fetchall()
        return [from_pcm16(r[0]) for r in rows if r[0] is not None]

    def voice_audio(self, user: str) -> list[np.ndarray]:
        rows = self.db.execute(
            "SELECT t.audio FROM voice_takes t JOIN voices v ON v.id = t.voice_id WHERE v.user = ? ORDER BY t.id",
            (user,)).fetchall()
        return [from_pcm16(r[0]) for r in rows if r[0] is not None]


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of an error (0 when the driver gives none)."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def to_pcm16(x: np.ndarray) -> bytes:
    """The inverse of `from_pcm16` (same scale, 32768): audio read back and stored again is stored unchanged."""
    return np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767).astype("<i2").tobytes()


def from_pcm16(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<i2").astype(np.float32) / 32768.0
