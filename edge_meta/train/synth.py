"""Synthetic multi-voice word clips from Debian's TTS engines: more words than real corpora hold.

Real corpora give many speakers but few words (35 + 40 here); meta-training needs many words so
the encoder learns to tell *new* words apart. espeak-ng (dozens of English dialects x ~100 voice
variants, plus foreign-language voices reading English, which sound like accents), flite and
festival say every word of a vocabulary file in many voices. Clips are cached on disk in the
Speech Commands layout (``<word>/<voice>_nohash_<n>.flac``) so `read_speech_commands` reads
them like real speech, and a rerun only makes what is missing.

The evaluation words (English digits, "oh") are refused, whatever the vocabulary file says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_meta.audio import SAMPLE_RATE, active_speech, prepare
from edge_meta.corpora import ENGLISH_EVAL_WORDS, EVAL_SOUNDALIKES
from edge_meta.errors import ConfigError

ESPEAK_DIALECTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# Foreign voices reading English spelling: strong accents, as real households have.
ESPEAK_ACCENTS = ("de", "fr", "es", "it", "nl", "pl", "el", "pt", "sv", "hi", "ru", "tr")
ESPEAK_VARIANTS = (
    "m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 adam alex alicia andrea andy annie antonio aunty belinda "
    "benjamin boris caleb david denis diogo ed edward edward2 gene gene2 grandma grandpa gustave henrique "
    "hugo iven iven2 iven3 iven4 jacky john kaukovalta klatt klatt2 klatt3 klatt4 klatt5 klatt6 lee linda "
    "marcelo marco mario max michael michel miguel mike nguyen norbert pablo paul pedro quincy rob robert "
    "sandro shelby steph steph2 steph3 storm travis victor zac croak whisperf"
).split()
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone",)


@dataclass(frozen=True)
class Voice:
    """One synthetic 'speaker': an engine, a voice, and a fixed pitch; speaking rate varies per clip."""

    engine: str
    name: str
    pitch: int = 50

    @property
    def id(self) -> str:
        return f"{self.engine}-{self.name.replace('+', '-')}-p{self.pitch}"


def available_engines() -> list[str]:
    return [e for e, exe in (("espeak", "espeak-ng"), ("flite", "flite"), ("festival", "text2wave")) if shutil.which(exe)]


def voice_pool(engines: list[str], accent_share: float = 0.2, seed: int = 0) -> list[Voice]:
    """Every usable voice, each with a pitch drawn once (so the same voice id always sounds the same)."""
    rng = np.random.default_rng(seed)
    pool: list[Voice] = []
    if "espeak" in engines:
        for d in ESPEAK_DIALECTS:
            pool += [Voice("espeak", f"{d}+{v}", int(rng.integers(25, 75))) for v in ESPEAK_VARIANTS]
        n_accent = int(len(pool) * accent_share / (1 - accent_share))
        for _ in range(n_accent):
            lang, var = rng.choice(ESPEAK_ACCENTS), rng.choice(ESPEAK_VARIANTS)
            pool.append(Voice("espeak", f"{lang}+{var}", int(rng.integers(25, 75))))
    if "flite" in engines:
        pool += [Voice("flite", v) for v in FLITE_VOICES]
    if "festival" in engines:
        pool += [Voice("festival", v) for v in FESTIVAL_VOICES]
    return sorted(set(pool), key=lambda v: v.id)


def read_vocabulary(path: str | Path) -> list[str]:
    """Words and short phrases, one per line (# comments); evaluation words are refused."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such vocabulary file",
                          "give a text file with one word or phrase per line (example: export/recipes/vocab_en.txt)")
    words = []
    for line in Path(path).read_text().splitlines():
        w = line.split("#")[0].strip().lower()
        if not w:
            continue
        banned = set(w.split()) & (ENGLISH_EVAL_WORDS | EVAL_SOUNDALIKES)
        if banned:
            raise ConfigError(
                f"{path}: vocabulary entry {w!r} contains evaluation word(s) {sorted(banned)}",
                "remove it: FSDD digits are held out of training",
            )
        words.append(w)
    return sorted(set(words))


def synthesize(text: str, voice: Voice, rate_wpm: int, workdir: str) -> np.ndarray:
    """Say ``text`` with ``voice``; 16 kHz float32 mono, silence trimmed."""
    out = os.path.join(workdir, "tts.wav")
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(rate_wpm), "-w", out, text]
    elif voice.engine == "flite":
        stretch = f"{150.0 / rate_wpm:.2f}"
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch}", "-t", text, "-o", out]
    elif voice.engine == "festival":
        cmd = ["text2wave", "-eval", f"(voice_{voice.name})", "-o", out]
    else:
        raise ConfigError(f"unknown TTS engine {voice.engine!r}")
    subprocess.run(cmd, input=text.encode() if voice.engine == "festival" else None, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    data, sr = sf.read(out, dtype="float32", always_2d=True)
    return trim_silence(prepare(data, sr, SAMPLE_RATE, announce=False))


def trim_silence(x: np.ndarray, pad_s: float = 0.05) -> np.ndarray:
    """Cut leading and trailing non-speech, keeping a short margin; peak-normalise to -3 dBFS."""
    active = np.flatnonzero(active_speech(x))
    if active.size == 0:
        return x[:0]
    frame, pad = int(0.02 * SAMPLE_RATE), int(pad_s * SAMPLE_RATE)
    x = x[max(0, active[0] * frame - pad) : (active[-1] + 1) * frame + pad]
    return (x / max(1e-6, float(np.abs(x).max())) * 0.708).astype(np.float32)


@dataclass(frozen=True)
class Job:
    word: str
    voice: Voice
    take: int
    rate_wpm: int
    path: Path


def _run_job(job: Job) -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            clip = synthesize(job.word, job.voice, job.rate_wpm, tmp)
        except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
            return f"{job.voice.id} {job.word!r}: {exc}"
    if not 0.15 * SAMPLE_RATE <= len(clip) <= 1.5 * SAMPLE_RATE:
        return None  # nothing said, or far longer than a keyword: not a useful training clip
    job.path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = job.path.with_suffix(".part.flac")
    sf.write(str(tmp_path), clip, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp_path, job.path)
    return None


def plan(words: list[str], voices: list[Voice], voices_per_word: int, takes: int, out: Path, seed: int) -> list[Job]:
    """Which voice says which word: a fixed random subset of voices per word, seeded by the word."""
    jobs = []
    for w in words:
        rng = np.random.default_rng([seed, zlib.crc32(w.encode())])
        chosen = rng.choice(len(voices), size=min(voices_per_word, len(voices)), replace=False)
        folder = out / w.replace(" ", "_")
        for vi in chosen:
            for t in range(takes):
                rate = int(rng.integers(120, 200))
                jobs.append(Job(w, voices[vi], t, rate, folder / f"{voices[vi].id}_nohash_{t}.flac"))
    return jobs


def build_cache(
    vocabulary: str | Path,
    out: str | Path,
    voices_per_word: int = 16,
    takes: int = 1,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Synthesise every missing clip of the plan into ``out``; returns ``out``."""
    engines = available_engines()
    if not engines:
        raise ConfigError("no TTS engine found", "install one: sudo apt-get install espeak-ng flite festival")
    out = Path(out)
    jobs = [j for j in plan(read_vocabulary(vocabulary), voice_pool(engines, seed=seed), voices_per_word, takes, out, seed)
            if not j.path.exists()]
    if not jobs:
        return out
    from tqdm import tqdm

    errors = []
    with Pool(workers or os.cpu_count() or 1) as pool:
        for err in tqdm(pool.imap_unordered(_run_job, jobs, chunksize=16), total=len(jobs),
                        desc="synthesising", unit="clip", disable=not progress):
            if err:
                errors.append(err)
    if errors and len(errors) > len(jobs) // 10:
        raise ConfigError(f"{len(errors)} of {len(jobs)} clips failed, e.g. {errors[0]}", "check the TTS install")
    return out
