"""Reading a TOML config file (training recipes, the command-model recipe, device.toml) with one kind of error."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edge_meta.errors import ConfigError


def read_toml(path: str | Path, example: str) -> dict[str, Any]:
    """The file's top-level table, or a ConfigError naming the file and pointing at ``example``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file", f"give the path of a config file (example: {example})")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})", f"compare it with {example}") from None
