"""The command grammar: what a command is, the ways people phrase it, and reading a phrase back.

A command is an intent plus slot values (``lights_off(room=kitchen)``). Each intent has paraphrase
templates; a template is a line of tokens:

- ``turn`` a literal word; ``the?`` an optional one (a user who drops articles drops them all);
- ``LIGHTS`` a synonym class (lights, light, lamps, lamp), chosen by habit;
- ``{room}`` a slot, filled with one of the household's values.

A phrase may be wrapped in politeness (``can you ... please``): the wrappers are listed apart so the
decoder can score a command without the words a keyword detector never hears. The grammar is plain
data (`to_dict` / `from_dict`): the exported command model carries the grammar it was trained on.
Slot pools have *known* values (in the language model's vocabulary) and *novel* ones (a household's
own words, which the model sees only as placeholders), split into training and evaluation pools.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Command:
    intent: str
    slots: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.intent + (f"({', '.join(f'{k}={v}' for k, v in self.slots)})" if self.slots else "")

    def to_dict(self) -> dict:
        return {"intent": self.intent, "slots": dict(self.slots)}

    @classmethod
    def from_dict(cls, d: dict) -> "Command":
        return cls(str(d["intent"]), tuple(sorted((str(k), str(v)) for k, v in d.get("slots", {}).items())))


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]
    command: Command

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Token:
    kind: str  # word | optional | synonym | slot
    value: str


def parse_template(template: str) -> tuple[Token, ...]:
    tokens = []
    for t in template.split():
        if t.startswith("{") and t.endswith("}"):
            tokens.append(Token("slot", t[1:-1]))
        elif t.endswith("?"):
            tokens.append(Token("optional", t[:-1]))
        elif t.isupper():
            tokens.append(Token("synonym", t))
        else:
            tokens.append(Token("word", t))
    return tuple(tokens)


def words_of(text: str) -> tuple[str, ...]:
    """Lower-case words of a phrase or a keyword label ("Lights on" -> ("lights", "on"))."""
    return tuple(text.lower().replace(",", " ").replace(".", " ").replace("!", " ").replace("?", " ").split())


@dataclass(frozen=True)
class Intent:
    name: str
    templates: tuple[str, ...]

    @property
    def family(self) -> str:
        return self.name.split("_")[0]


@dataclass
class Grammar:
    intents: list[Intent]
    synonyms: dict[str, list[str]]
    slots: dict[str, dict[str, list[str]]]  # slot -> {"known": [...], "novel_train": [...], "novel_eval": [...]}
    function_words: list[str]  # words a household is not expected to enroll as keywords
    prefixes: list[str]
    suffixes: list[str]
    _parsed: dict[str, tuple[Token, ...]] = field(default_factory=dict, repr=False, compare=False)

    # -- data ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"intents": [{"name": i.name, "templates": list(i.templates)} for i in self.intents],
                "synonyms": self.synonyms, "slots": self.slots, "function_words": self.function_words,
                "prefixes": self.prefixes, "suffixes": self.suffixes}

    @classmethod
    def from_dict(cls, d: dict) -> "Grammar":
        return cls([Intent(i["name"], tuple(i["templates"])) for i in d["intents"]],
                   {k: list(v) for k, v in d["synonyms"].items()},
                   {k: {p: list(v) for p, v in pools.items()} for k, pools in d["slots"].items()},
                   list(d["function_words"]), list(d["prefixes"]), list(d["suffixes"]))

    def tokens(self, template: str) -> tuple[Token, ...]:
        if template not in self._parsed:
            self._parsed[template] = parse_template(template)
        return self._parsed[template]

    def intent(self, name: str) -> Intent:
        return next(i for i in self.intents if i.name == name)

    @property
    def families(self) -> list[str]:
        return sorted({i.family for i in self.intents})

    def known_words(self) -> list[str]:
        """Every word the language model has its own token for."""
        words: set[str] = set(self.function_words)
        for intent in self.intents:
            for template in intent.templates:
                words |= {t.value for t in self.tokens(template) if t.kind in ("word", "optional")}
        for values in self.synonyms.values():
            words |= set(values)
        for pools in self.slots.values():
            words |= set(pools["known"])
        for wrapper in self.prefixes + self.suffixes:
            words |= set(wrapper.split())
        return sorted(words)

    def content_words(self) -> list[str]:
        """Known words a household would enroll: everything but function and politeness words."""
        skip = set(self.function_words) | {w for p in self.prefixes + self.suffixes for w in p.split()}
        return [w for w in self.known_words() if w not in skip]

    def slot_of(self, value: str) -> list[str]:
        """The slots whose known or novel pools hold ``value``."""
        return [s for s, pools in self.slots.items() if any(value in v for v in pools.values())]

    # -- phrases -------------------------------------------------------------------------------
    def realise(self, intent: Intent, template: str, synonyms: dict[str, str], slots: dict[str, str],
                keep_optional: bool) -> Phrase:
        """One phrase from a template with the synonyms and slot values chosen."""
        words: list[str] = []
        used: list[tuple[str, str]] = []
        for t in self.tokens(template):
            if t.kind == "word" or (t.kind == "optional" and keep_optional):
                words.append(t.value)
            elif t.kind == "synonym":
                words.append(synonyms[t.value])
            elif t.kind == "slot":
                words += slots[t.value].split()
                used.append((t.value, slots[t.value]))
        return Phrase(tuple(words), Command(intent.name, tuple(sorted(used))))

    def enumerate(self, slot_values: dict[str, Sequence[str]]) -> list[Phrase]:
        """Every core phrase (no wrappers) of every intent whose slots can be filled from ``slot_values``."""
        out: dict[tuple[str, ...], Phrase] = {}
        for intent in self.intents:
            for template in intent.templates:
                tokens = self.tokens(template)
                classes = sorted({t.value for t in tokens if t.kind == "synonym"})
                slots = sorted({t.value for t in tokens if t.kind == "slot"})
                has_optional = any(t.kind == "optional" for t in tokens)
                for syn in itertools.product(*(self.synonyms[c] for c in classes)):
                    for vals in itertools.product(*(slot_values.get(s, ()) for s in slots)):
                        for keep in (True, False) if has_optional else (True,):
                            p = self.realise(intent, template, dict(zip(classes, syn)), dict(zip(slots, vals)), keep)
                            out.setdefault(p.words, p)
        return list(out.values())

    def strip_wrappers(self, words: Sequence[str]) -> tuple[str, ...]:
        """The core of a phrase: one leading politeness wrapper and one trailing one removed."""
        words = tuple(words)
        for prefix in sorted(self.prefixes, key=lambda p: -len(p.split())):
            p = tuple(prefix.split())
            if words[: len(p)] == p and len(words) > len(p):
                words = words[len(p) :]
                break
        for suffix in sorted(self.suffixes, key=lambda s: -len(s.split())):
            s = tuple(suffix.split())
            if words[-len(s) :] == s and len(words) > len(s):
                words = words[: -len(s)]
                break
        return words

    def parse(self, words: Sequence[str]) -> Command | None:
        """The command a phrase says, or None. A slot takes a value of its pool or any word the grammar
        does not know (a household's own word, e.g. "attic"); known slot values win over unknown words."""
        core = self.strip_wrappers(words_of(" ".join(words)))
        known = set(self.known_words())
        fallback = None
        for intent in self.intents:
            for template in intent.templates:
                slots = self._match(self.tokens(template), core, known)
                if slots is None:
                    continue
                command = Command(intent.name, tuple(sorted(slots.items())))
                if all(v in known for v in slots.values()):
                    return command
                fallback = fallback or command
        return fallback

    def _match(self, tokens: tuple[Token, ...], words: tuple[str, ...], known: set[str]) -> dict[str, str] | None:
        if not tokens:
            return {} if not words else None
        t, rest = tokens[0], tokens[1:]
        if t.kind == "optional":
            skipped = self._match(rest, words, known)
            if skipped is not None:
                return skipped
        if not words:
            return None
        w = words[0]
        if (t.kind in ("word", "optional") and w == t.value) or (t.kind == "synonym" and w in self.synonyms[t.value]):
            return self._match(rest, words[1:], known)
        if t.kind == "slot" and (w not in known or w in self.slots[t.value]["known"]):
            tail = self._match(rest, words[1:], known)
            return None if tail is None else {t.value: w, **tail}
        return None


def _device_templates(device: str, particle: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Paraphrases of switching a device (a synonym class) on or off, with and without a room."""
    return (f"TURN {particle} the? {{room}} {device}", f"TURN the? {{room}} {device} {particle}",
            f"{{room}} {device} {particle}", f"{device} {particle} in the? {{room}}",
            f"TURN {particle} the? {device} in the? {{room}}", f"TURN the? {device} {particle} in the? {{room}}",
            f"{device} {particle}", f"TURN {particle} the? {device}", f"TURN the? {device} {particle}", *extra)


def default_grammar() -> Grammar:
    """The project's home-automation grammar: 23 intents in 9 families, 3 slots."""
    intents = [
        Intent("lights_on", _device_templates("LIGHTS", "on", ["{room} on", "i want the? {room} LIGHTS on"])),
        Intent("lights_off", _device_templates("LIGHTS", "off", ["{room} off", "kill the? {room} LIGHTS"])),
        Intent("lights_dim", ("dim the? LIGHTS", "dim the? {room} LIGHTS", "dim the? LIGHTS in the? {room}",
                              "LIGHTS down", "{room} LIGHTS down", "make it darker", "make the? {room} darker")),
        Intent("tv_on", _device_templates("TV", "on")),
        Intent("tv_off", _device_templates("TV", "off")),
        Intent("fan_on", _device_templates("FAN", "on")),
        Intent("fan_off", _device_templates("FAN", "off")),
        Intent("heating_up", ("turn up the? HEAT", "turn the? HEAT up", "HEAT up", "warmer", "make it warmer",
                              "make the? {room} warmer", "turn up the? HEAT in the? {room}", "{room} HEAT up")),
        Intent("heating_down", ("turn down the? HEAT", "turn the? HEAT down", "HEAT down", "cooler", "make it cooler",
                                "make the? {room} cooler", "turn down the? HEAT in the? {room}", "{room} HEAT down")),
        Intent("blinds_open", ("open the? BLINDS", "open the? {room} BLINDS", "open the? BLINDS in the? {room}",
                               "BLINDS up", "{room} BLINDS up", "raise the? BLINDS", "BLINDS open")),
        Intent("blinds_close", ("CLOSE the? BLINDS", "CLOSE the? {room} BLINDS", "CLOSE the? BLINDS in the? {room}",
                                "BLINDS down", "{room} BLINDS down", "lower the? BLINDS", "BLINDS closed")),
        Intent("door_lock", ("lock the? {door} door", "lock the? {door}", "{door} door lock", "lock up the? {door}")),
        Intent("door_unlock", ("unlock the? {door} door", "unlock the? {door}", "{door} door unlock",
                               "open the? {door} door")),
        Intent("music_play", ("play some? {genre}", "play some? {genre} MUSIC", "put on some? {genre}",
                              "i want some? {genre}", "{genre} MUSIC", "play some? MUSIC", "MUSIC on",
                              "put on some? MUSIC", "start the? MUSIC")),
        Intent("music_stop", ("stop the? MUSIC", "MUSIC off", "stop", "pause the? MUSIC", "pause", "stop playing")),
        Intent("volume_up", ("VOLUME up", "turn the? VOLUME up", "turn up the? VOLUME", "turn it up", "louder",
                             "make it louder")),
        Intent("volume_down", ("VOLUME down", "turn the? VOLUME down", "turn down the? VOLUME", "turn it down",
                               "quieter", "make it quieter")),
        Intent("vacuum_start", ("start the? VACUUM", "VACUUM on", "vacuum the? {room}", "clean the? {room}",
                                "start the? VACUUM in the? {room}", "send the? VACUUM to the? {room}")),
        Intent("vacuum_stop", ("stop the? VACUUM", "VACUUM off", "VACUUM stop", "send the? VACUUM home")),
    ]
    return Grammar(
        intents=intents,
        synonyms={"TURN": ["turn", "switch"], "LIGHTS": ["lights", "light", "lamps", "lamp"],
                  "TV": ["tv", "television"], "FAN": ["fan", "fans"], "HEAT": ["heating", "heat", "heater"],
                  "BLINDS": ["blinds", "curtains", "shades"],
                  "CLOSE": ["close", "shut"], "MUSIC": ["music", "songs", "tunes"], "VOLUME": ["volume", "sound"],
                  "VACUUM": ["vacuum", "robot", "cleaner"]},
        slots={
            "room": {"known": ["kitchen", "bedroom", "bathroom", "hallway", "office", "lounge", "garden", "nursery",
                               "basement", "study"],
                     "novel_train": ["attic", "den", "porch", "patio", "loft", "pantry", "cellar", "studio", "landing",
                                     "sunroom", "workshop", "library", "closet", "balcony", "terrace", "yard"],
                     "novel_eval": ["veranda", "annex", "lobby", "foyer", "gallery", "gym", "chapel", "cabin"]},
            "genre": {"known": ["jazz", "rock", "pop", "classical", "blues", "country", "reggae", "folk", "news",
                                "radio"],
                      "novel_train": ["metal", "soul", "funk", "techno", "disco", "punk", "grunge", "trance"],
                      "novel_eval": ["opera", "salsa", "ambient", "gospel", "swing", "samba"]},
            "door": {"known": ["front", "back", "side", "garage"],
                     "novel_train": ["shed", "barn", "pool", "cellar"], "novel_eval": ["annex", "cabin"]},
        },
        function_words=["the", "some", "in", "to", "it", "i", "want", "make"],
        prefixes=["please", "can you", "could you", "hey", "can you please"],
        suffixes=["please", "now", "thanks", "for me"],
    )
