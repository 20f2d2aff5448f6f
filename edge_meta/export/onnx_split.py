"""One ONNX graph per output, when the outputs come from separate encoders (a word/speaker pair).

onnxruntime runs every node of a graph whatever outputs are asked for, so a pair graph costs both
trunks on every hop even though the device needs the speaker trunk only when a word is about to
fire. Cut after quantisation, each part is exactly the nodes its output depends on, with the same
weights and the same quantisation parameters: the parts' outputs equal the whole graph's bit for bit.
A graph whose outputs share a trunk is not split (each part would repeat it).

    python -m edge_meta.export.onnx_split BUNDLE_DIR    split a bundle's int8 ONNX encoder in place
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.utils

from edge_meta.bundle import MANIFEST, Bundle, write_manifest
from edge_meta.errors import BundleError

MAX_SHARED = 0.1  # the parts may share at most this fraction of the smaller part's nodes (the input's Q/DQ)


def _part_nodes(model: onnx.ModelProto, output: str) -> set[int]:
    """Indices of the nodes ``output`` depends on."""
    producer = {name: i for i, node in enumerate(model.graph.node) for name in node.output}
    seen: set[int] = set()
    todo = [output]
    while todo:
        i = producer.get(todo.pop())
        if i is None or i in seen:
            continue
        seen.add(i)
        todo.extend(model.graph.node[i].input)
    return seen


def separable(path: Path, outputs: list[str]) -> bool:
    """True when every pair of outputs shares (almost) no nodes, so one graph per output costs nothing extra."""
    if len(outputs) < 2:
        return False
    model = onnx.load(str(path))
    parts = [_part_nodes(model, o) for o in outputs]
    return all(len(a & b) <= MAX_SHARED * min(len(a), len(b))
               for i, a in enumerate(parts) for b in parts[i + 1:])


def split_by_output(path: Path, outputs: list[str], input_name: str) -> list[dict]:
    """Write ``<stem>.<output>.onnx`` beside ``path`` for each output and check each against the whole graph on
    random features; returns the files (name, outputs). ``path`` itself is left for the caller to remove."""
    import onnxruntime as ort

    whole = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 2 for d in whole.get_inputs()[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = dict(zip(outputs, whole.run(outputs, {input_name: x})))
    parts = []
    for output in outputs:
        part = path.with_name(f"{path.stem}.{output}.onnx")
        onnx.utils.extract_model(str(path), str(part), [input_name], [output])
        got = ort.InferenceSession(str(part), providers=["CPUExecutionProvider"]).run([output], {input_name: x})[0]
        if not np.array_equal(got, want[output]):
            raise RuntimeError(f"{part.name}: the split graph's {output!r} differs from the whole graph's")
        parts.append({"file": part.name, "outputs": [output]})
    return parts


def split_entry(directory: Path, entry: dict, outputs: list[str], input_name: str) -> list[dict]:
    """The encoder file entries to list instead of ``entry`` (a manifest's ``encoder.files`` item in
    ``directory``): one per output, with the whole graph removed, when its outputs are separable; else itself."""
    path = directory / entry["file"]
    if not separable(path, outputs):
        return [entry]
    parts = split_by_output(path, outputs, input_name)
    path.unlink()
    return [{**entry, **part} for part in parts]


def split_bundle(directory: Path) -> bool:
    """Replace a bundle's int8 ONNX pair graph by one graph per output and rewrite its manifest (a new bundle id:
    stores re-embed their kept audio, to the same embeddings). False when there is nothing to split."""
    manifest = Bundle.open(directory).manifest
    entries = manifest["encoder"]["files"]
    whole = [e for e in entries if e["backend"] == "onnx" and e["precision"] == "int8" and "outputs" not in e]
    if not whole:
        return False
    entry, at = whole[0], entries.index(whole[0])
    parts = split_entry(directory, entry, manifest["encoder"].get("outputs", ["word"]), manifest["encoder"]["input"])
    if parts == [entry]:
        return False
    manifest["encoder"]["files"] = entries[:at] + parts + entries[at + 1:]
    manifest.setdefault("provenance", {})["split_from"] = {entry["file"]: manifest["files"][entry["file"]]["sha256"]}
    write_manifest(directory, {k: v for k, v in manifest.items() if k not in ("files", "bundle_id")})
    Bundle.open(directory)  # verifies what was written
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="bundle directory (a .tar: unpack it first)")
    args = p.parse_args(argv)
    if not (args.bundle / MANIFEST).is_file():
        print(f"error: {args.bundle}: not a bundle directory ({MANIFEST} is missing)", file=sys.stderr)
        return 2
    try:
        changed = split_bundle(args.bundle)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.bundle}: " + ("int8 ONNX encoder split into one graph per output, new bundle id "
                                f"{Bundle.open(args.bundle).bundle_id}" if changed else "nothing to split"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
