"""The daemon's configuration file (TOML; `device/device.toml` is the annotated example).

Every key is checked: a misspelt key or a wrong type is refused with the file, the key and the fix,
rather than silently ignored. Command-line options override the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_meta.device.detector import DetectorConfig
from edge_meta.config_file import read_toml
from edge_meta.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class CommandRule:
    """Run ``run`` (an argument list, no shell) when ``word`` is detected (and, if given, ``speaker`` spoke it)."""

    word: str
    run: tuple[str, ...]
    speaker: str | None = None

    def matches(self, event: dict) -> bool:
        return event["word"] == self.word and (self.speaker is None or event.get("speaker") == self.speaker)


@dataclass
class DeviceConfig:
    bundle: str | None = None
    store: str | None = None
    backend: str = "onnx"
    precision: str = "int8"
    threads: int = 1
    input: str = "mic"  # "mic", a file path, or "-" for raw PCM on stdin
    mic_device: str | int | None = None
    block_s: float = 0.2  # audio per wake-up: the detector still scores every hop_s; longer = less CPU, more latency
    socket: str | None = None
    log_level: str = "info"
    wyoming_uri: str = "tcp://127.0.0.1:10400"  # `edge-meta device wyoming`: loopback unless wyoming_lan
    wyoming_lan: bool = False
    wyoming_zeroconf: bool = False
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    commands: list[CommandRule] = field(default_factory=list)


SECTIONS: dict[str, dict[str, tuple[str, type | tuple[type, ...]]]] = {
    # section -> key -> (DeviceConfig attribute, accepted TOML types)
    "runtime": {"bundle": ("bundle", str), "store": ("store", str), "backend": ("backend", str),
                "precision": ("precision", str), "threads": ("threads", int)},
    "input": {"source": ("input", str), "device": ("mic_device", (str, int)), "block_s": ("block_s", (float, int))},
    "daemon": {"socket": ("socket", str), "log_level": ("log_level", str)},
    "wyoming": {"uri": ("wyoming_uri", str), "lan": ("wyoming_lan", bool), "zeroconf": ("wyoming_zeroconf", bool)},
}


def _fail(path: Path, where: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {problem}", fix)


def load_config(path: str | Path) -> DeviceConfig:
    doc = read_toml(path, "device/device.toml")
    cfg = DeviceConfig()
    known = set(SECTIONS) | {"detector", "commands"}
    for section in doc:
        if section not in known:
            raise _fail(path, section, "unknown section", f"use only {sorted(known)}")
    for section, keys in SECTIONS.items():
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise _fail(path, section, "expected a [section]", "see device/device.toml")
        for key, value in table.items():
            if key not in keys:
                raise _fail(path, f"{section}.{key}", "unknown key", f"{section} takes {sorted(keys)}")
            attr, types = keys[key]
            if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
                raise _fail(path, f"{section}.{key}", f"expected {_type_name(types)}, got {value!r}", "fix the value")
            setattr(cfg, attr, value)
    cfg.detector = _detector(path, doc.get("detector", {}))
    cfg.commands = _commands(path, doc.get("commands", []))
    if cfg.log_level not in LOG_LEVELS:
        raise _fail(path, "daemon.log_level", f"unknown level {cfg.log_level!r}", f"use one of {list(LOG_LEVELS)}")
    if not 0.01 <= cfg.block_s <= 1.0:
        raise _fail(path, "input.block_s", f"must be between 0.01 and 1 s, got {cfg.block_s!r}",
                    "0.2 wakes the daemon 5 times a second; 0.1 answers up to 0.1 s sooner for more CPU")
    if cfg.threads < 1:
        raise _fail(path, "runtime.threads", "must be at least 1", "1 keeps a Pi responsive")
    return cfg


def _type_name(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


POSITIVE = ("hop_s", "smoothing", "max_wait", "template_ratio")  # keys that may not be 0 either


def _detector(path: Path, table: Any) -> DetectorConfig:
    if not isinstance(table, dict):
        raise _fail(path, "detector", "expected a [detector] section", "see device/device.toml")
    allowed = {f.name: f.type for f in fields(DetectorConfig)}
    values = {}
    for key, value in table.items():
        if key not in allowed:
            raise _fail(path, f"detector.{key}", "unknown key", f"detector takes {sorted(allowed)}")
        want = int if allowed[key] in (int, "int") else float
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (want is int and not isinstance(value, int)):
            raise _fail(path, f"detector.{key}", f"expected a number, got {value!r}", "fix the value")
        if math.isnan(value) or (math.isinf(value) and key not in ("template_ratio", "hold_below")):
            raise _fail(path, f"detector.{key}", f"must be a finite number, got {value!r}", "fix the value")
        if key == "floor_dbfs":
            if value > 0:
                raise _fail(path, "detector.floor_dbfs", f"is a level in dBFS, at most 0, got {value!r}", "e.g. -60.0")
        elif value < 0 or (key in POSITIVE and value == 0):
            raise _fail(path, f"detector.{key}", f"must be positive, got {value!r}", "fix the value")
        values[key] = want(value)
    return DetectorConfig(**values)


def _commands(path: Path, items: Any) -> list[CommandRule]:
    if not isinstance(items, list):
        raise _fail(path, "commands", "expected [[commands]] tables", "see device/device.toml")
    rules = []
    for i, item in enumerate(items):
        where = f"commands[{i}]"
        if not isinstance(item, dict) or set(item) - {"word", "run", "speaker"}:
            raise _fail(path, where, "expected word, run and optionally speaker", "see device/device.toml")
        word, run, speaker = item.get("word"), item.get("run"), item.get("speaker")
        if not isinstance(word, str) or not word.strip():
            raise _fail(path, f"{where}.word", "expected the enrolled word", 'e.g. word = "lights on"')
        if not isinstance(run, list) or not run or not all(isinstance(a, str) and a for a in run):
            raise _fail(path, f"{where}.run", "expected a non-empty list of arguments (no shell)",
                        'e.g. run = ["/usr/bin/mosquitto_pub", "-t", "home/lights", "-m", "on"]')
        if speaker is not None and not isinstance(speaker, str):
            raise _fail(path, f"{where}.speaker", "expected a user name", 'e.g. speaker = "alice"')
        rules.append(CommandRule(word.strip(), tuple(run), speaker))
    return rules
