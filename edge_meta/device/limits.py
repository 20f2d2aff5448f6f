"""What enrollment and profile import both accept: one rule per value, applied at both doors, so that
everything the store holds can be exported and restored.

Names (words, users) are normalised as they come in: Unicode NFC (so "café" typed two ways is one word),
outer whitespace trimmed; control characters and any whitespace but the plain space (U+00A0, U+2009, U+2028,
tabs, newlines) are refused, since they print like a space or not at all and make two words look alike.
"""

from __future__ import annotations

import math
import unicodedata

from edge_meta.errors import StoreError

MAX_NAME = 64
MAX_TAKES = 50
MAX_WORD_TAKE_S = 10.0  # a word take's whole recording: the prompts cut at the window + 1.5 s, a file keeps some silence
MAX_VOICE_TAKE_S = 30.0  # a voice take's whole recording (at most quality.MAX_VOICE_S of it sound)
FALSE_ACCEPT = (1e-6, 0.5)  # a target share of background speech: at least 1e-6, below one half


def check_name(value: object, what: str, allow_empty: bool = False) -> str:
    """``value`` in NFC without outer spaces; StoreError naming the bad character otherwise."""
    example = '"lights on"' if what == "word" else "alice"
    if not isinstance(value, str):
        raise StoreError(f"the {what} is not text ({type(value).__name__})", f"give the {what} as text, e.g. {example}")
    name = unicodedata.normalize("NFC", value).strip()
    if not name and not allow_empty:
        raise StoreError(f"the {what} is empty", f"give the {what} as text, e.g. {example}")
    if len(name) > MAX_NAME:
        raise StoreError(f"the {what} {name[:MAX_NAME]!r}... is longer than {MAX_NAME} characters",
                         f"use at most {MAX_NAME} characters")
    for c in name:
        if unicodedata.category(c).startswith("C") or (c.isspace() and c != " "):
            raise StoreError(f"the {what} {name!r} holds the character U+{ord(c):04X} "
                             f"({unicodedata.name(c, unicodedata.category(c))})",
                             "use letters, digits, punctuation and plain spaces only")
    return name


def check_false_accept(value: object) -> float:
    low, high = FALSE_ACCEPT
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or not low <= value < high):
        raise StoreError(f"false-accept target {value!r} is out of range",
                         f"use a share in [{low:g}, {high:g}), e.g. 0.01 (1%)")
    return float(value)


def check_take_count(n: int, what: str) -> None:
    if not 1 <= n <= MAX_TAKES:
        raise StoreError(f"{n} takes given for {what}", f"give 1-{MAX_TAKES} recordings (3-5 work best)")
