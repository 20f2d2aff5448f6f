"""Structured logs for the daemon: one JSON object per line on stderr (journald keeps them as they are).

Modules log with the standard `logging` module under "edge_meta.device", a short event name as the
message and their fields in ``extra={"fields": {...}}``:

    log.warning("microphone_lost", extra={"fields": {"device": "hw:1,0"}})
    -> {"ts": "2026-11-25T12:00:00.123+00:00", "level": "warning", "event": "microphone_lost", "device": "hw:1,0"}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import TextIO

LOGGER = "edge_meta.device"


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "event": record.getMessage()}
        doc.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(doc, default=str)


def setup(level: str = "info", stream: TextIO | None = None) -> logging.Logger:
    """Send the device loggers' records to ``stream`` (stderr) as JSON lines."""
    log = logging.getLogger(LOGGER)
    log.handlers.clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines())
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False
    return log
