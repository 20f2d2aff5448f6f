"""The bundle contract: verified on open, refused with a message naming the file when damaged."""

import io
import json
import shutil
import tarfile

import numpy as np
import pytest

from edge_meta.bundle import MANIFEST, SCHEMA_VERSION, Bundle, write_manifest, write_tar
from edge_meta.errors import BundleError
from edge_meta.frontend import FrontendSpec


@pytest.fixture()
def bundle_dir(tmp_path):
    d = tmp_path / "bundle"
    d.mkdir()
    (d / "encoder.int8.onnx").write_bytes(bytes(range(256)) * 40)
    np.savez(d / "heads.npz", **{"word.temperature": np.float32(10.0), "background.word": np.eye(4, dtype=np.float16)})
    write_manifest(d, {"frontend": FrontendSpec().to_dict(), "heads": {"word": {"kind": "prototype"}},
                       "encoder": {"files": [{"backend": "onnx", "precision": "int8", "file": "encoder.int8.onnx"}]}})
    return d


def test_a_good_bundle_opens_and_exposes_its_parts(bundle_dir):
    b = Bundle.open(bundle_dir)
    assert b.manifest["schema_version"] == SCHEMA_VERSION
    assert b.frontend == FrontendSpec()
    assert [(p.name, outs) for p, outs in b.encoder_files("onnx", "int8")] == [("encoder.int8.onnx", ["word"])]
    assert float(b.load_heads()["word.temperature"]) == 10.0
    with pytest.raises(BundleError, match="no tflite int8 encoder"):
        b.encoder_files("tflite", "int8")


def test_split_encoder_files_must_cover_the_outputs_once(bundle_dir):
    """A pair graph split into one file per output lists which output each computes; files that leave an output
    out, or compute one twice, are refused at open of the encoder, naming what they compute."""
    (bundle_dir / "encoder.int8.onnx").rename(bundle_dir / "encoder.int8.word.onnx")
    (bundle_dir / "encoder.int8.speaker.onnx").write_bytes(b"s" * 100)
    m = json.loads((bundle_dir / MANIFEST).read_text())
    parts = [{"backend": "onnx", "precision": "int8", "file": f"encoder.int8.{o}.onnx"} for o in ("word", "speaker")]
    for outs, ok in ((["word", "speaker"], True), (["word", "word"], False)):
        m["encoder"] = {"outputs": ["word", "speaker"], "files": [{**p, "outputs": [o]} for p, o in zip(parts, outs)]}
        write_manifest(bundle_dir, {k: v for k, v in m.items() if k not in ("files", "bundle_id")})
        b = Bundle.open(bundle_dir)
        if ok:
            assert [(p.name, o) for p, o in b.encoder_files("onnx", "int8")] == [
                ("encoder.int8.word.onnx", ["word"]), ("encoder.int8.speaker.onnx", ["speaker"])]
        else:
            with pytest.raises(BundleError, match=r"compute \['word', 'word'\], not the manifest's outputs"):
                b.encoder_files("onnx", "int8")
    m["encoder"]["files"][0]["outputs"] = "word"
    write_manifest(bundle_dir, {k: v for k, v in m.items() if k not in ("files", "bundle_id")})
    with pytest.raises(BundleError, match="'encoder.files' is malformed"):
        Bundle.open(bundle_dir)


def test_flipped_byte_is_refused_naming_the_file(bundle_dir):
    p = bundle_dir / "encoder.int8.onnx"
    data = bytearray(p.read_bytes())
    data[100] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="encoder.int8.onnx is damaged"):
        Bundle.open(bundle_dir)


def test_missing_and_unlisted_files_are_refused(bundle_dir, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(bundle_dir, other)
    (bundle_dir / "heads.npz").unlink()
    with pytest.raises(BundleError, match="heads.npz is missing"):
        Bundle.open(bundle_dir)
    (other / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="extra.bin is not listed"):
        Bundle.open(other)


def test_edited_manifest_is_refused(bundle_dir):
    m = json.loads((bundle_dir / MANIFEST).read_text())
    m["thresholds"] = {"word": 0.0}
    (bundle_dir / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="edited after export"):
        Bundle.open(bundle_dir)


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"schema_version": 1}', "'bundle_id' is missing"),
])
def test_malformed_manifest_is_refused(bundle_dir, text, match):
    (bundle_dir / MANIFEST).write_text(text)
    with pytest.raises(BundleError, match=match):
        Bundle.open(bundle_dir)


def test_newer_schema_asks_for_an_upgrade(bundle_dir):
    m = json.loads((bundle_dir / MANIFEST).read_text())
    m["schema_version"] = SCHEMA_VERSION + 1
    (bundle_dir / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="newer than this edge-meta") as err:
        Bundle.open(bundle_dir)
    assert "pip install -U" in err.value.hint


def test_missing_bundle_and_non_bundle_directory(tmp_path):
    with pytest.raises(BundleError, match="no such bundle"):
        Bundle.open(tmp_path / "nope")
    with pytest.raises(BundleError, match="manifest.json is missing"):
        Bundle.open(tmp_path)


def test_tar_round_trip_and_unsafe_archives(bundle_dir, tmp_path, monkeypatch):
    tar_path = write_tar(bundle_dir, tmp_path / "b.tar")
    b = Bundle.open(tar_path)
    assert b.bundle_id == Bundle.open(bundle_dir).bundle_id
    b.close()

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(BundleError, match="unsafe path"):
        Bundle.open(evil)
    assert not (tmp_path / "escape.txt").exists()

    linked = tmp_path / "link.tar"
    with tarfile.open(linked, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(BundleError, match="only regular files"):
        Bundle.open(linked)

    import edge_meta.bundle as bundle_module  # a compressed archive that would unpack past the cap: refused first
    gz = tmp_path / "bundle.tar.gz"
    with tarfile.open(gz, "w:gz") as tar:
        tar.add(bundle_dir, arcname=".")
    Bundle.open(gz).close()
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 5_000)  # the 10 KB encoder file is over it
    with pytest.raises(BundleError, match="would unpack to"):
        Bundle.open(gz)

    truncated = tmp_path / "trunc.tar"
    truncated.write_bytes(tar_path.read_bytes()[:700])
    with pytest.raises(BundleError):
        Bundle.open(truncated)
