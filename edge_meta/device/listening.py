"""What every listener (the daemon, the Wyoming service) shares around the detector: the refusal to
listen with nothing enrolled, a detector step that outlives a bad chunk, rate-limited error logs, and
the peak memory it reports when it stops."""

from __future__ import annotations

import logging

import numpy as np

from edge_meta.device.detector import Detection, StreamingDetector
from edge_meta.device.runtime import Runtime
from edge_meta.device.scorer import Vocabulary
from edge_meta.errors import StoreError

log = logging.getLogger("edge_meta.device")
REPEAT_LOG_EVERY = 100  # a recurring error is logged on its 1st, 101st, ... occurrence


def enrolled_vocabulary(rt: Runtime) -> Vocabulary:
    """The words the detector will listen for, or a StoreError when there are none (nothing could ever fire)."""
    vocab = rt.vocabulary()[0]
    if not vocab.keys:
        raise StoreError(f"no usable words are enrolled in {rt.store.path}",
                         "enroll one first: edge-meta device enroll-word WORD --from a.wav b.wav c.wav")
    return vocab


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since it started (Linux VmHWM; unlike ru_maxrss, not inflated by
    the parent that spawned it)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


class RepeatedErrors:
    """Logs an error that may recur every block on its 1st, 101st, ... occurrence, with its count, so a stuck
    fault cannot flood the journal."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str, message: str) -> None:
        n = self.counts[kind] = self.counts.get(kind, 0) + 1
        if n % REPEAT_LOG_EVERY == 1:
            log.error(kind, extra={"fields": {"error": message, "count": n}})


def guarded_process(detector: StreamingDetector, chunk: np.ndarray, errors: RepeatedErrors) -> list[Detection]:
    """Detections from one chunk; a bad chunk (NaN, a failed encoder call) is logged and skipped, because a
    listener must outlive any single bad frame."""
    try:
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(x)):
            errors("bad_audio", "chunk holds NaN or infinite samples; replaced by silence")
            x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
        return detector.process(x)
    except Exception as exc:  # noqa: BLE001 - the listener must outlive any single bad frame
        errors("frame_failed", f"{type(exc).__name__}: {exc}")
        return []
