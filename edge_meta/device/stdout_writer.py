"""The daemon's event lines on stdout, written so that stdout can never stop the listening.

A writer thread drains a bounded queue. A reader that stops reading blocks only that thread: the queue
fills and further lines are dropped and counted (the socket and the commands still get every event, and
SIGTERM still stops the daemon). A stdout that fails (a full disk: ENOSPC; a reader gone: EPIPE) or is
closed (started with ``>&-``) is logged once and then ignored, never raised. Real files are written with
os.write on their descriptor, so nothing is left in Python's buffer to fail again at exit.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import TextIO

log = logging.getLogger("edge_meta.device")
MAX_QUEUED = 256  # lines; a few minutes of events at any real rate


class StdoutWriter:
    def __init__(self, stream: TextIO | None, max_queued: int = MAX_QUEUED) -> None:
        self.stream = stream
        self.fd = _fileno(stream)
        self.queue: queue.Queue[str] = queue.Queue(maxsize=max_queued)
        self.dropped = 0
        self.failed = stream is None
        if self.failed:
            log.warning("stdout_closed", extra={"fields": {"note": "events go only to the socket and commands"}})
        self.thread = threading.Thread(target=self._drain, name="edge-meta-stdout", daemon=True)
        self.thread.start()

    def write(self, line: str) -> None:
        """Queue one line; never blocks. Dropped (and counted, logged on the 1st, 101st, ...) while the queue is full."""
        if self.failed:
            return
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("stdout_full", extra={"fields": {"dropped": self.dropped,
                                                             "note": "nobody reads stdout; events dropped there"}})

    def close(self, timeout: float = 1.0) -> None:
        """Let the thread write what is queued, waiting at most ``timeout`` for a stuck reader."""
        try:
            self.queue.put(None, timeout=timeout)  # type: ignore[arg-type]
        except queue.Full:
            return  # a reader that stopped reading: the queued lines are dropped
        self.thread.join(timeout)

    def _drain(self) -> None:
        while True:
            line = self.queue.get()
            if line is None or self.failed:
                return
            try:
                self._write(line.encode())
            except (OSError, ValueError) as exc:  # ENOSPC, EPIPE, a closed file
                self.failed = True
                log.error("stdout_failed", extra={"fields": {"error": str(exc),
                                                             "note": "events go only to the socket and commands"}})

    def _write(self, data: bytes) -> None:
        if self.fd is None:
            self.stream.write(data.decode())
            self.stream.flush()
            return
        while data:
            data = data[os.write(self.fd, data):]


def _fileno(stream: TextIO | None) -> int | None:
    """The descriptor of a real file or pipe (None for an in-memory stream: written through its methods)."""
    try:
        return stream.fileno() if stream is not None else None
    except (AttributeError, OSError, ValueError):
        return None
