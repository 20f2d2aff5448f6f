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
A file is never trusted. Its structure (format, version, the lists) must be right or nothing is read; then each
word, voice and command entry is checked on its own (types, names as enrollment takes them, take counts,
decodable base64, 16 kHz audio), and an entry may only touch the users the file declares in ``users``: a bad
entry is left out with its reason and the others still import. The file's thresholds are ignored and its
embeddings are recomputed from the audio by the runtime (`Runtime.plan_import`), which also shows what would be
replaced before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from edge_meta.audio import SAMPLE_RATE
from edge_meta.device.limits import MAX_TAKES, MAX_VOICE_TAKE_S, MAX_WORD_TAKE_S, check_false_accept, check_name
from edge_meta.device.store import ProfileStore, from_pcm16
from edge_meta.errors import StoreError

FORMAT = "edge-meta-profile"
T = TypeVar("T")
VERSION = 1
MAX_BYTES = 64 << 20  # ~300 words of five 1 s takes; json.loads holds ~5x the file (a 500 MB one: MemoryError)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def export_profile(store: ProfileStore, path: str | Path, user: str | None = None) -> dict[str, int]:
    """Write the store (or one user's part of it: their words, shared words bound to them, their voice) to ``path``,
    created 0600."""
    user = None if user is None else check_name(user, "user name")  # as enrollment stored it (NFC)
    usable = {w.key for w in store.words()}  # a damaged row is left out, as everywhere (the store warns)
    rows = store.db.execute("SELECT id, label, user, speaker, threshold, false_accept FROM words ORDER BY label, user")
    words = []
    for word_id, label, owner, speaker, threshold, false_accept in rows.fetchall():
        if (label, owner) not in usable or (user is not None and user not in (owner, speaker)):
            continue
        words.append({"label": label, "user": owner, "speaker": speaker, "threshold": threshold,
                      "false_accept": false_accept, "takes": _takes(store, "takes", "word_id", word_id)})
    voices, usable = [], {v.user for v in store.voices()}
    for voice_id, owner, threshold in store.db.execute("SELECT id, user, threshold FROM voices ORDER BY user").fetchall():
        if owner in usable and (user is None or owner == user):
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
    text = json.dumps(doc)
    if len(text) > MAX_BYTES:  # a backup that import would refuse is no backup
        raise StoreError(f"the profile would be {len(text) >> 20} MB, more than import-profile takes "
                         f"({MAX_BYTES >> 20} MB)", "export one user at a time: --user NAME")
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.unlink(missing_ok=True)  # a stale .part (or a link planted there) is removed, never followed
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
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


def _name(value: Any, where: str, what: str, allow_empty: bool = False) -> str:
    """The name as enrollment would take it (`limits.check_name`: NFC, no control characters or odd spaces)."""
    try:
        return check_name(value, what, allow_empty)
    except StoreError as exc:
        raise _Invalid(f"{where}: {exc.message}") from None


def _decode(value: Any, where: str) -> bytes:
    _need(isinstance(value, str), where, "expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid(f"{where}: not valid base64") from None


def _parse_takes(value: Any, where: str, max_s: float) -> tuple[np.ndarray, list[str], list[np.ndarray] | None]:
    """A word's or voice's takes, each at most ``max_s`` seconds long: what enrollment takes (the template check
    and re-embedding cost grow with it: five 60 s takes asked 1.2 GB at every daemon start)."""
    _need(isinstance(value, list) and 1 <= len(value) <= MAX_TAKES, where, f"expected a list of 1-{MAX_TAKES} takes")
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
            _need(0 < len(pcm) <= 2 * max_s * SAMPLE_RATE and len(pcm) % 2 == 0, f"{w}.audio",
                  f"expected 16-bit PCM of at most {max_s:.0f} s")
            audio.append(from_pcm16(pcm))
        embeddings.append(emb)
        bundles.append(take["bundle_id"])
    _need(len({len(e) for e in embeddings}) == 1, where, "takes have embeddings of different sizes")
    kept = None if any(a is None for a in audio) else audio
    return np.stack(embeddings), bundles, kept


@dataclass
class Profile:
    """A profile file as read: the entries that passed their checks, and each one left out with its reason."""

    path: Path
    users: list[str]
    words: list[dict] = field(default_factory=list)  # label, user, speaker, false_accept, embeddings, bundle_ids, audio
    voices: list[dict] = field(default_factory=list)  # user, embeddings, bundle_ids, audio (and threshold, once planned)
    commands: dict[str, str] = field(default_factory=dict)  # user -> CommandProfile JSON
    rejected: list[str] = field(default_factory=list)

    def replaces(self, store: ProfileStore) -> list[str]:
        """What importing would overwrite in ``store``, one line each, to show before asking."""
        words = set(store.db.execute("SELECT label, user FROM words").fetchall())
        voices = {r[0] for r in store.db.execute("SELECT user FROM voices")}
        out = [f"word {w['label']!r}" + (f" of {w['user']}" if w["user"] else " (anyone's)") for w in self.words
               if (w["label"], w["user"]) in words]
        out += [f"{v['user']}'s voice" for v in self.voices if v["user"] in voices]
        return out + [f"{u or 'the shared'}'s command phrasings" for u in self.commands if u in store.command_profiles()]


def read_profile(path: str | Path) -> Profile:
    """The file's structure checked (StoreError if it is not a profile file) and every entry parsed on its own:
    embeddings and audio decoded, names normalised, each bad entry in `Profile.rejected` with its reason."""
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
              and isinstance(doc.get("voices"), list) and isinstance(doc.get("commands", []), list),
              "users/words/voices/commands", "expected lists")
    except _Invalid as exc:
        raise StoreError(f"{path}: invalid profile file ({exc})",
                         "export it again with `edge-meta device export-profile`; nothing was imported") from None
    profile = Profile(path, [])
    users = [_entry(profile, _name, u, f"users[{i}]", "user name") for i, u in enumerate(doc["users"])]
    profile.users = list(dict.fromkeys(u for u in users if u is not None))  # NFC spellings of one name: one user
    words = [_entry(profile, _parse_word, w, f"words[{i}]", profile.users) for i, w in enumerate(doc["words"])]
    voices = [_entry(profile, _parse_voice, v, f"voices[{i}]", profile.users) for i, v in enumerate(doc["voices"])]
    commands = [_entry(profile, _parse_command, c, f"commands[{i}]", profile.users)
                for i, c in enumerate(doc.get("commands", []))]
    profile.words = [w for w in words if w is not None]
    profile.voices = [v for v in voices if v is not None]
    profile.commands = dict(c for c in commands if c is not None)
    return profile


def _entry(profile: Profile, parse: Callable[..., T], *args: Any) -> T | None:
    """One entry parsed, or None with the reason recorded in ``profile.rejected``: the other entries go on."""
    try:
        return parse(*args)
    except _Invalid as exc:
        profile.rejected.append(str(exc))
        return None


def _declared(name: str, users: list[str], where: str) -> str:
    _need(name == "" or name in users, where, f"{name!r} is not one of the users the file declares ({users})")
    return name


def _parse_word(w: Any, where: str, users: list[str]) -> dict:
    _need(isinstance(w, dict), where, "expected an object")
    label = _name(w.get("label"), f"{where}.label", "word")
    where = f"{where} ({label!r})"
    user = _declared(_name(w.get("user"), f"{where}.user", "user name", allow_empty=True), users, f"{where}.user")
    speaker = w.get("speaker")
    if speaker is not None:
        speaker = _declared(_name(speaker, f"{where}.speaker", "user name"), users, f"{where}.speaker")
    try:
        false_accept = check_false_accept(w.get("false_accept"))
    except StoreError as exc:
        raise _Invalid(f"{where}.false_accept: {exc.message}") from None
    emb, bundles, audio = _parse_takes(w.get("takes"), f"{where}.takes", MAX_WORD_TAKE_S)
    return {"label": label, "user": user, "speaker": speaker, "false_accept": false_accept, "embeddings": emb,
            "bundle_ids": bundles, "audio": audio}


def _parse_voice(v: Any, where: str, users: list[str]) -> dict:
    _need(isinstance(v, dict), where, "expected an object")
    user = _declared(_name(v.get("user"), f"{where}.user", "user name"), users, f"{where}.user")
    emb, bundles, audio = _parse_takes(v.get("takes"), f"{where} ({user}).takes", MAX_VOICE_TAKE_S)
    return {"user": user, "embeddings": emb, "bundle_ids": bundles, "audio": audio}


def _parse_command(entry: Any, where: str, users: list[str]) -> tuple[str, str]:
    """(user, the JSON of their `CommandProfile`), each example parsed as the device will parse it."""
    from edge_meta.device.commands import CommandProfile

    _need(isinstance(entry, dict) and isinstance(entry.get("examples"), list), where,
          "expected an object with a list of examples")
    user = _declared(_name(entry.get("user"), f"{where}.user", "user name", allow_empty=True), users, f"{where}.user")
    text = json.dumps({"examples": entry["examples"]})
    try:
        CommandProfile.from_json(text)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _Invalid(f"{where}.examples: {type(exc).__name__} {str(exc)[:100]}") from None
    return user, text


def write_profile(store: ProfileStore, profile: Profile, word_threshold: float) -> dict[str, int]:
    """Add a planned profile (`Runtime.plan_import`: embeddings recomputed, voice thresholds calibrated) to the
    store, all of it or nothing; the words get ``word_threshold`` until the caller recalibrates them."""
    with store.transaction():
        for u in profile.users:
            store.add_user(u)
        for w in profile.words:
            store.add_word(w["label"], w["user"], word_threshold, w["embeddings"], w["bundle_ids"], w["audio"],
                           SAMPLE_RATE, speaker=w["speaker"], false_accept=w["false_accept"])
        for v in profile.voices:
            store.add_voice(v["user"], v["threshold"], v["embeddings"], v["bundle_ids"], v["audio"], SAMPLE_RATE)
        for user, text in profile.commands.items():
            store.set_command_profile(user, text)
    # what the store now holds from the file: an entry repeated in it replaced its first copy, and counts once
    return {"users": len(set(profile.users)), "words": len({(w["label"], w["user"]) for w in profile.words}),
            "voices": len({v["user"] for v in profile.voices}), "command profiles": len(profile.commands)}
