"""Household enrollment: one prototype (the mean of the takes) or several (one per take)? (issue 17)

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/multi_prototype.py [--bundle DIR] [--draws 400] [--write]

When a household enrolls a word, the takes come from different people and sit far apart. Keeping each take
as its own prototype (a window scores its nearest take, or the mean of its nearest two) could follow each
voice, where the mean of the takes follows none of them. This measures it the way a detector is judged:
a word is enrolled from one take each of 3-5 different speakers, its threshold is set where 1% (and 0.1%)
of other words' clips pass, and the score is the share of the word said by *other* speakers that passes
(true accepts at that false-accept rate), over seeded draws. Two sets of new words to the encoder:
- FSDD digits (6 speakers, evaluation-only): negatives are the other digits, by everyone;
- speechocean762's *test split* (aligned word clips, never trained on): the 2-3 syllable words of
  stream_home's household condition, each said by dozens of speakers; negatives are 2,000 clips of
  other words of the split.
Clips are windowed as the device windows a take (`word_window`), embedded by the bundle's int8 encoder.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from device_results import stamp  # noqa: E402
from results_md import write_section  # noqa: E402

from edge_meta.audio import read_audio  # noqa: E402
from edge_meta.bench.fewshot import FsddSet, embed_clips  # noqa: E402
from edge_meta.bundle import Bundle  # noqa: E402
from edge_meta.device.backends import open_backend  # noqa: E402
from edge_meta.frontend import LogMel  # noqa: E402
from edge_meta.metrics import unit  # noqa: E402
from edge_meta.resources import default_bundle_path  # noqa: E402

ROOT = HERE.parent
OCEAN = ROOT / "cache" / "corpora" / "speechocean762_test"
HOUSEHOLD_WORDS = ("something", "nothing", "people", "little", "about", "better", "never", "again")
FALSE_ACCEPTS = (0.01, 0.001)

# How a window scores against a word's takes T (k, D), all unit length: (N, D) -> (N,)
SCORINGS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "one prototype: the takes' mean (shipped)": lambda e, t: e @ unit(t.mean(0)),
    "a prototype per take: the nearest": lambda e, t: (e @ t.T).max(1),
    "a prototype per take: mean of the nearest two": lambda e, t: np.sort(e @ t.T, 1)[:, -2:].mean(1),
}


class WordSet:
    """Unit embeddings with word and speaker labels; ``targets`` are the words a draw may enroll."""

    def __init__(self, emb: np.ndarray, words: np.ndarray, speakers: np.ndarray, targets: list[int]) -> None:
        self.emb, self.words, self.speakers, self.targets = unit(emb), words, speakers, targets


def fsdd_set(embed: Callable[[list[np.ndarray]], np.ndarray], root: Path) -> WordSet:
    data = FsddSet.load(root)
    return WordSet(embed(data.clips), data.labels, data.speakers, list(range(10)))


def ocean_set(embed: Callable[[list[np.ndarray]], np.ndarray], root: Path, negatives: int, seed: int) -> WordSet:
    """The household words' clips, and ``negatives`` clips of the split's other words (seeded)."""
    own = [(w, c) for w in HOUSEHOLD_WORDS for c in sorted((root / w).glob("*.flac"))]
    others = sorted(c for d in root.iterdir() if d.is_dir() and d.name not in HOUSEHOLD_WORDS for c in d.glob("*.flac"))
    picked = [others[i] for i in np.random.default_rng(seed).permutation(len(others))[:negatives]]
    items = own + [("", c) for c in picked]
    names = sorted({w for w, _ in items})
    clips = [read_audio(c, announce=False) for _, c in items]
    return WordSet(embed(clips), np.array([names.index(w) for w, _ in items]),
                   np.array([c.name.split("_nohash_")[0] for _, c in items]), [names.index(w) for w in HOUSEHOLD_WORDS])


def draw_rates(ws: WordSet, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Per scoring, (draws, len(FALSE_ACCEPTS)) true-accept rates of other speakers' sayings."""
    rng = np.random.default_rng(seed)
    out = {name: [] for name in SCORINGS}
    for _ in range(draws):
        word = ws.targets[int(rng.integers(len(ws.targets)))]
        speakers = rng.permutation(np.unique(ws.speakers[ws.words == word]))
        k = int(rng.integers(3, 6))
        takes = [int(rng.choice(np.flatnonzero((ws.words == word) & (ws.speakers == s)))) for s in speakers[:k]]
        positives = (ws.words == word) & np.isin(ws.speakers, speakers[k:])
        negatives = ws.words != word
        for name, score in SCORINGS.items():
            s = score(ws.emb, ws.emb[takes])
            out[name].append([np.mean(s[positives] > np.quantile(s[negatives], 1 - fa)) for fa in FALSE_ACCEPTS])
    return {name: np.asarray(v) for name, v in out.items()}


def table(results: dict[str, dict[str, np.ndarray]], draws: int) -> str:
    heads = [f"{name}: true accepts at {100 * fa:g}% false accepts" for name in results for fa in FALSE_ACCEPTS]
    lines = [f"% of the word said by other speakers that passes, mean ± 95% CI over {draws} draws "
             "(3-5 takes, one per speaker)", "| scoring | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for scoring in SCORINGS:
        cells = []
        for rates in results.values():
            r = rates[scoring]
            cells += [f"{100 * r[:, j].mean():.1f} ± {196 * r[:, j].std(ddof=1) / np.sqrt(len(r)):.1f}"
                      for j in range(len(FALSE_ACCEPTS))]
        lines.append(f"| {scoring} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="bundle to measure (default: the shipped one)")
    p.add_argument("--fsdd", default=str(ROOT.parent / "shared" / "data" / "fsdd"))
    p.add_argument("--draws", type=int, default=400, help="seeded enrollment draws per set (default 400)")
    p.add_argument("--negatives", type=int, default=2000, help="other words' clips of speechocean762 (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="update the multi-prototype section of benchmarks/RESULTS.md")
    args = p.parse_args()
    if args.draws < 2:
        p.error(f"--draws {args.draws}: give at least 2 (the confidence interval needs them)")
    bundle = Bundle.open(args.bundle or default_bundle_path())
    backend, logmel = open_backend(bundle), LogMel(bundle.frontend)
    embed = lambda clips: embed_clips(backend, logmel, clips)  # noqa: E731
    sets = {"FSDD": lambda: fsdd_set(embed, Path(args.fsdd))}
    if OCEAN.is_dir():
        sets["speechocean762 test words"] = lambda: ocean_set(embed, OCEAN, args.negatives, args.seed)
    else:
        print(f"speechocean762 skipped: {OCEAN} is missing (import it: `edge-meta data speechocean762`)")
    results = {}
    for name, load in sets.items():
        print(f"embedding {name} ...", flush=True)
        results[name] = draw_rates(load(), args.draws, args.seed)
    text = f"Bundle `{bundle.bundle_id}`.\n\n" + table(results, args.draws)
    print(text)
    if args.write:
        write_section("multi-prototype", "### Household enrollment: one prototype or one per take (issue 17)\n\n"
                      f"{stamp()}.\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
