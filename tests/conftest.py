"""Shared fixtures: the real corpora in ../shared/data (tests that need them skip when absent)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import edge_meta  # noqa: F401,E402 - first, so that onnxruntime's telemetry is off in every test (edge_meta/__init__.py)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _corpus(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"real-speech corpus {path} is absent (it ships beside the project in ../shared/data)")
    return path


def _pin_torch() -> None:
    try:
        import torch
    except ImportError:  # a device-only install: nothing to pin
        return
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread for the whole run, set before any module's fixture trains: the order of a float sum
    follows the thread count, so a tiny training run would end in other weights on a machine with more cores,
    or after a test that changed the count, and a test's outcome would depend on where and after what it ran."""
    _pin_torch()


@pytest.fixture(autouse=True)
def same_start_for_every_test():
    """Each test starts from the same seeds and leaves one torch thread behind it, whatever order the tests run
    in (`pytest -p random_order --random-order-seed=N`)."""
    random.seed(0)
    import numpy as np

    np.random.seed(0)
    _pin_torch()
    yield
    _pin_torch()


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return _corpus("fsdd")


@pytest.fixture(scope="session")
def gsc_dir() -> Path:
    return _corpus("speech_commands_test")


@pytest.fixture(scope="session")
def arabic_dir() -> Path:
    return _corpus("arabic_speech_commands")


@pytest.fixture(scope="session")
def real_features(gsc_dir):
    """Log-mel features of ~800 real Speech Commands clips (20 words, no digits) with word and speaker ids."""
    import numpy as np

    from edge_meta.corpora import ENGLISH_EVAL_WORDS, load_clips, read_corpus
    from edge_meta.frontend import FrontendSpec, LogMel

    corpus = read_corpus(gsc_dir).without_words(ENGLISH_EVAL_WORDS)
    rng = np.random.default_rng(0)
    items = []
    for word in corpus.words:
        mine = [i for i in corpus.items if i.word == word]
        items += [mine[j] for j in rng.permutation(len(mine))[:40]]
    feats = LogMel(FrontendSpec()).batch(load_clips(items, FrontendSpec().window_samples))
    words, speakers = sorted({i.word for i in items}), sorted({i.speaker for i in items})
    labels = np.array([words.index(i.word) for i in items])
    return feats, labels, np.array([speakers.index(i.speaker) for i in items])


@pytest.fixture()
def episodes(real_features):
    """episodes(n_way, k_shot, q_query, seed) -> iterator of (support, support_y, query, query_y) torch tensors."""
    import torch

    from edge_meta.episodes import EpisodeSampler

    feats, labels, speakers = real_features

    def make(n_way=5, k_shot=2, q_query=3, seed=0):
        sampler = EpisodeSampler(labels, speakers, n_way, k_shot, q_query, "any", seed)
        while True:
            ep = sampler.sample()
            yield (torch.from_numpy(feats[ep.support]), torch.from_numpy(ep.support_y),
                   torch.from_numpy(feats[ep.query]), torch.from_numpy(ep.query_y))

    return make


@pytest.fixture()
def tiny_recipe(tmp_path, gsc_dir):
    """Writes a recipe for a tiny DS-CNN on real Speech Commands clips (seconds of CPU) and returns its path."""

    def write(out: Path, steps: int, seed: int = 1) -> Path:
        recipe = tmp_path / f"{out.name}.toml"
        recipe.write_text(f"""
out = "{out}"
cache_dir = "{tmp_path / 'cache'}"
seed = {seed}
device = "cpu"
precision = "fp32"
[[corpora]]
path = "{gsc_dir}"
exclude_eval_words = true
[encoder]
name = "dscnn"
channels = 16
embed_dim = 32
[episodes]
n_way = 5
k_shot = 2
q_query = 3
real_ratio = 1.0
[optim]
steps = {steps}
lr = 0.005
warmup = 2
[validation]
every = {steps}
episodes = 10
n_way = 5
shots = [1]
""")
        return recipe

    return write


_BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)  # as where it is not installed
sys.meta_path.insert(0, BlockTorch())
"""


@pytest.fixture()
def run_without_torch(tmp_path):
    """Runs Python code in a fresh interpreter where importing torch fails, as on a device without it."""

    def run(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _BLOCK_TORCH + textwrap.dedent(code)], capture_output=True,
                              text=True, cwd=tmp_path, timeout=timeout)

    return run
