"""The daemon's configuration file (TOML; `device/device.toml` is the annotated example).

Every key is checked: a misspelt key or a wrong type is refused with the file, the key and the fix,
rather than silently ignored. Command-line options override the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_meta.device.backends import MAX_THREADS
from edge_meta.device.detector import DetectorConfig
from edge_meta.config_file import read_toml
from edge_meta.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class CommandRule:
    """Run ``run`` (an argument list, no shell) on a word event for ``word`` (and, if given, only when ``speaker``
    spoke it), or on a command event for ``command``: its name, e.g. "lights_off(room=kitchen)", or its intent,
    "lights_off"."""

    run: tuple[str, ...]
    word: str | None = None
    command: str | None = None
    speaker: str | None = None
    timeout_s: float = 30.0  # then the command's whole process group is killed

    @property
    def target(self) -> str:
        """What the rule waits for, as logs name it."""
        return self.word if self.word is not None else f"command {self.command}"

    def matches(self, event: dict) -> bool:
        """False for an event of another kind or one missing a field: no event can make the daemon fail here."""
        kind = event.get("event")
        if kind == "word" and self.word is not None:
            return event.get("word") == self.word and (self.speaker is None or event.get("speaker") == self.speaker)
        if kind == "command" and self.command is not None:
            return self.command in (event.get("command"), event.get("intent"))
        return False


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
            if isinstance(value, str) and "\0" in value:
                raise _fail(path, f"{section}.{key}", "holds a NUL character", "fix the value")
            setattr(cfg, attr, value)
    cfg.detector = _detector(path, doc.get("detector", {}))
    cfg.commands = _commands(path, doc.get("commands", []))
    if cfg.log_level not in LOG_LEVELS:
        raise _fail(path, "daemon.log_level", f"unknown level {cfg.log_level!r}", f"use one of {list(LOG_LEVELS)}")
    if not 0.01 <= cfg.block_s <= 1.0:
        raise _fail(path, "input.block_s", f"must be between 0.01 and 1 s, got {cfg.block_s!r}",
                    "0.2 wakes the daemon 5 times a second; 0.1 answers up to 0.1 s sooner for more CPU")
    if not 1 <= cfg.threads <= MAX_THREADS:
        raise _fail(path, "runtime.threads", f"must be between 1 and {MAX_THREADS}, got {cfg.threads}",
                    "1 keeps a Pi responsive; at most its number of cores")
    return cfg


def _type_name(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


# Every detector number's sane range, (low, high, what it is): beyond it a value passes as a number but misbehaves
# (smoothing = 1e9 asks 19.6 GB; hop_s = 1e-9 is no hop, 100 one score every 100 s; hold_hops = 1000 stops scoring
# for 100 s after a quiet hop; template_context_s = 1e9 sizes a ring buffer by it). inf turns ``OFF`` keys off.
DETECTOR_RANGES: dict[str, tuple[float, float, str]] = {
    "hop_s": (0.01, 0.5, "seconds between scored windows, e.g. 0.1"),
    "smoothing": (1, 10, "hops averaged, e.g. 2"),
    "max_wait": (1, 20, "hops a candidate may wait for its peak, e.g. 3"),
    "refractory_s": (0.0, 10.0, "seconds without a second detection, e.g. 1.0"),
    "gate_db": (0.0, 40.0, "dB above the noise floor, e.g. 6.0"),
    "floor_dbfs": (-120.0, 0.0, "a level in dBFS, e.g. -60.0"),
    "template_ratio": (0.1, 10.0, "e.g. 1.3, or inf to turn the template check off"),
    "template_slope": (0.0, 100.0, "e.g. 5.0"),
    "template_context_s": (0.0, 2.0, "seconds of audio before the window, e.g. 0.3"),
    "hold_below": (0.0, 2.0, "a score margin, e.g. 0.15, or inf to score every hop"),
    "hold_hops": (0, 10, "hops, e.g. 2; 0 scores every hop"),
}
OFF = ("template_ratio", "hold_below")


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
        low, high, what = DETECTOR_RANGES[key]
        if math.isnan(value) or not (low <= value <= high or (key in OFF and value == math.inf)):
            raise _fail(path, f"detector.{key}", f"must be between {low} and {high}, got {value!r}", what)
        values[key] = want(value)
    return DetectorConfig(**values)


def _commands(path: Path, items: Any) -> list[CommandRule]:
    if not isinstance(items, list):
        raise _fail(path, "commands", "expected [[commands]] tables", "see device/device.toml")
    rules = []
    for i, item in enumerate(items):
        where = f"commands[{i}]"
        if not isinstance(item, dict) or set(item) - {"word", "command", "run", "speaker", "timeout_s"}:
            raise _fail(path, where, "expected word (or command), run and optionally speaker and timeout_s",
                        "see device/device.toml")
        timeout_s = item.get("timeout_s", CommandRule.timeout_s)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= 3600:
            raise _fail(path, f"{where}.timeout_s", f"must be a number of seconds in (0, 3600], got {timeout_s!r}",
                        "the command is killed when it runs longer, e.g. timeout_s = 10")
        word, command, run, speaker = item.get("word"), item.get("command"), item.get("run"), item.get("speaker")
        if (word is None) == (command is None):
            raise _fail(path, where, "expected either word or command",
                        'word = "lights on" runs on that word\'s events, command = "lights_on" on a decoded command\'s')
        for key, value, example in (("word", word, 'word = "lights on"'), ("command", command, 'command = "lights_on"')):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise _fail(path, f"{where}.{key}", f"expected the enrolled {key}", f"e.g. {example}")
        if not isinstance(run, list) or not run or not all(isinstance(a, str) and a and "\0" not in a for a in run):
            raise _fail(path, f"{where}.run", "expected a non-empty list of arguments (no shell, no NUL characters)",
                        'e.g. run = ["/usr/bin/mosquitto_pub", "-t", "home/lights", "-m", "on"]')
        if speaker is not None and not isinstance(speaker, str):
            raise _fail(path, f"{where}.speaker", "expected a user name", 'e.g. speaker = "alice"')
        if speaker is not None and command is not None:
            raise _fail(path, f"{where}.speaker", "command events do not say who spoke",
                        "bind the command's words to the voice instead: edge-meta device enroll-word WORD --user NAME --bind")
        rules.append(CommandRule(tuple(run), word=word.strip() if word else None,
                                 command=command.strip() if command else None, speaker=speaker,
                                 timeout_s=float(timeout_s)))
    return rules
