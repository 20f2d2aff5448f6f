"""`edge-meta demo`: the whole device story in one run, with nothing to download.

Opens the bundle shipped in the package, enrolls three words a user recorded three times each,
streams a recording of that user saying them among other words (theirs and other people's), and
prints every detection and how it compares with where the words really are.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from edge_meta.device.runtime import Runtime
from edge_meta.device.sources import WavSource
from edge_meta.resources import samples_path


def score_detections(detections, truth: list[dict]) -> dict[str, int]:
    """Hits (right word, overlapping its true time), misses, wrong-word and false alarms."""
    used, hits, wrong, false_alarms = set(), 0, 0, 0
    for d in detections:
        match = next((i for i, w in enumerate(truth)
                      if i not in used and w["start_s"] < d.end_s and w["end_s"] > d.start_s and w["keyword"]
                      and w["word"] == d.label), None)
        if match is not None:
            used.add(match)
            hits += 1
        elif any(w["start_s"] < d.end_s and w["end_s"] > d.start_s and w["keyword"] for w in truth):
            wrong += 1
        else:
            false_alarms += 1
    keywords = sum(w["keyword"] for w in truth)
    return {"keywords": keywords, "hits": hits, "misses": keywords - hits, "wrong_word": wrong, "false_alarms": false_alarms}


def run_demo(bundle: str | Path | None = None) -> int:
    samples = samples_path()
    truth = json.loads((samples / "stream.json").read_text())
    with tempfile.TemporaryDirectory() as tmp, Runtime.open(bundle, store=Path(tmp) / "profiles.db") as rt:
        m = rt.bundle.manifest
        print(f"bundle {rt.bundle.bundle_id}: {m['heads']['word']['learner']} on {m['encoder']['name']}, "
              f"int8 ONNX, {sum(f['bytes'] for f in m['files'].values()) / 1024:.0f} KB")
        print(f"\nenrolling {len(truth['keywords'])} new words for user {truth['user']!r} (3 takes each):")
        for word in truth["keywords"]:
            takes = sorted((samples / "enroll").glob(f"{word}_*.flac"))
            t = time.perf_counter()
            w = rt.enroll_word(word, takes, user=truth["user"])
            print(f"  {word!r:8} threshold {w.calibration.threshold:.3f}  takes held out score "
                  f"{w.calibration.held_out:.3f}  ({1000 * (time.perf_counter() - t):.0f} ms)")

        source = WavSource(samples / "stream.flac")
        duration = source.duration_s
        print(f"\nstreaming {source.path.name} ({duration:.1f} s: {len(truth['words'])} spoken words, "
              f"{sum(w['keyword'] for w in truth['words'])} of them enrolled):")
        det = rt.detector()
        t = time.perf_counter()
        detections = []
        for chunk in source.chunks():
            detections += det.process(chunk)
        detections += det.flush()
        elapsed = time.perf_counter() - t
        for d in detections:
            said = [w["word"] for w in truth["words"] if w["start_s"] < d.end_s and w["end_s"] > d.start_s]
            print(f"  {d.start_s:6.2f}-{d.end_s:5.2f} s  detected {d.label!r:8} score {d.score:.3f}   (said: {', '.join(said) or 'nothing'})")

    s = score_detections(detections, truth["words"])
    print(f"\nresult: {s['hits']}/{s['keywords']} enrolled words found, {s['misses']} missed, "
          f"{s['wrong_word']} confused, {s['false_alarms']} false alarms on "
          f"{len(truth['words']) - s['keywords']} other words")
    print(f"cost: {elapsed:.2f} s for {duration:.1f} s of audio ({duration / max(elapsed, 1e-9):.0f}x real time), "
          f"encoder ran on {det.encoder_calls} of {det.hops} hops (the rest: below the energy gate, or held)")
    return 0
