"""The profile store: one SQLite file holding enrolled words, their takes and embeddings.

Written for devices that lose power: WAL journal with synchronous=FULL, every enrollment in one
transaction (all takes or none), the file created 0600 (voice data is personal). Each take's
embedding is stored with the id of the bundle that made it; the enrollment audio is kept (unless
the caller opts out) so a new bundle can re-embed it instead of asking for re-enrollment.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_meta.errors import StoreError

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS words (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    threshold REAL NOT NULL,
    created REAL NOT NULL,
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
"""


@dataclass
class StoredWord:
    label: str
    user: str
    threshold: float
    embeddings: np.ndarray  # (takes, D) float32
    bundle_ids: list[str]


class ProfileStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self._create_private(self.path)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            version = self._meta("schema_version")
            if version is None:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
            elif int(version) > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: profile store schema {version} is newer than this edge-meta",
                                 "upgrade edge-meta: pip install -U 'edge-meta[device]'")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable profile store ({exc})",
                             "restore it from a backup (edge-meta device export-profile) or remove it and re-enroll") from None

    @staticmethod
    def _create_private(path: Path) -> None:
        """Create the file 0600 before SQLite touches it (SQLite would honour the umask instead)."""
        if path.parent and not path.parent.exists():
            raise StoreError(f"{path}: the folder {path.parent} does not exist", "create it or choose another --store")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the profile store ({exc.strerror})",
                             "check the path and its permissions") from None

    def close(self) -> None:
        self.db.close()

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, value))

    def add_word(self, label: str, user: str, threshold: float, embeddings: np.ndarray, bundle_id: str,
                 audio: list[np.ndarray] | None, sample_rate: int) -> None:
        """Store (or replace) a word with all its takes, atomically."""
        emb = np.asarray(embeddings, dtype=np.float32)
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM words WHERE label = ? AND user = ?", (label, user))
            cur = self.db.execute("INSERT INTO words(label, user, threshold, created) VALUES (?, ?, ?, ?)",
                                  (label, user, float(threshold), time.time()))
            word_id = cur.lastrowid
            for k, e in enumerate(emb):
                pcm = None if audio is None else _to_pcm16(audio[k])
                self.db.execute("INSERT INTO takes(word_id, bundle_id, embedding, audio, sample_rate) VALUES (?, ?, ?, ?, ?)",
                                (word_id, bundle_id, e.tobytes(), pcm, sample_rate))
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"{self.path}: could not save {label!r} ({exc}); nothing was changed",
                             "free some disk space or check that the store is writable") from None

    def remove_word(self, label: str, user: str = "") -> bool:
        cur = self.db.execute("DELETE FROM words WHERE label = ? AND user = ?", (label, user))
        return cur.rowcount > 0

    def words(self) -> list[StoredWord]:
        out = []
        for word_id, label, user, threshold in self.db.execute(
                "SELECT id, label, user, threshold FROM words ORDER BY label, user").fetchall():
            rows = self.db.execute("SELECT embedding, bundle_id FROM takes WHERE word_id = ? ORDER BY id", (word_id,)).fetchall()
            emb = np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
            out.append(StoredWord(label, user, threshold, emb, [r[1] for r in rows]))
        return out

    def takes_audio(self, label: str, user: str = "") -> list[np.ndarray]:
        rows = self.db.execute(
            "SELECT t.audio FROM takes t JOIN words w ON w.id = t.word_id WHERE w.label = ? AND w.user = ? ORDER BY t.id",
            (label, user)).fetchall()
        return [np.frombuffer(r[0], dtype=np.int16).astype(np.float32) / 32768.0 for r in rows if r[0] is not None]

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _to_pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(np.asarray(x) * 32767.0), -32768, 32767).astype(np.int16).tobytes()
