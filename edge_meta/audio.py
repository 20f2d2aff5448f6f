"""Audio in: read any file soundfile knows, down-mix, resample to 16 kHz, fit to the model window.

Torch-free: the device and the benchmarks use it as they are. Conversions (resampling,
down-mixing) are announced with an `AudioConversionWarning`, never done silently, unless the
caller already knows the corpus format and says so with ``announce=False``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from edge_meta.errors import AudioError, permission_denied

SAMPLE_RATE = 16_000
MIN_RATE, MAX_RATE = 4_000, 384_000  # beyond these a header is damaged, and resampling it could exhaust memory
RESAMPLE_PAD = 10 * MAX_RATE // SAMPLE_RATE + 1  # input samples the resampler's filter reaches either side, at most


class AudioConversionWarning(UserWarning):
    """The input was not 16 kHz mono and was converted."""


READ_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError, MemoryError)


def unreadable(path: str | Path, exc: BaseException) -> AudioError:
    """The error for a file libsndfile cannot open or decode."""
    return AudioError(f"{path}: not a readable audio file ({_first_line(exc)})",
                      "use WAV, FLAC or OGG; convert other formats first, e.g. `sox in.mp4 -r 16000 out.wav`")


def open_audio(path: str | Path) -> sf.SoundFile:
    """``path`` opened for reading (its header checked, nothing decoded yet); AudioError naming the file if not."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file", "check the path")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file", "give a WAV or FLAC file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty", "record it again")
    try:
        path.open("rb").close()  # libsndfile reports a file it may not read as an unknown format
    except PermissionError as exc:
        raise permission_denied(exc, AudioError) from None
    try:
        return sf.SoundFile(str(path))
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, announce: bool = True,
               max_s: float | None = None) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate``; raise AudioError naming the file on any problem. A file
    longer than ``max_s`` seconds is refused from its header, before a sample is decoded."""
    with open_audio(path) as f:
        if max_s is not None:
            check_length(f.frames, f.samplerate, max_s, str(path))
        try:
            data, sr = f.read(dtype="float32", always_2d=True), f.samplerate
        except READ_ERRORS as exc:
            raise unreadable(path, exc) from None
    return prepare(data, sr, sample_rate, source=str(path), announce=announce)


def check_length(frames: int, sample_rate: int, max_s: float, source: str) -> None:
    """Refuse audio longer than ``max_s`` seconds (from a file's header: before it is decoded)."""
    if frames > max_s * sample_rate:
        raise AudioError(f"{source}: is {frames / sample_rate:.0f} s long; this takes at most {max_s:.0f} s",
                         "cut out the part you mean, e.g. `sox in.wav take.wav trim 12.3 1.5`")


def prepare(
    data: np.ndarray, sr: int, sample_rate: int = SAMPLE_RATE, source: str = "audio", announce: bool = True
) -> np.ndarray:
    """Turn raw samples (frames x channels, or 1-D) at ``sr`` into finite float32 mono at ``sample_rate``."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[0] == 0:
        raise AudioError(f"{source}: holds no audio samples", "record it again")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{source}: contains NaN or infinite samples", "re-export it as 16-bit PCM")
    if data.shape[1] > 1:
        if announce:
            warnings.warn(f"{source}: {data.shape[1]} channels down-mixed to mono", AudioConversionWarning, 2)
        data = data.mean(axis=1, keepdims=True, dtype=np.float64)  # float32 sums of loud float files overflow
    mono = data[:, 0]
    if sr != sample_rate:
        if announce:
            warnings.warn(f"{source}: resampled from {sr} Hz to {sample_rate} Hz", AudioConversionWarning, 2)
        mono = resample(mono, sr, sample_rate)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{source}: samples are too large to convert (beyond float32 range)",
                         "re-export it as 16-bit PCM")
    return mono


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling by the reduced ratio sr_to/sr_from (exact for 8/16/22.05/44.1/48 kHz)."""
    from scipy.signal import resample_poly  # imported here: scipy.signal adds ~75 MB to a 16 kHz-only device process

    return resample_poly(x, *_ratio(sr_from, sr_to)).astype(np.float32)


def _ratio(sr_from: int, sr_to: int) -> tuple[int, int]:
    """(up, down): the reduced resampling ratio; AudioError for a rate no real recording has."""
    if not MIN_RATE <= sr_from <= MAX_RATE:
        raise AudioError(f"unsupported sample rate {sr_from} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)",
                         "the file header is damaged, or convert it: `sox in.wav -r 16000 out.wav`")
    g = math.gcd(int(sr_from), int(sr_to))
    return sr_to // g, sr_from // g


def resampled_blocks(f: sf.SoundFile, block: int, sample_rate: int = SAMPLE_RATE,
                     source: str = "audio") -> Iterator[np.ndarray]:
    """An open file at another rate as float32 mono blocks of about ``block`` samples at ``sample_rate``: the
    samples `resample` gives for the whole file, in memory bounded by the block, not the file's length.

    Each block is resampled with ``RESAMPLE_PAD`` input samples of its neighbours on both sides (beyond the
    polyphase filter's reach, 10 x max(up, down) output-rate taps), and blocks start on multiples of the ratio's
    denominator, so every kept output sample is computed from the same inputs as in one whole-file pass."""
    from scipy.signal import resample_poly

    sr = f.samplerate
    up, down = _ratio(sr, sample_rate)
    step = down * max(1, round(block * sr / sample_rate / down))
    pad = down * -(-RESAMPLE_PAD // down)
    for start in range(0, f.frames, step):
        lo, hi = max(0, start - pad), min(f.frames, start + step + pad)
        f.seek(lo)
        x = prepare(f.read(hi - lo, dtype="float32", always_2d=True), sample_rate, sample_rate,
                    source=f"{source} (at {start / sr:.1f} s)", announce=False)  # down-mixed only
        y = resample_poly(x, up, down).astype(np.float32)
        first = (start - lo) * up // down
        yield y[first : first + -(-min(step, f.frames - start) * up // down)]


def fix_length(x: np.ndarray, n: int) -> np.ndarray:
    """Fit a clip to exactly ``n`` samples: centre-pad a short one, keep the loudest window of a long one."""
    if len(x) == n:
        return x.astype(np.float32, copy=False)
    if len(x) < n:
        left = (n - len(x)) // 2
        return np.pad(x, (left, n - len(x) - left)).astype(np.float32)
    energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    hop = max(1, n // 20)
    starts = np.arange(0, len(x) - n + 1, hop)
    best = int(starts[np.argmax(energy[starts + n] - energy[starts])])
    return x[best : best + n].astype(np.float32)


def rms_dbfs(x: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def active_speech(x: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_s: float = 0.02) -> np.ndarray:
    """A cheap energy VAD: a boolean per 20 ms frame, true where the level is within 30 dB of the clip's
    loudest frame and above -55 dBFS."""
    n = max(1, int(frame_s * sample_rate))
    frames = len(x) // n
    if frames == 0:
        return np.zeros(0, dtype=bool)
    power = np.mean(np.square(x[: frames * n].reshape(frames, n), dtype=np.float64), axis=1)
    db = 10.0 * np.log10(power + 1e-12)
    return (db > db.max() - 30.0) & (db > -55.0)


SPEECH_MARGIN_S = 0.05  # kept either side of the detected speech so soft onsets and releases survive


def speech_region(x: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_s: float = 0.02) -> np.ndarray:
    """The samples from the first to the last frame `active_speech` calls speech, plus a margin; all of x if none.
    Template matchers (MFCC + DTW) align words, not the silence around them."""
    active = np.flatnonzero(active_speech(x, sample_rate, frame_s))
    if len(active) == 0:
        return x
    frame, margin = int(frame_s * sample_rate), int(SPEECH_MARGIN_S * sample_rate)
    return x[max(0, active[0] * frame - margin) : (active[-1] + 1) * frame + margin]


def require_speech(x: np.ndarray, source: str, sample_rate: int = SAMPLE_RATE) -> None:
    """Refuse a clip that is silent (no frame of speech level) or badly clipped."""
    if not active_speech(x, sample_rate).any():
        raise AudioError(f"{source}: is silent (level {rms_dbfs(x):.0f} dBFS)", "speak closer to the microphone")
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > 0.01:
        raise AudioError(f"{source}: {clipped:.1%} of samples are clipped", "speak further away or lower the gain")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
