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


def test_an_unlisted_linked_folder_is_refused(bundle_dir, tmp_path):
    """rglob does not descend into a linked folder, so its files were neither listed nor checked, and it passed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "graph.onnx").write_bytes(b"not from the export")
    (bundle_dir / "extra").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BundleError, match="extra is a link"):
        Bundle.open(bundle_dir)


def test_an_archive_of_a_million_entries_is_refused_after_reading_a_bundles_worth(bundle_dir, tmp_path, monkeypatch):
    """Every header was read before the count was checked (a 6 MB tar.gz of 1 M entries: 480 MB, 20 s): now reading
    stops at the first entry past the cap. Here 5000 entries against a cap of 50."""
    import edge_meta.bundle as bundle_module

    many = tmp_path / "many.tar.gz"
    with tarfile.open(many, "w:gz") as tar:
        for i in range(5000):
            tar.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_FILES", 50)
    read = []
    real_next = tarfile.TarFile.next
    monkeypatch.setattr(tarfile.TarFile, "next", lambda self: read.append(1) or real_next(self))
    with pytest.raises(BundleError, match="more than a bundle holds"):
        Bundle.open(many)
    assert len(read) <= 50 + 2  # the cap and the entry past it; tarfile.open also asks for the first one


def test_a_nul_in_an_archive_path_is_refused_not_a_traceback(tmp_path):
    nul = tmp_path / "nul.tar"
    with tarfile.open(nul, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("h" * 120 + "\0.onnx")  # a long name: stored in a PAX record, NUL and all
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(BundleError, match="unsafe path"):
        Bundle.open(nul)


def test_heads_whose_headers_ask_for_more_than_they_store_are_refused_before_allocating(bundle_dir):
    """A 1 GiB array claimed in a few bytes of heads.npz was allocated first (4 GiB in the review)."""
    import tracemalloc
    import zipfile

    heads = bundle_dir / "heads.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
    with zipfile.ZipFile(heads, "w") as z:
        z.writestr("background.word.npy", header.getvalue() + b"\0" * 64)
    m = json.loads((bundle_dir / MANIFEST).read_text())
    write_manifest(bundle_dir, {k: v for k, v in m.items() if k not in ("files", "bundle_id")})
    b = Bundle.open(bundle_dir)
    tracemalloc.start()
    with pytest.raises(BundleError, match="heads.npz: unreadable heads file .*claims"):
        b.load_heads()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def test_head_arrays_that_do_not_fit_the_encoder_are_refused_at_open(tmp_path):
    """The shipped bundle with a background bank one value too wide: the first enrollment failed with a matmul
    traceback; now opening refuses it naming heads.npz."""
    from edge_meta.device import Runtime

    bundle = shipped_copy(tmp_path)
    with np.load(bundle / "heads.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["background.word"] = np.pad(arrays["background.word"], ((0, 0), (0, 1)))
    np.savez(bundle / "heads.npz", **arrays)
    remanifest(bundle)
    with pytest.raises(BundleError, match="heads.npz: the prototype head does not fit .*background.word has shape"):
        Runtime.open(bundle)


def shipped_copy(tmp_path):
    from edge_meta.resources import default_bundle_path

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    return bundle


def remanifest(bundle):
    """Re-hash the files after an edit, as an attacker with write access to the folder could."""
    m = json.loads((bundle / MANIFEST).read_text())
    write_manifest(bundle, {k: v for k, v in m.items() if k not in ("files", "bundle_id")})


def test_the_command_model_loads_only_listed_files_and_only_as_verified(tmp_path):
    """vocab.json could point the grammar (or the graphs) outside the bundle, unhashed: an outside edit turned
    "lights on" into open_front_door under the same bundle id. And the model was read at first use: a file changed
    after the bundle was verified was loaded as it was then."""
    from edge_meta.device.commands import CommandModel

    bundle = shipped_copy(tmp_path)
    outside = tmp_path / "grammar.json"
    grammar = json.loads((bundle / "commands" / "grammar.json").read_text())
    outside.write_text(json.dumps(grammar))
    vocab = json.loads((bundle / "commands" / "vocab.json").read_text())
    for pointer in ("../../grammar.json", str(outside), "../heads.npz"):
        (bundle / "commands" / "vocab.json").write_text(json.dumps({**vocab, "grammar": pointer}))
        remanifest(bundle)
        with pytest.raises(BundleError, match="not a file name in the command model's folder"):
            CommandModel.from_bundle(Bundle.open(bundle))
    (bundle / "commands" / "vocab.json").write_text(json.dumps(vocab))
    remanifest(bundle)
    b = Bundle.open(bundle)
    assert CommandModel.from_bundle(b).grammar.intents[0].name == grammar["intents"][0]["name"]
    grammar["intents"][0]["name"] = "open_front_door"
    (bundle / "commands" / "grammar.json").write_text(json.dumps(grammar))  # after open, before first use
    with pytest.raises(BundleError, match="commands/grammar.json changed since the bundle was opened"):
        CommandModel.from_bundle(b)


@pytest.mark.parametrize("file, text", [
    ("vocab.json", "[]"),
    ("vocab.json", '{"format": "edge-meta-commands/1"}'),
    ("vocab.json", "not json"),
    ("vocab.json", "VOCAB|vocabulary=5"),
    ("vocab.json", "VOCAB|hidden=\"wide\""),
    ("vocab.json", "VOCAB|graphs=[]"),
    ("grammar.json", "{}"),
    ("grammar.json", '{"intents": [{"name": "x", "templates": [3]}], "synonyms": {}, "slots": {}, '
                     '"function_words": [], "prefixes": [], "suffixes": []}'),
    ("lm.onnx", "not a graph"),
])
def test_malformed_command_files_are_a_bundle_error_not_a_traceback(tmp_path, file, text):
    from edge_meta.device.commands import CommandModel

    bundle = shipped_copy(tmp_path)
    path = bundle / "commands" / file
    if text.startswith("VOCAB|"):
        key, value = text[len("VOCAB|"):].split("=", 1)
        text = json.dumps({**json.loads(path.read_text()), key: json.loads(value)})
    path.write_text(text)
    remanifest(bundle)
    with pytest.raises(BundleError, match="commands"):
        CommandModel.from_bundle(Bundle.open(bundle))


@pytest.mark.parametrize("backend, swap", [("onnx", ("encoder.int8.word.onnx", "encoder.int8.speaker.onnx")),
                                           ("tflite", ("encoder.int8.tflite", "encoder.int8.word.onnx"))])
def test_an_encoder_swapped_after_the_bundle_was_verified_is_refused(tmp_path, backend, swap):
    """The runtimes opened the encoder by path after the bundle was verified, so a file changed in between was
    opened as it then was (here another file of the bundle; the output-name check caught that one by luck, an
    edit of the weights would have loaded). Now the bytes loaded are the bytes checked against the manifest."""
    from edge_meta.device.backends import open_backend

    bundle = shipped_copy(tmp_path)
    b = Bundle.open(bundle)
    target, source = swap
    shutil.copy(bundle / source, bundle / target)
    with pytest.raises(BundleError, match=f"{target} changed since the bundle was opened"):
        open_backend(b, backend)
