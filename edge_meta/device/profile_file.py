"""Profiles as one portable file: backup, or moving a user to another device (no pickle, validated on import).

Format "edge-meta-profile", version 1: a UTF-8 JSON object

    {"format": "edge-meta-profile", "version": 1, "exported": "2026-11-25T12:00:00+00:00",
     "bundle_id": "f73f2f5dafc6684d",                      # the bundle of the exporting store
     "users": ["alice"],
     "words": [{"label": "lights on", "user": "alice", "speaker": null, "threshold": 0.91,
                "false_accept": 0.01, "takes": [TAKE, ...]}],
     "voices": [{"user": "alice", "threshold": 0.62, "takes": [TAKE, ...]}],
     "commands": [{"user": "alice", "examples": [{"words": ["lights", "on"], "command": {...}}]}]}

    TAKE = {"bundle_id": "...", "embedding": BASE64(float32 little-endian),
            "audio": BASE64(int16 little-endian mono PCM) or null, "sample_rate": 16000}

``commands`` (a user's example command phrasings) is optional, so files from before it still import.
Import checks every field (types, lengths, finite numbers, one embedding size per entry, decodable
base64, 16 kHz audio) before it writes anything, then adds everything in one transaction, replacing
words and voices with the same (label, user) / user. Takes embedded by another bundle are re-embedded
from their audio by the runtime (or need re-enrollment when the audio was not kept).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_meta.audio import SAMPLE_RATE
from edge_meta.device.store import ProfileStore, from_pcm16
from edge_meta.errors import StoreError

FORMAT = "edge-meta-profile"
VERSION = 1
MAX_BYTES = 512 << 20
MAX_NAME = 64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def export_profile(store: ProfileStore, path: str | Path, user: str | None = None) -> dict[str, int]:
    """Write the store (or one user's part of it: their words, shared words bound to them, their voice) to ``path``,
    created 0600."""
    rows = store.db.execute("SELECT id, label, user, speaker, threshold, false_accept FROM words ORDER BY label, user")
    words = []
    for word_id, label, owner, speaker, threshold, false_accept in rows.fetchall():
        if user is not None and user not in (owner, speaker):
            continue
        words.append({"label": label, "user": owner, "speaker": speaker, "threshold": threshold,
                      "false_accept": false_accept, "takes": _takes(store, "takes", "word_id", word_id)})
    voices = []
    for voice_id, owner, threshold in store.db.execute("SELECT id, user, threshold FROM voices ORDER BY user").fetchall():
        if user is None or owner == user:
            voices.append({"user": owner, "threshold": threshold,
                           "takes": _takes(store, "voice_takes", "voice_id", voice_id)})
    commands = [{"user": owner, "examples": json.loads(text)["examples"]}
                for owner, text in store.command_profiles().items() if user is None or owner == user]
    users = [u for u in store.users() if user is None or u == user]
    if user is not None and not users:
        raise StoreError(f"no user {user!r} in {store.path}", "see the users with `edge-meta device list`")
    doc = {"format": FORMAT, "version": VERSION, "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "bundle_id": store.bundle_id, "users": users, "words": words, "voices": voices, "commands": commands}
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.unlink(missing_ok=True)  # a stale .part (or a link planted there) is removed, never followed
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot write the profile ({exc.strerror})", "check the folder and free space") from None
    return {"users": len(users), "words": len(words), "voices": len(voices), "command profiles": len(commands)}


def _takes(store: ProfileStore, table: str, owner: str, owner_id: int) -> list[dict]:
    rows = store.db.execute(f"SELECT bundle_id, embedding, audio, sample_rate FROM {table} WHERE {owner} = ? ORDER BY id",
                            (owner_id,)).fetchall()
    return [{"bundle_id": b, "embedding": _b64(e), "audio": None if a is None else _b64(a), "sample_rate": sr}
            for b, e, a, sr in rows]


class _Invalid(Exception):
    pass


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise _Invalid(f"{where}: {what}")


def _name(value: Any, where: str, allow_empty: bool = False) -> str:
    _need(isinstance(value, str) and (allow_empty or value.strip() != "") and len(value) <= MAX_NAME
          and value.isprintable(), where, f"expected a printable name of at most {MAX_NAME} characters")
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    _need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and low <= value <= high, where, f"expected a number in [{low}, {high}]")
    return float(value)


def _decode(value: Any, where: str) -> bytes:
    _need(isinstance(value, str), where, "expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid(f"{where}: not valid base64") from None


def _parse_takes(value: Any, where: str) -> tuple[np.ndarray, list[str], list[np.ndarray] | None]:
    _need(isinstance(value, list) and 1 <= len(value) <= 50, where, "expected a list of 1-50 takes")
    embeddings, bundles, audio = [], [], []
    for i, take in enumerate(value):
        w = f"{where}[{i}]"
        _need(isinstance(take, dict) and set(take) == {"bundle_id", "embedding", "audio", "sample_rate"}, w,
              "expected exactly bundle_id, embedding, audio, sample_rate")
        _need(isinstance(take["bundle_id"], str) and 0 < len(take["bundle_id"]) <= 64, f"{w}.bundle_id", "expected an id")
        raw = _decode(take["embedding"], f"{w}.embedding")
        _need(0 < len(raw) <= 4 * 4096 and len(raw) % 4 == 0, f"{w}.embedding", "expected float32 values")
        emb = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        _need(bool(np.all(np.isfinite(emb))), f"{w}.embedding", "holds NaN or infinite values")
        _need(take["sample_rate"] == SAMPLE_RATE, f"{w}.sample_rate", f"expected {SAMPLE_RATE}")
        if take["audio"] is None:
            audio.append(None)
        else:
            pcm = _decode(take["audio"], f"{w}.audio")
            _need(0 < len(pcm) <= 2 * 60 * SAMPLE_RATE and len(pcm) % 2 == 0, f"{w}.audio",
                  "expected 16-bit PCM of at most 60 s")
            audio.append(from_pcm16(pcm))
        embeddings.append(emb)
        bundles.append(take["bundle_id"])
    _need(len({len(e) for e in embeddings}) == 1, where, "takes have embeddings of different sizes")
    kept = None if any(a is None for a in audio) else audio
    return np.stack(embeddings), bundles, kept


def read_profile(path: str | Path) -> dict:
    """The validated document (embeddings and audio decoded); StoreError naming the first bad field."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such profile file", "give a file written by `edge-meta device export-profile`")
    if path.stat().st_size > MAX_BYTES:
        raise StoreError(f"{path}: is larger than {MAX_BYTES >> 20} MB, not a profile", "check the file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5000-digit number, nesting too deep
        raise StoreError(f"{path}: not a profile file (not JSON: {str(exc)[:200]})",
                         "give a file written by `edge-meta device export-profile`") from None
    try:
        _need(isinstance(doc, dict) and doc.get("format") == FORMAT, "format", f"expected {FORMAT!r}")
        version = doc.get("version")
        _need(isinstance(version, int), "version", "expected an integer")
        if version > VERSION:
            raise StoreError(f"{path}: profile format version {version} is newer than this edge-meta ({VERSION})",
                             "upgrade edge-meta: pip install -U 'edge-meta[device]'")
        _need(version == VERSION, "version", f"expected {VERSION}")
        _need(isinstance(doc.get("users"), list) and isinstance(doc.get("words"), list)
              and isinstance(doc.get("voices"), list), "users/words/voices", "expected lists")
        users = [_name(u, f"users[{i}]") for i, u in enumerate(doc["users"])]
        words, voices = [], []
        for i, w in enumerate(doc["words"]):
            where = f"words[{i}]"
            _need(isinstance(w, dict), where, "expected an object")
            speaker = w.get("speaker")
            if speaker is not None:
                _name(speaker, f"{where}.speaker")
            emb, bundles, audio = _parse_takes(w.get("takes"), f"{where}.takes")
            words.append({"label": _name(w.get("label"), f"{where}.label"),
                          "user": _name(w.get("user"), f"{where}.user", allow_empty=True), "speaker": speaker,
                          "threshold": _number(w.get("threshold"), f"{where}.threshold", -1e3, 1e3),
                          "false_accept": _number(w.get("false_accept"), f"{where}.false_accept", 1e-6, 0.5),
                          "embeddings": emb, "bundle_ids": bundles, "audio": audio})
        for i, v in enumerate(doc["voices"]):
            where = f"voices[{i}]"
            _need(isinstance(v, dict), where, "expected an object")
            emb, bundles, audio = _parse_takes(v.get("takes"), f"{where}.takes")
            voices.append({"user": _name(v.get("user"), f"{where}.user"),
                           "threshold": _number(v.get("threshold"), f"{where}.threshold", -1.0, 1.0),
                           "embeddings": emb, "bundle_ids": bundles, "audio": audio})
        commands = _parse_commands(doc.get("commands", []))
    except _Invalid as exc:
        raise StoreError(f"{path}: invalid profile file ({exc})",
                         "export it again with `edge-meta device export-profile`; nothing was imported") from None
    return {"users": users, "words": words, "voices": voices, "commands": commands}


def _parse_commands(value: Any) -> dict[str, str]:
    """user -> the JSON of their `CommandProfile`, each example parsed as the device will parse it."""
    from edge_meta.device.commands import CommandProfile

    _need(isinstance(value, list), "commands", "expected a list")
    out = {}
    for i, entry in enumerate(value):
        where = f"commands[{i}]"
        _need(isinstance(entry, dict) and isinstance(entry.get("examples"), list), where,
              "expected an object with a list of examples")
        text = json.dumps({"examples": entry["examples"]})
        try:
            CommandProfile.from_json(text)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _Invalid(f"{where}.examples: {type(exc).__name__} {str(exc)[:100]}") from None
        out[_name(entry.get("user"), f"{where}.user", allow_empty=True)] = text
    return out


def import_profile(store: ProfileStore, path: str | Path) -> dict[str, int]:
    """Add a validated profile file to the store, all of it or nothing."""
    return write_profile(store, read_profile(path))


def check_sizes(doc: dict, path: str | Path, bundle_id: str, word_dim: int, voice_dim: int) -> None:
    """Takes embedded by ``bundle_id`` are used as they are, so they must have its embedding sizes; a file
    that says otherwise was edited or made by a different model under the same id."""
    for kind, dim in (("words", word_dim), ("voices", voice_dim)):
        for i, entry in enumerate(doc[kind]):
            size = entry["embeddings"].shape[1]
            if size != dim and bundle_id in entry["bundle_ids"]:
                raise StoreError(f"{path}: invalid profile file ({kind}[{i}]: embeddings of {size} values, but bundle "
                                 f"{bundle_id} makes {dim})", "export it again with `edge-meta device export-profile`; "
                                 "nothing was imported")


def write_profile(store: ProfileStore, doc: dict) -> dict[str, int]:
    """Add a document from `read_profile` to the store, all of it or nothing."""
    with store.transaction():
        for u in doc["users"]:
            store.add_user(u)
        for w in doc["words"]:
            store.add_word(w["label"], w["user"], w["threshold"], w["embeddings"], w["bundle_ids"], w["audio"],
                           SAMPLE_RATE, speaker=w["speaker"], false_accept=w["false_accept"])
        for v in doc["voices"]:
            store.add_voice(v["user"], v["threshold"], v["embeddings"], v["bundle_ids"], v["audio"], SAMPLE_RATE)
        for user, text in doc["commands"].items():
            store.set_command_profile(user, text)
    return {"users": len(doc["users"]), "words": len(doc["words"]), "voices": len(doc["voices"]),
            "command profiles": len(doc["commands"])}
