"""Fuzz targets for everything the device reads from outside: audio files, bundles, profile files.

Shared by tests/test_fuzz.py (a few hundred cases in CI) and benchmarks/fuzz.py (>= 10,000 per target).
A target runs one generated case in its own empty folder and returns "ok" (accepted, and the result
is valid) or "typed" (refused with the library's own error: AudioError, BundleError, StoreError).
Anything else it raises is a bug, and so is an accepted result that is not valid: 16 kHz float32
mono finite audio; a bundle the runtime can embed with; a profile the detector can listen with. A
refused profile must leave the store as it was.

Cases are drawn with hypothesis strategies. Mutations of a structure pick their node by an index
taken modulo the number of nodes, so a strategy need not know the document it mutates.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import shutil
import struct
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
from hypothesis import strategies as st

from edge_meta.audio import SAMPLE_RATE, read_audio
from edge_meta.bundle import MANIFEST, Bundle, bundle_id_of, write_tar
from edge_meta.errors import AudioError, BundleError, StoreError
from edge_meta.resources import default_bundle_path

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
COMMON_RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000]
U32_SPECIAL = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


class Invalid(AssertionError):
    """An accepted input whose result breaks the contract (wrong rate, NaN, unusable bundle or profile)."""


# -- generic mutations --------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)

# (op, node index, value) applied to a JSON document by `mutate_json`
json_ops = st.lists(st.tuples(st.sampled_from(["replace", "delete", "insert", "wrap", "duplicate"]),
                              st.integers(0, 10**6), json_values), min_size=1, max_size=3)

# (op, position, bytes) applied to raw bytes by `mutate_bytes`
byte_ops = st.lists(st.tuples(st.sampled_from(["flip", "truncate", "insert", "overwrite"]),
                              st.integers(0, 10**7), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4)

# whole documents that break parsers rather than validators (drawn by name: the texts are large)
HOSTILE_JSON = {
    "deep_array": "[" * 100_000 + "]" * 100_000,  # deeper than the JSON parser's recursion limit
    "deep_object": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "long_int": '{"schema_version": 1' + "0" * 5000 + "}",  # an integer longer than Python will parse
    "long_int_profile": '{"format": "edge-meta-profile", "version": 1' + "0" * 5000 + "}",
    "bom": "\ufeff{}", "empty": "", "null": "null", "nan": "NaN", "huge_float": "1e999",
    "lone_surrogates": '"' + "\\ud800" * 4 + '"',
}
hostile_json = st.sampled_from(sorted(HOSTILE_JSON))


def _nodes(doc: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every node below the root, depth first."""
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, child in items:
            out.append((node, key))
            stack.append(child)
    return out


def mutate_json(doc: Any, ops: list[tuple[str, int, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op, index, value in ops:
        nodes = _nodes(doc)
        if not nodes:
            return value
        parent, key = nodes[index % len(nodes)]
        if op == "replace":
            parent[key] = value
        elif op == "delete":
            del parent[key]
        elif op == "wrap":
            parent[key] = [parent[key]]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "insert" and isinstance(parent[key], dict):
            parent[key][f"fuzz{index % 7}"] = value
        elif op == "insert" and isinstance(parent[key], list):
            parent[key].insert(index % (len(parent[key]) + 1), value)
        else:
            parent[key] = value
    return doc


def mutate_bytes(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for op, pos, chunk in ops:
        at = pos % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= chunk[0] or 1
        elif op == "truncate":
            del out[at:]
        elif op == "insert":
            out[at:at] = chunk
        else:
            out[at : at + len(chunk)] = chunk
    return bytes(out)


def dumps(doc: Any) -> str:
    return json.dumps(doc, allow_nan=True)


# -- audio --------------------------------------------------------------------------------------------
@dataclass
class AudioCase:
    data: bytes
    suffix: str
    expect: int | None = None  # the samples a correct reader returns; None: an AudioError is also right


@st.composite
def written_audio(draw) -> AudioCase:
    """A real file written by libsndfile (8/16/24/32-bit, float, double; 1-8 channels; 8-96 kHz), maybe damaged."""
    fmt = draw(st.sampled_from(["WAV", "WAV", "FLAC"]))
    subtypes = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"] if fmt == "WAV" else ["PCM_S8", "PCM_16", "PCM_24"]
    subtype = draw(st.sampled_from(subtypes))
    channels = draw(st.integers(1, 8))
    rate = draw(st.sampled_from(COMMON_RATES) | st.integers(8000, 96000)) if draw(st.integers(0, 9)) else 16000
    if fmt == "FLAC" and rate > 65535:
        rate -= rate % 10  # FLAC stores rates above 65535 Hz in tens of Hz
    frames = draw(st.sampled_from([0, 1]) | st.integers(2, 3000))
    is_float = subtype in ("FLOAT", "DOUBLE")
    scale = draw(st.sampled_from([1.0, 1e3, 3e38])) if is_float else 1.0
    special = draw(st.sampled_from([None, math.nan, math.inf, -math.inf])) if is_float else None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(-1.0, 1.0, (frames, channels)) * scale
    if special is not None and frames:
        x[rng.integers(frames), rng.integers(channels)] = special
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float64 if subtype == "DOUBLE" else np.float32) if is_float else x, rate,
             subtype=subtype, format=fmt)
    data = buf.getvalue()
    damage = draw(st.none() | byte_ops | st.tuples(st.integers(0, 63), st.sampled_from(U32_SPECIAL)))
    clean = damage is None and frames > 0 and special is None and scale == 1.0
    if isinstance(damage, list):
        data = mutate_bytes(data, damage)
    elif damage is not None:  # a header field (RIFF size, format, rate, data length ...) set to an extreme
        at, value = damage
        data = data[:at] + struct.pack("<I", value) + data[at + 4 :]
    expect = math.ceil(frames * SAMPLE_RATE / rate) if clean else None
    return AudioCase(data, ".flac" if fmt == "FLAC" else ".wav", expect)


@st.composite
def crafted_wav(draw) -> AudioCase:
    """A WAV header assembled field by field: odd formats, channel counts, rates, bit depths, chunk lengths."""
    tag = draw(st.sampled_from([1, 3, 0xFFFE, 0, 2, 6, 7, 0x55]) | st.integers(0, 0xFFFF))
    channels = draw(st.integers(0, 10) | st.sampled_from([255, 0xFFFF]))
    rate = draw(st.sampled_from([0, 1, 4000, 8000, 16000, 44100, 96000, 384000, 2**31 - 1, 2**32 - 1])
                | st.integers(0, 2**32 - 1))
    bits = draw(st.sampled_from([0, 1, 8, 12, 16, 20, 24, 32, 64, 0xFFFF]))
    align = channels * bits // 8 if draw(st.booleans()) else draw(st.integers(0, 0xFFFF))
    payload = draw(st.binary(max_size=4096))
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align & 0xFFFF, bits)
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: valid bits, channel mask, sub-format GUID
        sub = draw(st.sampled_from([1, 3, 0x1234]))
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    data_len = draw(st.sampled_from(["true", "true"] + U32_SPECIAL))
    data_len = len(payload) if data_len == "true" else data_len
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if draw(st.booleans()):  # an extra chunk before the data, with a possibly lying length
        extra = draw(st.binary(max_size=64))
        body += draw(st.sampled_from([b"LIST", b"fact", b"JUNK", b"cue "])) + struct.pack(
            "<I", draw(st.sampled_from([len(extra)] + U32_SPECIAL))) + extra
    body += b"data" + struct.pack("<I", data_len) + payload
    riff_len = draw(st.sampled_from([len(body), 0, 0xFFFFFFFF]))
    data = b"RIFF" + struct.pack("<I", riff_len) + body
    cut = draw(st.none() | st.integers(0, len(data)))
    return AudioCase(data if cut is None else data[:cut], ".wav")


@st.composite
def random_audio_bytes(draw) -> AudioCase:
    magic = draw(st.sampled_from([b"", b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b"fLaC", b"OggS", b"FORM", b"ID3"]))
    return AudioCase(magic + draw(st.binary(max_size=4096)), draw(st.sampled_from([".wav", ".flac", ".ogg", ".bin"])))


audio_cases = st.one_of(written_audio(), crafted_wav(), random_audio_bytes())


def audio_target(case: AudioCase, workdir: Path) -> str:
    path = workdir / f"take{case.suffix}"
    path.write_bytes(case.data)
    try:
        x = read_audio(path, announce=False)
    except AudioError:
        if case.expect is not None:
            raise Invalid("a clean, readable file was refused") from None
        return "typed"
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1 and len(x) > 0):
        raise Invalid(f"accepted audio is not 1-D float32: {getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
    if not np.all(np.isfinite(x)):
        raise Invalid("accepted audio holds NaN or infinite samples")
    if case.expect is not None and len(x) != case.expect:
        raise Invalid(f"{len(x)} samples at 16 kHz, expected {case.expect}")
    return "ok"


# -- bundles ------------------------------------------------------------------------------------------
@dataclass
class BundleCase:
    kind: str  # manifest | field | manifest_text | file | tar
    ops: Any
    rehash: bool = False  # re-derive the bundle id after editing the manifest, as a careful forger would
    must_refuse: bool = False  # a correct reader refuses it whatever it holds


FILE_OPS = ["flip", "truncate", "append", "delete", "symlink", "symlink_outside", "hardlink_outside", "extra",
            "extra_nested", "extra_dir", "manifest_symlink", "sha", "size"]
TAR_MEMBERS = ["dotdot", "absolute", "nested_dotdot", "symlink", "symlink_manifest", "hardlink", "hardlink_outside",
               "fifo", "chardev", "long_name", "empty_name"]
HARMLESS_MEMBERS = ["dir_named_like_file", "duplicate"]  # no file from a DIR entry; the last copy of a name wins

# fields the runtime reads from the manifest, edited one at a time (with the bundle id re-derived)
FIELDS = [("frontend", f) for f in ("sample_rate", "window_s", "n_fft", "win_length", "hop_length", "n_mels", "f_min",
                                    "f_max", "log_floor", "top_db")] + [
    ("encoder", "outputs"), ("encoder", "files"), ("encoder", "input_shape"), ("thresholds", "word"), ("thresholds",),
    ("heads", "word", "kind"), ("heads", "word", "graphs"), ("heads", "word"), ("heads",), ("schema_version",),
    ("frontend",), ("files",)]
field_values = st.sampled_from([0, -1, 1, 2, 41, 97, 161, 8000, 10**9, 2**63, 0.5, 1e-300, 1e300, math.nan, math.inf,
                                "x", "", None, True, [], {}, ["speaker"], ["word", "speaker"], {"x": "y.onnx"}]) | json_values

bundle_cases = st.one_of(
    st.builds(BundleCase, st.just("manifest"), json_ops, st.booleans()),
    st.builds(lambda path, value: BundleCase("field", (path, value), rehash=True), st.sampled_from(FIELDS), field_values),
    st.builds(BundleCase, st.just("manifest_text"), byte_ops | hostile_json),
    st.builds(lambda op, i, b: BundleCase("file", (op, i, b), must_refuse=op not in ("extra_dir", "hardlink_outside")),
              st.sampled_from(FILE_OPS), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
    st.builds(lambda m, i, gz: BundleCase("tar", (m, i, gz), must_refuse=m in TAR_MEMBERS),
              st.sampled_from(TAR_MEMBERS + HARMLESS_MEMBERS), st.integers(0, 10**6), st.booleans()),
    st.builds(lambda ops, gz: BundleCase("tar", (ops, None, gz)), byte_ops, st.booleans()),
)


def _listed(root: Path) -> list[str]:
    return sorted(json.loads((root / MANIFEST).read_text())["files"])


def _edit_manifest(root: Path, edit: Callable[[dict], None], rehash: bool = True) -> None:
    m = json.loads((root / MANIFEST).read_text())
    edit(m)
    if rehash:
        m["bundle_id"] = bundle_id_of(m)
    (root / MANIFEST).write_text(dumps(m))


def _set(doc: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(doc.get(key), dict):
            doc[key] = {}
        doc = doc[key]
    doc[path[-1]] = value


def _apply_file_op(root: Path, outside: Path, op: str, index: int, chunk: bytes) -> None:
    names = _listed(root)
    name = names[index % len(names)]
    p = root / name
    if op == "flip":
        data = bytearray(p.read_bytes())
        data[index % len(data)] ^= chunk[0] or 1
        p.write_bytes(bytes(data))
    elif op == "truncate":
        p.write_bytes(p.read_bytes()[: index % max(1, p.stat().st_size)])
    elif op == "append":
        p.write_bytes(p.read_bytes() + chunk)
    elif op == "delete":
        p.unlink()
    elif op in ("symlink", "symlink_outside", "hardlink_outside"):
        copy_ = outside / "copy"
        shutil.copyfile(p, copy_)
        p.unlink()
        if op == "hardlink_outside":  # a regular file with the right bytes: indistinguishable, and harmless
            os.link(copy_, p)
        else:
            p.symlink_to(copy_ if op == "symlink_outside" else os.path.relpath(copy_, p.parent))
    elif op == "extra":
        (root / f"extra{index % 5}.bin").write_bytes(chunk)
    elif op == "extra_nested":
        (root / "sub" / "dir").mkdir(parents=True, exist_ok=True)
        (root / "sub" / "dir" / "x.json").write_bytes(chunk)
    elif op == "extra_dir":  # an empty folder holds no file: still the same bundle
        (root / "empty" / "folder").mkdir(parents=True)
    elif op == "manifest_symlink":
        shutil.copyfile(root / MANIFEST, outside / MANIFEST)
        (root / MANIFEST).unlink()
        (root / MANIFEST).symlink_to(outside / MANIFEST)
    elif op == "sha":
        _edit_manifest(root, lambda m: m["files"][name].update(sha256=chunk.hex().ljust(64, "0")[:64]))
    elif op == "size":
        _edit_manifest(root, lambda m: m["files"][name].update(bytes=m["files"][name]["bytes"] + 1 + index % 9))


def _evil_tar(src: Path, dest: Path, member: str, index: int, gz: bool, escape: Path) -> None:
    """The bundle as a tar with one hostile member slipped in among the real ones."""
    with tarfile.open(dest, "w:gz" if gz else "w") as tar:
        files = sorted(p for p in src.rglob("*") if p.is_file())
        at = index % (len(files) + 1)
        for i, p in enumerate(files + [None]):
            if i == at:
                _add_member(tar, member, index, escape)
            if p is not None:
                tar.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)


def _add_member(tar: tarfile.TarFile, member: str, index: int, escape: Path) -> None:
    data = b"fuzz"
    names = {"dotdot": f"{'../' * (1 + index % 3)}{escape.name}", "absolute": str(escape),
             "nested_dotdot": f"commands/../../{escape.name}", "symlink": "evil", "symlink_manifest": MANIFEST,
             "hardlink": "evil", "hardlink_outside": "evil", "fifo": "evil", "chardev": "evil",
             "dir_named_like_file": "heads.npz", "duplicate": "heads.npz", "long_name": "x" * 300, "empty_name": ""}
    info = tarfile.TarInfo(names[member])
    if member.startswith("symlink"):
        info.type, info.linkname = tarfile.SYMTYPE, str(escape) if index % 2 else "../" + escape.name
    elif member.startswith("hardlink"):
        info.type, info.linkname = tarfile.LNKTYPE, MANIFEST if member == "hardlink" else str(escape)
    elif member == "fifo":
        info.type = tarfile.FIFOTYPE
    elif member == "chardev":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    elif member == "dir_named_like_file":
        info.type = tarfile.DIRTYPE
    if info.type == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def bundle_target(case: BundleCase, workdir: Path) -> str:
    root, outside, escape = workdir / "bundle", workdir / "outside", workdir / "escaped"
    outside.mkdir()
    shutil.copytree(default_bundle_path(), root)
    target: Path = root
    if case.kind == "manifest":
        m = mutate_json(json.loads((root / MANIFEST).read_text()), case.ops)
        if case.rehash and isinstance(m, dict):
            m["bundle_id"] = bundle_id_of(m)
        (root / MANIFEST).write_text(dumps(m))
    elif case.kind == "field":
        _edit_manifest(root, lambda m: _set(m, *case.ops))
    elif case.kind == "manifest_text":
        p = root / MANIFEST
        if isinstance(case.ops, bytes):  # a whole manifest from a byte-level fuzzer (fuzz_atheris.py)
            p.write_bytes(case.ops)
        else:
            p.write_bytes(HOSTILE_JSON[case.ops].encode() if isinstance(case.ops, str)
                          else mutate_bytes(p.read_bytes(), case.ops))
    elif case.kind == "file":
        _apply_file_op(root, outside, *case.ops)
    elif case.kind == "tar":
        member, index, gz = case.ops
        target = workdir / ("b.tar.gz" if gz else "b.tar")
        if index is None:  # byte damage to a real archive
            raw = workdir / "raw.tar"
            write_tar(root, raw)
            target.write_bytes(mutate_bytes(raw.read_bytes(), member))
        else:
            _evil_tar(root, target, member, index, gz, escape)
    scratch = workdir / "tmp"  # Bundle.open extracts archives under tempfile.gettempdir(): it must leave nothing
    scratch.mkdir()
    saved, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        return _open_bundle(target, case)
    finally:
        tempfile.tempdir = saved
        if escape.exists() or escape.is_symlink() or (workdir.parent / escape.name).exists():
            raise Invalid("a tar member was written outside the extraction folder")
        if any(scratch.iterdir()):
            raise Invalid(f"extraction left {sorted(p.name for p in scratch.iterdir())} behind")


def _open_bundle(target: Path, case: BundleCase) -> str:
    from edge_meta.device import Runtime

    try:
        Bundle.open(target).close()
    except BundleError:
        return "typed"
    if case.must_refuse:
        raise Invalid(f"{case.kind} {case.ops[0]!r}: a damaged or unsafe bundle was accepted")
    try:  # what the device does next: open the encoder and heads, embed a second of audio
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Runtime.open(target) as rt:
                emb = rt.embed([np.zeros(SAMPLE_RATE, np.float32)])
    except BundleError:
        return "typed"
    if emb.ndim != 2 or len(emb) != 1 or not np.all(np.isfinite(emb)):
        raise Invalid(f"the opened bundle embeds to {emb.shape}")
    return "ok"


# -- profile files ------------------------------------------------------------------------------------
@dataclass
class ProfileCase:
    kind: str  # json | bytes | hostile | take | raw
    ops: Any
    expect: bool = False  # True: the file must import and its words detect ("ok"), not be refused


TAKE_FIELDS = ["embedding_size", "embedding_nan", "audio_odd", "audio_empty", "audio_long", "bundle_other",
               "bundle_other_no_audio", "audio_null"]

profile_cases = st.one_of(
    st.builds(ProfileCase, st.just("json"), json_ops),
    st.builds(ProfileCase, st.just("bytes"), byte_ops),
    st.builds(ProfileCase, st.just("hostile"), hostile_json),
    st.builds(ProfileCase, st.just("take"), st.tuples(st.sampled_from(TAKE_FIELDS), st.integers(0, 10**6),
                                                     st.sampled_from([1, 64, 127, 128, 129, 256]))),
)


@lru_cache(maxsize=1)
def base_profile() -> str:
    """A real exported profile: alice's two words (kept audio) and voice, from FSDD recordings."""
    from edge_meta.device import Runtime
    from edge_meta.device.profile_file import export_profile

    clips = {d: [read_audio(FSDD / f"{d}_theo_{t}.wav", announce=False) for t in range(2)] for d in (4, 7)}
    voice = [np.concatenate([read_audio(FSDD / f"{d}_theo_{30 + i}.wav", announce=False) for d in (1, 2, 3)])
             for i in range(2)]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Runtime.open(store=":memory:") as rt:
            for d, takes in clips.items():  # two takes of a word disagree more than enrollment allows unforced
                rt.enroll_word(str(d), takes, user="alice", force=True)
            rt.enroll_voice("alice", voice)
            export_profile(rt.store, Path(tmp) / "p.json")
        return (Path(tmp) / "p.json").read_text()


def _edit_take(doc: dict, field: str, index: int, size: int) -> dict:
    entries = [e for e in doc["words"] + doc["voices"]]
    entry = entries[index % len(entries)]
    take = entry["takes"][index % len(entry["takes"])]
    rng = np.random.default_rng(index)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    if field == "embedding_size":  # every take of the entry, so they agree with each other but maybe not the bundle
        for t in entry["takes"]:
            t["embedding"] = b64(rng.normal(size=size).astype("<f4").tobytes())
    elif field == "embedding_nan":
        emb = np.frombuffer(base64.b64decode(take["embedding"]), "<f4").copy()
        emb[index % len(emb)] = np.nan
        take["embedding"] = b64(emb.tobytes())
    elif field == "audio_odd":
        take["audio"] = b64(b"\x01" * (2 * size + 1))
    elif field == "audio_empty":
        take["audio"] = ""
    elif field == "audio_long":
        take["audio"] = b64(bytes(2 * 60 * SAMPLE_RATE + 2))
    elif field == "audio_null":
        take["audio"] = None
    else:  # embedded by another bundle: re-embedded from the kept audio, or warned about when there is none
        for t in entry["takes"]:
            t["bundle_id"] = "0123456789abcdef"
            if field == "bundle_other_no_audio":
                t["audio"] = None
    return doc


def _snapshot(store) -> tuple:
    return (store.users(), [(w.label, w.user, w.speaker, w.threshold, w.embeddings.tobytes(), w.bundle_ids)
                            for w in store.words()],
            [(v.user, v.threshold, v.embeddings.tobytes()) for v in store.voices()], store.command_profiles())


def profile_target(case: ProfileCase, workdir: Path) -> str:
    from edge_meta.device import Runtime

    text = base_profile()
    if case.kind == "json":
        data = dumps(mutate_json(json.loads(text), case.ops)).encode()
    elif case.kind == "bytes":
        data = mutate_bytes(text.encode(), case.ops)
    elif case.kind == "hostile":
        data = HOSTILE_JSON[case.ops].encode()
    elif case.kind == "raw":  # a whole file from a byte-level fuzzer (fuzz_atheris.py)
        data = case.ops
    else:
        data = dumps(_edit_take(json.loads(text), *case.ops)).encode()
    path = workdir / "profile.json"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Runtime.open(store=":memory:") as rt:
            dim = rt.embed([np.zeros(SAMPLE_RATE, np.float32)]).shape[1]
            rt.store.add_word("lamp", "bob", 0.7, np.ones((2, dim), np.float32) / np.sqrt(dim), rt.bundle.bundle_id,
                              None, SAMPLE_RATE)  # bob's word was there before: a refused import must keep it as it was
            before = _snapshot(rt.store)
            try:
                rt.import_profile(path)
            except StoreError:
                if _snapshot(rt.store) != before:
                    raise Invalid("a refused profile changed the store") from None
                return "typed"
            if rt.store.db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise Invalid("the store is damaged after an import")
            det = rt.detector()  # the imported words must be usable: fitted heads, a scored second of noise
            noise = np.random.default_rng(0).normal(0, 0.05, SAMPLE_RATE).astype(np.float32)
            det.process(noise)
            det.flush()
    return "ok"


TARGETS: dict[str, tuple[Callable[[Any, Path], str], st.SearchStrategy]] = {
    "audio": (audio_target, audio_cases),
    "bundle": (bundle_target, bundle_cases),
    "profile": (profile_target, profile_cases),
}
