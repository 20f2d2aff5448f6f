"""The bundle: what export writes and the device opens read-only (contract in DESIGN.md).

A directory (or the same files in a ``.tar``) holding ``manifest.json`` and the files it lists.
The manifest records every file's sha256 and size; the bundle id is the sha256 of the manifest's
canonical JSON without the id itself, so any change to any file or field changes the id. Opening
verifies schema, every hash and that no file is missing or unlisted, and refuses anything else
with a message naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_meta.errors import BundleError
from edge_meta.frontend import FrontendSpec, mel_filterbank

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20
MAX_BUNDLE_BYTES = 256 << 20  # what an archive may unpack to: a compressed one must not fill the disk
MAX_BUNDLE_FILES = 1000
HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}  # .npy
HOLD_BELOW_UNMEASURED = 0.15  # the tiny encoder's hold margin, for bundles exported before the export measured it
INPUT_KINDS = ("features", "waveform", "waveform+features")  # what an encoder graph takes (`encoder_inputs`)
REBUILD_HINT = "re-export it with `edge-meta export`, or reinstall the bundle you downloaded"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def bundle_id_of(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "bundle_id"}
    return hashlib.sha256(canonical(body)).hexdigest()[:16]


def write_manifest(directory: Path, manifest: dict) -> dict:
    """Add file hashes and the bundle id to ``manifest`` and write it into ``directory``."""
    directory = Path(directory)
    files = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(directory).as_posix()
            files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": files}
    manifest["bundle_id"] = bundle_id_of(manifest)
    tmp = directory / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(directory / MANIFEST)
    return manifest


def write_tar(directory: Path, tar_path: Path) -> Path:
    """The bundle as one plain .tar (regular files only, no compression: the ONNX files barely shrink)."""
    directory = Path(directory)
    with tarfile.open(tar_path, "w") as tar:
        for p in sorted(directory.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(directory).as_posix(), recursive=False)
    return tar_path


@dataclass
class Bundle:
    """An opened, verified bundle. Files are read through `read` (checked against the manifest as they are read),
    `load_heads`, or by path (`path_of`, `encoder_files`) for the runtimes that open files themselves."""

    root: Path
    manifest: dict
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def bundle_id(self) -> str:
        return self.manifest["bundle_id"]

    @property
    def frontend(self) -> FrontendSpec:
        return FrontendSpec.from_dict(self.manifest["frontend"])

    @property
    def hold_below(self) -> float:
        """How far under its threshold a hop lets the streaming detector skip the encoder on the next hops: the
        margin the export measured for this word graph (edge_meta.export.hold), or the tiny encoder's for a
        bundle exported before it was measured."""
        return float(self.manifest.get("detector", {}).get("hold_below", HOLD_BELOW_UNMEASURED))

    def path_of(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise BundleError(f"{self.root}: the bundle has no file {name!r}", REBUILD_HINT)
        return self.root / name

    def read(self, name: str | Path) -> bytes:
        """A listed file's bytes (by name, or by the path `path_of` gave), checked against the manifest as they are
        read: what is loaded is what was verified, even if the file changed on disk since the bundle was opened."""
        if isinstance(name, Path):
            name = name.relative_to(self.root).as_posix()
        data = self.path_of(name).read_bytes()
        entry = self.manifest["files"][name]
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise BundleError(f"{self.root}: {name} changed since the bundle was opened (its sha256 no longer matches "
                              "the manifest)", REBUILD_HINT)
        return data

    def encoder_inputs(self, backend: str, precision: str = "int8") -> list[str]:
        """What each of `encoder_files`' graphs takes: "features" (log-mel, the default), "waveform", or
        "waveform+features" (two inputs in that order: the trunk flavour's fused word graph)."""
        return [e.get("input", "features") for e in self.manifest["encoder"]["files"]
                if e["backend"] == backend and e["precision"] == precision]

    def encoder_files(self, backend: str, precision: str = "int8") -> list[tuple[Path, list[str]]]:
        """The graph files of one encoder format and the outputs each computes: one file for all outputs, or
        one per output when export split a pair graph (so the device can run the speaker trunk only when needed)."""
        outputs = self.manifest["encoder"].get("outputs", ["word"])
        parts = [(self.path_of(e["file"]), e.get("outputs", outputs)) for e in self.manifest["encoder"]["files"]
                 if e["backend"] == backend and e["precision"] == precision]
        if not parts:
            have = sorted({f"{e['backend']}/{e['precision']}" for e in self.manifest["encoder"]["files"]})
            raise BundleError(f"{self.root}: no {backend} {precision} encoder in this bundle (it has {have})",
                              "pick another backend or precision, or re-export with that format")
        covered = [o for _, outs in parts for o in outs]
        if sorted(covered) != sorted(outputs):
            raise BundleError(f"{self.root}: the {backend} {precision} encoder files compute {covered}, "
                              f"not the manifest's outputs {outputs} once each", REBUILD_HINT)
        return parts

    def load_heads(self) -> dict[str, np.ndarray]:
        """The head arrays; each array's header must agree with the bytes stored for it (a 4 MB file whose headers
        asked for 4 GiB was allocated first), and all of them fit in a bundle's size."""
        path = self.path_of("heads.npz")
        arrays, total = {}, 0
        try:
            with zipfile.ZipFile(io.BytesIO(self.read("heads.npz"))) as npz:
                for info in npz.infolist():
                    with npz.open(info) as f:
                        version = np.lib.format.read_magic(f)
                        if version not in HEADERS:
                            raise ValueError(f"{info.filename}: .npy format {version} (expected {sorted(HEADERS)})")
                        shape, fortran, dtype = HEADERS[version](f)
                        nbytes = math.prod(shape) * dtype.itemsize
                        total += nbytes
                        if dtype.hasobject or nbytes != info.file_size - f.tell() or total > MAX_BUNDLE_BYTES:
                            raise ValueError(f"{info.filename} claims {shape} {dtype}, not what it stores")
                        data = np.frombuffer(f.read(nbytes), dtype=dtype)
                    arrays[info.filename.removesuffix(".npy")] = data.reshape(shape, order="F" if fortran else "C")
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise BundleError(f"{path}: unreadable heads file ({exc})", REBUILD_HINT) from None
        return arrays

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @classmethod
    def open(cls, path: str | Path) -> "Bundle":
        path = Path(path)
        if not path.exists():
            raise BundleError(f"{path}: no such bundle", "give the bundle directory or .tar made by `edge-meta export`")
        if path.is_file():
            tmp = tempfile.TemporaryDirectory(prefix="edge-meta-bundle-")
            try:
                _safe_extract(path, Path(tmp.name))
                return cls._open_dir(Path(tmp.name), label=path, tmp=tmp)
            except BaseException:
                tmp.cleanup()
                raise
        return cls._open_dir(path, label=path)

    @classmethod
    def _open_dir(cls, root: Path, label: Path, tmp: tempfile.TemporaryDirectory | None = None) -> "Bundle":
        mpath = root / MANIFEST
        if mpath.is_symlink():
            raise BundleError(f"{label}: {MANIFEST} is a link; bundles hold regular files only", REBUILD_HINT)
        if not mpath.is_file():
            raise BundleError(f"{label}: not a bundle ({MANIFEST} is missing)", REBUILD_HINT)
        if mpath.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{label}: {MANIFEST} is implausibly large", REBUILD_HINT)
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5000-digit number, nesting too deep
            raise BundleError(f"{label}: {MANIFEST} is not valid JSON ({str(exc)[:200]})", REBUILD_HINT) from None
        _check_manifest(manifest, label)
        listed = manifest["files"]
        present = set()
        for p in root.rglob("*"):  # rglob does not descend into a linked folder: refuse every link, listed or not
            name = p.relative_to(root).as_posix()
            if p.is_symlink():
                raise BundleError(f"{label}: {name} is a link; bundles hold regular files only", REBUILD_HINT)
            if p.is_file() and p.name != MANIFEST:
                present.add(name)
            elif not p.is_dir() and p.name != MANIFEST:
                raise BundleError(f"{label}: {name} is not a regular file", REBUILD_HINT)
        missing = sorted(set(listed) - present)
        if missing:
            raise BundleError(f"{label}: file {missing[0]} is missing from the bundle", REBUILD_HINT)
        extra = sorted(present - set(listed))
        if extra:
            raise BundleError(f"{label}: file {extra[0]} is not listed in {MANIFEST} (tampered?)", REBUILD_HINT)
        for name, entry in sorted(listed.items()):
            p = root / name
            if p.stat().st_size != entry["bytes"] or sha256_file(p) != entry["sha256"]:
                raise BundleError(f"{label}: {name} is damaged (its sha256 does not match the manifest)", REBUILD_HINT)
        if bundle_id_of(manifest) != manifest["bundle_id"]:
            raise BundleError(f"{label}: {MANIFEST} was edited after export (bundle id mismatch)", REBUILD_HINT)
        return cls(root, manifest, tmp)


def _check_manifest(m: Any, label: Path) -> None:
    if not isinstance(m, dict):
        raise BundleError(f"{label}: {MANIFEST} is not a JSON object", REBUILD_HINT)
    version = m.get("schema_version")
    if not isinstance(version, int):
        raise BundleError(f"{label}: {MANIFEST} has no schema_version", REBUILD_HINT)
    if version > SCHEMA_VERSION:
        raise BundleError(f"{label}: bundle schema {version} is newer than this edge-meta understands ({SCHEMA_VERSION})",
                          "upgrade edge-meta on the device: pip install -U 'edge-meta[device]'")
    if version < 1:
        raise BundleError(f"{label}: unknown bundle schema {version}", REBUILD_HINT)
    required = {"bundle_id": str, "files": dict, "frontend": dict, "encoder": dict, "heads": dict}
    for key, typ in required.items():
        if not isinstance(m.get(key), typ):
            raise BundleError(f"{label}: {MANIFEST} field {key!r} is missing or malformed", REBUILD_HINT)
    for name, entry in m["files"].items():
        if (not isinstance(name, str) or name.startswith("/") or ".." in Path(name).parts
                or not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or not isinstance(entry.get("bytes"), int)):
            raise BundleError(f"{label}: {MANIFEST} lists an invalid file entry {name!r}", REBUILD_HINT)
    files = m["encoder"].get("files")
    if not isinstance(files, list) or not all(
            isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("backend", "precision", "file"))
            and isinstance(e.get("outputs", []), list) and all(isinstance(o, str) for o in e.get("outputs", []))
            and e.get("input", "features") in INPUT_KINDS
            for e in files):
        raise BundleError(f"{label}: {MANIFEST} field 'encoder.files' is malformed", REBUILD_HINT)
    # the other fields the runtime reads, so a malformed one is refused here rather than failing later
    outputs = m["encoder"].get("outputs", ["word"])
    word = m["heads"].get("word")
    if not isinstance(word, dict) or not isinstance(word.get("kind"), str):
        raise BundleError(f"{label}: {MANIFEST} field 'heads.word' is missing or malformed", REBUILD_HINT)
    graphs = word.get("graphs", {})
    thresholds = m.get("thresholds", {})
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs) or "word" not in outputs:
        raise BundleError(f"{label}: {MANIFEST} field 'encoder.outputs' is malformed", REBUILD_HINT)
    if not isinstance(graphs, dict) or not all(isinstance(v, str) for v in graphs.values()):
        raise BundleError(f"{label}: {MANIFEST} field 'heads.word.graphs' is malformed", REBUILD_HINT)
    if not isinstance(thresholds, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in thresholds.values()):
        raise BundleError(f"{label}: {MANIFEST} field 'thresholds' is malformed", REBUILD_HINT)
    detector = m.get("detector", {})
    hold = detector.get("hold_below", HOLD_BELOW_UNMEASURED) if isinstance(detector, dict) else None
    if isinstance(hold, bool) or not isinstance(hold, (int, float)) or not 0 < hold <= 2:
        raise BundleError(f"{label}: {MANIFEST} field 'detector.hold_below' is malformed", REBUILD_HINT)
    try:
        mel_filterbank(FrontendSpec.from_dict(m["frontend"]))  # every mel filter must cover an FFT bin
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{label}: {MANIFEST} has an invalid frontend spec ({exc})", REBUILD_HINT) from None


def _safe_extract(tar_path: Path, dest: Path) -> None:
    """Extract regular files only; refuse absolute paths, '..', links, devices, and archives that would unpack to
    more than a bundle can hold (checked on the headers, before anything is written)."""
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members, unpacked = [], 0
            while (member := tar.next()) is not None:  # header by header: a million tiny entries stop at the cap
                members.append(member)
                unpacked += member.size if member.isfile() else 0
                if unpacked > MAX_BUNDLE_BYTES or len(members) > MAX_BUNDLE_FILES:
                    raise BundleError(f"{tar_path}: would unpack to more than a bundle holds ({MAX_BUNDLE_BYTES >> 20} "
                                      f"MB, {MAX_BUNDLE_FILES} files)", REBUILD_HINT)
            for member in members:
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts or "\0" in member.name:
                    raise BundleError(f"{tar_path}: refuses the unsafe path {member.name!r}", REBUILD_HINT)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BundleError(f"{tar_path}: refuses {member.name!r}: only regular files are allowed", REBUILD_HINT)
                target = dest / Path(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise BundleError(f"{tar_path}: cannot read {member.name!r}", REBUILD_HINT)
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError, io.UnsupportedOperation) as exc:
        raise BundleError(f"{tar_path}: not a readable bundle archive ({exc})", REBUILD_HINT) from None
