"""Build the demo's sample clips (edge_meta/data/samples/) from the real corpora in ../shared/data.

- enroll/<word>_<n>.flac: three takes each of three FSDD digits by one speaker (the user);
- stream.flac: ~25 s of that user saying the enrolled words and other digits, mixed with
  Speech Commands words by other people, over quiet background noise from `_silence_`;
- stream.json: where every spoken word is, and whether it is an enrolled keyword;
- ATTRIBUTION.md: sources and licenses (FSDD CC BY-SA 4.0, Speech Commands CC BY 4.0).

Run from the project root: .venv/bin/python scripts/make_samples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_meta.audio import SAMPLE_RATE, read_audio
from edge_meta.corpora import read_corpus

DATA = Path("../shared/data")
OUT = Path("edge_meta/data/samples")
USER = "jackson"
KEYWORDS = ("two", "five", "nine")
OTHER_DIGITS = ("three", "six", "eight")
OTHER_WORDS = ("house", "dog", "happy", "bird", "left", "stop", "follow", "tree")
DIGIT = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}


def fsdd(word: str, take: int) -> tuple[np.ndarray, str]:
    name = f"{DIGIT[word]}_{USER}_{take}.wav"
    return read_audio(DATA / "fsdd" / "recordings" / name, announce=False), f"fsdd/recordings/{name}"


def main() -> None:
    rng = np.random.default_rng(0)
    (OUT / "enroll").mkdir(parents=True, exist_ok=True)
    sources = []
    for word in KEYWORDS:
        for n, take in enumerate((0, 1, 2), start=1):
            x, src = fsdd(word, take)
            sf.write(OUT / "enroll" / f"{word.replace(' ', '_')}_{n}.flac", x, SAMPLE_RATE, subtype="PCM_16")
            sources.append(f"enroll/{word}_{n}.flac <- {src}")

    gsc = read_corpus(DATA / "speech_commands_test")
    noise = read_audio(gsc.noise[3], announce=False)
    events = [(w, t) for w in KEYWORDS for t in (20, 21)] + [(w, 20) for w in OTHER_DIGITS]
    words = [("fsdd", w, t) for w, t in events] + [("gsc", w, None) for w in OTHER_WORDS]
    order = rng.permutation(len(words))
    pieces, truth, t = [np.zeros(int(0.8 * SAMPLE_RATE), np.float32)], [], 0.8
    for i in order:
        kind, word, take = words[i]
        if kind == "fsdd":
            x, src = fsdd(word, take)
        else:
            item = next(it for it in gsc.items if it.word == word)
            x, src = read_audio(item.path, announce=False), f"speech_commands_test/{item.path.parent.name}/{item.path.name}"
        x = x / max(1e-6, float(np.abs(x).max())) * 0.5
        truth.append({"word": word, "start_s": round(t, 3), "end_s": round(t + len(x) / SAMPLE_RATE, 3),
                      "keyword": word in KEYWORDS, "speaker": USER if kind == "fsdd" else "other"})
        sources.append(f"stream.flac @ {t:.2f} s <- {src}")
        gap = float(rng.uniform(0.9, 1.6))
        pieces += [x, np.zeros(int(gap * SAMPLE_RATE), np.float32)]
        t += len(x) / SAMPLE_RATE + gap
    stream = np.concatenate(pieces)
    bed = np.resize(noise, len(stream))
    stream = stream + bed / max(1e-6, float(np.abs(bed).max())) * 0.01
    sf.write(OUT / "stream.flac", stream.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    (OUT / "stream.json").write_text(json.dumps({"user": USER, "keywords": list(KEYWORDS), "words": truth}, indent=1) + "\n")
    (OUT / "ATTRIBUTION.md").write_text(ATTRIBUTION + "\n## Files\n" + "\n".join(f"- {s}" for s in sources) + "\n")


ATTRIBUTION = """# Sample clips: sources and licenses

These clips are cut from real recorded speech, audio unchanged except resampling to 16 kHz,
level normalisation and mixing (made by scripts/make_samples.py).

- Free Spoken Digit Dataset (FSDD), Zohar Jackson et al., https://github.com/Jakobovski/free-spoken-digit-dataset,
  licensed under Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0).
- Google Speech Commands v0.02, Pete Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech
  Recognition", 2018, licensed under Creative Commons Attribution 4.0 (CC BY 4.0).

`enroll/*.flac` are FSDD recordings and remain CC BY-SA 4.0. `stream.flac` mixes both sources and is
therefore shared under CC BY-SA 4.0 as well.
"""

if __name__ == "__main__":
    main()
