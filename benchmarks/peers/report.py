"""The side-by-side table (values, then each edge-meta row divided by the best peer) and the DET plot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_meta.metrics import Estimate

from .evaluate import SetResult, Trials
from .systems import System

STREAM_NOTE = ("Stream FRR at <= 0.5 FA/h: n/a in this table. edge-meta's own streaming numbers come from "
               "benchmarks/stream_fsdd.py (its section of this file). Two peers ship a detector for user-enrolled "
               "words that scores a stream: local-wake (DTW of a 2 s buffer against the takes every 0.25 s) and "
               "EfficientWord-Net (`HotwordDetector.scoreFrame` on 1.5 s frames). openWakeWord scores frames only "
               "for its fixed pre-trained phrases, and Resemblyzer is no detector. The two run on edge-meta's "
               "streams in benchmarks/peers_stream.py: see its section below (peers-stream).")


# On this shared machine timings within 1.2x of each other, or 0.05 ms, are not a difference.
TIMING_NOISE, TIMING_FLOOR_MS = 1 / 1.2, 0.05


@dataclass(frozen=True)
class Column:
    name: str
    higher_is_better: bool
    fmt: str  # "pct", "ci", "ratio", "ms", "bytes", "mb"


def value(result: SetResult, system: System, name: str) -> float | Estimate | None:
    if name in result.fewshot:
        return result.fewshot[name]
    if name in result.open_set:
        return result.open_set[name]
    if name in result.eer:
        return result.eer[name]
    return system.cost.get(name)


def columns(result: SetResult, system: System) -> list[Column]:
    cols = [Column(n, True, "ci") for n in result.fewshot]
    cols += [Column(n, True, "ratio" if n == "auroc" else "pct") for n in result.open_set]
    cols += [Column(n, False, "pct") for n in result.eer]
    if result.open_set:
        cols += [Column(n, False, f) for n, f in (("ms / 1 s window", "ms"), ("match ms", "ms"),
                                                  ("model bytes", "bytes"), ("peak RSS MB", "mb"))]
    return cols


def _number(v: float | Estimate | None) -> float:
    return float("nan") if v is None else (v.mean if isinstance(v, Estimate) else float(v))


def _cell(v: float | Estimate | None, fmt: str) -> str:
    if v is None or (not isinstance(v, Estimate) and math.isnan(v)):
        return "n/a"
    if isinstance(v, Estimate):
        return v.pct()
    return {"pct": f"{100 * v:.1f}", "ratio": f"{v:.3f}", "ms": f"{v:.3g}", "bytes": f"{v:,.0f}",
            "mb": f"{v:.0f}"}[fmt]


def table(title: str, results: dict[str, SetResult], systems: list[System]) -> str:
    """Markdown table: a row per system, then a ``÷ best peer`` row per edge-meta system
    (> 1 is better where higher is better (↑), < 1 where lower is better (↓))."""
    ref = systems[0]
    cols = columns(results[ref.name], ref)
    head = [f"{c.name} {'↑' if c.higher_is_better else '↓'}" for c in cols]
    lines = [title, "", "| system | " + " | ".join(head) + " |", "|---" * (len(cols) + 1) + "|"]
    for s in systems:
        cells = [_cell(value(results[s.name], s, c.name), c.fmt) for c in cols]
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    peers = [s for s in systems if s.is_peer]
    for s in systems:
        if s.is_peer:
            continue
        cells = []
        for c in cols:
            theirs = [_number(value(results[p.name], p, c.name)) for p in peers]
            theirs = [t for t in theirs if not math.isnan(t)]
            mine = _number(value(results[s.name], s, c.name))
            best = (max if c.higher_is_better else min)(theirs) if theirs else float("nan")
            cells.append("n/a" if not theirs or math.isnan(mine) or best == 0 else f"{mine / best:.2f}×")
        lines.append(f"| *{s.name} ÷ best peer* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def behind(results: dict[str, SetResult], systems: list[System]) -> list[str]:
    """One line per (edge-meta system, column) where a peer does better: the gap and which peer."""
    notes = []
    for s in (s for s in systems if not s.is_peer):
        for c in columns(results[s.name], s):
            mine = _number(value(results[s.name], s, c.name))
            scored = [(_number(value(results[p.name], p, c.name)), p.name) for p in systems if p.is_peer]
            scored = [(v, n) for v, n in scored if not math.isnan(v)]
            if not scored or math.isnan(mine):
                continue
            best, who = (max if c.higher_is_better else min)(scored)
            if c.fmt == "ms" and (mine - best < TIMING_FLOOR_MS or best > mine * TIMING_NOISE):
                continue
            if (best > mine) if c.higher_is_better else (best < mine):
                fmt = "pct" if c.fmt == "ci" else c.fmt
                low, high = sorted((mine, best))
                gap = (f"{100 * (high - low):.1f} points" if fmt == "pct" else f"{high - low:.3f}" if fmt == "ratio"
                       else f"{high / low:.1f}×" if low > 0 else f"{_cell(high - low, fmt)} more")
                notes.append(f"{s.name} trails {who} on {c.name}: {_cell(mine, fmt)} vs {_cell(best, fmt)} ({gap})")
    return notes


def _probit(p: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(np.clip(p, 1e-4, 1 - 1e-4))


def det_points(trials: Trials) -> tuple[np.ndarray, np.ndarray]:
    """(false-accept rate, miss rate) at every threshold."""
    target, nontarget = trials
    thresholds = np.unique(np.concatenate([target[np.isfinite(target)], nontarget]))
    fa = 1.0 - np.searchsorted(np.sort(nontarget), thresholds, side="left") / len(nontarget)
    miss = np.searchsorted(np.sort(target), thresholds, side="left") / len(target)
    return fa, miss


def det_plot(results: dict[str, SetResult], systems: list[System], path: Path, title: str) -> None:
    """One panel per DET curve kind (keyword open set, speaker any word, speaker same word)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(results[systems[0].name].det)
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 5), squeeze=False)
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    limits = _probit(np.array([0.0005, 0.98]))
    for ax, kind in zip(axes[0], kinds):
        for s in systems:
            fa, miss = det_points(results[s.name].det[kind])
            ax.plot(_probit(fa), _probit(miss), label=s.name, lw=2.2 if not s.is_peer else 1.2,
                    ls="-" if not s.is_peer else "--")
        ax.set_xticks(_probit(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_yticks(_probit(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
        ax.set_xlabel("false accepts, %")
        ax.set_ylabel("misses, %")
        ax.set_title(kind)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
