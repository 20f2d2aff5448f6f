"""EfficientWord-Net 1.0.5 streaming worker: every frame's score from each keyword's HotwordDetector.

Frames come from the package's own `CustomAudioStream` with its single_word_test / README settings
(1.5 s window, 0.75 s slide). Each keyword's reference is built in-process the way its
`generate_reference` does (embedding of `fixPaddingIssues(take)` per take, `random` seeded since it
pads at a random offset) and written to a temporary `_ref.json` that `HotwordDetector` loads. The
detectors get a threshold just below 1 so that `scoreVector` returns the raw score and its
relaxation clock never starts: the threshold and relaxation are replayed afterwards
(`stream_rules`). Per frame the worker also records whether `scoreFrame`'s no-voice check would
skip it. The ONNX session is reopened on one thread (the package's uses every core).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import random
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort

# eff_word_net.engine and .streams `import pyaudio` at the top, for the microphone class alone; its
# wheel needs PortAudio headers to build, so install.sh leaves it out. A stand-in module lets them
# import; anything that really touches the microphone fails loudly.
def _no_microphone(name: str) -> None:
    raise RuntimeError(f"pyaudio.{name}: pyaudio is not installed (stubbed in efficientword_stream.py)")


_pyaudio = types.ModuleType("pyaudio")
_pyaudio.__getattr__ = _no_microphone
sys.modules.setdefault("pyaudio", _pyaudio)

from eff_word_net import RATE  # noqa: E402
from eff_word_net.audio_processing import LIB_FOLDER_LOCATION, Resnet50_Arc_loss  # noqa: E402
from eff_word_net.engine import HotwordDetector, MultiHotwordDetector  # noqa: E402
from eff_word_net.streams import CustomAudioStream  # noqa: E402

from stream_worker import busy_steps, median_ms, serve  # noqa: E402

MODEL = "models/resnet_50_arc/slim_93%_accuracy_72.7390%.onnx"  # what Resnet50_Arc_loss loads
RAW = 1 - 1e-9  # HotwordDetector asserts 0 < threshold < 1; no score passes this one


def one_thread_model() -> Resnet50_Arc_loss:
    model = Resnet50_Arc_loss()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    model.onnx_sess = ort.InferenceSession(os.path.join(LIB_FOLDER_LOCATION, MODEL), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
    return model


def detector(word: str, takes: list[np.ndarray], model: Resnet50_Arc_loss, tmp: Path) -> HotwordDetector:
    """A HotwordDetector on a reference file made from ``takes`` as generate_reference makes one."""
    embeddings = np.squeeze(np.array([model.audioToVector(model.fixPaddingIssues(t)) for t in takes]))
    ref = tmp / f"{word}_ref.json"
    ref.write_text(json.dumps({"embeddings": embeddings.astype(float).tolist(), "model_type": "resnet_50_arc"}))
    return HotwordDetector(hotword=word, model=model, reference_file=str(ref), threshold=RAW)


def no_voice(frame: np.ndarray) -> bool:
    """scoreFrame's check (unsafe=False): None when the first 0.1 s reaches 0.2 of the frame's maximum."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return bool(max((frame / frame.max())[: RATE // 10]) > 0.2)


def score(audio: np.ndarray, takes: dict[str, list[np.ndarray]], options: dict[str, str]) -> dict:
    window_s, slide_s = float(options.get("window_s", 1.5)), float(options.get("slide_s", 0.75))
    random.seed(int(options.get("seed", "0")))
    model = one_thread_model()
    with tempfile.TemporaryDirectory() as tmp:
        detectors = [detector(word, clips, model, Path(tmp)) for word, clips in takes.items()]
    slide_n = int(slide_s * RATE)
    n_steps = len(audio) // slide_n
    chunks = iter(audio[i * slide_n : (i + 1) * slide_n] for i in range(n_steps))
    stream = CustomAudioStream(open_stream=lambda: None, close_stream=lambda: None, get_next_frame=lambda: next(chunks),
                               window_length_secs=window_s, sliding_window_secs=slide_s)
    stream.start_stream()
    frames, gated, scores = {}, np.zeros(n_steps, bool), np.zeros((n_steps, len(detectors)))
    busy = set(busy_steps(audio, slide_n, n_steps))
    for i in range(n_steps):
        frame = stream.getFrame()
        gated[i] = no_voice(frame)
        vec = model.audioToVector(frame)
        scores[i] = [d.scoreVector(vec) for d in detectors]
        if i in busy:
            frames[i] = frame.copy()
    multi = MultiHotwordDetector(detectors, model=model) if len(detectors) > 1 else None  # it refuses a single word
    steps = sorted(frames)
    return {"ends_s": (np.arange(n_steps) + 1) * slide_s, "gated": gated, "scores": scores,
            "labels": np.array([d.hotword for d in detectors]), "window_s": window_s,
            "latency_ms": median_ms(lambda s: [d.scoreFrame(frames[s], unsafe=True) for d in detectors], steps),
            "best_match_ms": median_ms(lambda s: multi.findBestMatch(frames[s]), steps) if multi else float("nan"),
            "info": {"package": f"efficientword-net {importlib.metadata.version('efficientword-net')}",
                     "window_s": window_s, "slide_s": slide_s, "model": "resnet_50_arc (ONNX, fp32)",
                     "step_work": f"scoreFrame of {len(detectors)} detectors = {len(detectors)} embeddings; "
                                  "findBestMatch = 1"}}


if __name__ == "__main__":
    serve(score)
