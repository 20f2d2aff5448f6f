"""Command language model: held-out synthetic users, un-adapted vs Meta-Networks-adapted (1/3/5 examples).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/commands_lm.py --checkpoint runs/commands/best.pt \
        [--users 200] [--queries 20] [--rates 0,0,0 0.1,0.1,0.05 ...] [--write]

Everything runs through the exported device model (onnxruntime, `edge_meta.device.commands`): the
checkpoint is exported to a temporary ``commands/`` folder first (or give ``--model DIR``). Measures
the query perplexity of each held-out user's phrases, un-adapted vs adapted to their 1/3/5 examples,
and command accuracy from noisy word detections with no LM, the un-adapted LM and the adapted LM
(and the user's true phrase distribution as a ceiling); `PROTOCOL` below says exactly how.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from edge_meta.commands.decoding import (ChannelModel, CommandPrior, candidate_phrases, decode, label_key,  # noqa: E402
                                         project)
from edge_meta.commands.noise import NoiseRates, noisy_detections  # noqa: E402
from edge_meta.commands.users import held_out_users  # noqa: E402
from edge_meta.device.commands import CommandModel, CommandProfile  # noqa: E402
from edge_meta.metrics import mean_ci  # noqa: E402
from results_md import write_section  # noqa: E402

SHOTS = (1, 3, 5)
DECODERS = ("no LM", "un-adapted LM", "adapted LM")
ORACLE = "true habits"
ORACLE_SAMPLES = 3000


def parse_rates(text: str) -> NoiseRates:
    sub, dele, ins = (float(x) for x in text.split(","))
    return NoiseRates(sub, dele, ins)


def accuracy(prior: CommandPrior, queries, rates: NoiseRates, rng: np.random.Generator) -> float:
    index = {tuple(k.split()): i for i, k in enumerate(prior.labels)}
    longest = max(len(k) for k in index)
    channel = ChannelModel(rates.substitution, rates.deletion, rates.insertion)
    hits = []
    for q in queries:
        units = [prior.labels[i] for i in project(q.words, index, longest)]
        event = decode(prior, noisy_detections(units, prior.labels, rates, rng), channel)
        hits.append(event is not None and event.command == q.command)
    return float(np.mean(hits))


def oracle_prior(model: CommandModel, user, labels: list[str], examples) -> CommandPrior:
    """The decoder's prior from the user's own phrase distribution (sampled): the ceiling for adaptation."""
    phrases = candidate_phrases(model.grammar, labels, examples)
    rng = np.random.default_rng(0)
    counts = Counter(model.grammar.strip_wrappers(p.words) for p in user.phrases(ORACLE_SAMPLES, rng))
    return CommandPrior.build(phrases, labels, np.log([counts[p.words] + 0.01 for p in phrases]))


def run(model: CommandModel, n_users: int, n_queries: int, rates: list[NoiseRates], seed: int) -> dict:
    """Per-user values: perplexities by (examples, model), accuracies by (examples, rates, decoder)."""
    users = held_out_users(model.grammar, n_users, seed)
    ppl: dict[tuple[int, str], list[float]] = {}
    acc: dict[tuple[int, NoiseRates, str], list[float]] = {}
    adapt_ms, decode_ms = [], []
    for u, user in enumerate(users):
        rng = np.random.default_rng([seed, u])
        support, queries = user.phrases(max(SHOTS), rng), user.phrases(n_queries, rng)
        labels = [label_key(x) for x in user.enrolled_labels()]
        words = [q.words for q in queries]
        tokens = model.token_count(words)
        priors = {(0, "no LM"): model.prior(labels, use_lm=False), (0, "un-adapted LM"): model.prior(labels)}
        for k in SHOTS:
            examples = [s.words for s in support[:k]]
            for name, generate in (("un-adapted", False), ("adapted", True)):
                lp = model.log_probs(words, model.adapt(examples, generate=generate))
                ppl.setdefault((k, name), []).append(math.exp(-lp.sum() / tokens))
            profile = CommandProfile(support[:k])
            start = time.perf_counter()
            priors[(k, "adapted LM")] = model.prior(labels, profile)
            adapt_ms.append(1000 * (time.perf_counter() - start))
            priors[(k, "no LM")] = model.prior(labels, profile, use_lm=False)
            priors[(k, "un-adapted LM")] = model.prior(labels, profile, adapt=False)
        priors[(max(SHOTS), ORACLE)] = oracle_prior(model, user, labels, support)
        for (k, name), prior in priors.items():
            for r in rates:
                noise = np.random.default_rng([seed, u, 1])  # the same detections for every decoder
                acc.setdefault((k, r, name), []).append(accuracy(prior, queries, r, noise))
        start = time.perf_counter()
        accuracy(priors[(5, "adapted LM")], queries[:5], rates[-1], rng)
        decode_ms.append(1000 * (time.perf_counter() - start) / 5)
        if (u + 1) % 25 == 0:
            print(f"{u + 1}/{len(users)} users", file=sys.stderr)
    return {"ppl": ppl, "acc": acc, "adapt_ms": float(np.median(adapt_ms)), "decode_ms": float(np.median(decode_ms))}


def _pt(values) -> str:
    e = mean_ci(values)
    return f"{100 * e.mean:+.1f} ± {100 * e.ci95:.1f}"


def tables(result: dict, rates: list[NoiseRates], n_users: int, n_queries: int) -> str:
    ppl, acc = result["ppl"], result["acc"]
    lines = [f"Query perplexity per word (lower is better), {n_users} held-out users x {n_queries} phrases; "
             "change = per-user relative change, paired:", "",
             "| examples | un-adapted | adapted (Meta Networks) | change (%) |", "|---|---|---|---|"]
    for k in SHOTS:
        a, b = np.array(ppl[(k, "un-adapted")]), np.array(ppl[(k, "adapted")])
        ea, eb = mean_ci(a), mean_ci(b)
        lines.append(f"| {k} | {ea.mean:.2f} ± {ea.ci95:.2f} | {eb.mean:.2f} ± {eb.ci95:.2f} | {_pt(b / a - 1)} |")
    lines += ["", "Command accuracy (%) from noisy word detections (rates: substitution / deletion / insertion); "
              "gain = adapted minus no LM, paired per user, in points; true habits = the prior is the user's own "
              f"phrase distribution ({ORACLE_SAMPLES} samples), the ceiling for adaptation:", "",
              "| detections | examples | " + " | ".join(DECODERS) + f" | gain | {ORACLE} |",
              "|---" * (len(DECODERS) + 4) + "|"]
    for r in rates:
        for k in (0, *SHOTS):
            cells = [mean_ci(acc[(k, r, d)]).pct() if (k, r, d) in acc else "–" for d in DECODERS]
            gain = _pt(np.subtract(acc[(k, r, "adapted LM")], acc[(k, r, "no LM")])) if k else "–"
            oracle = mean_ci(acc[(k, r, ORACLE)]).pct() if (k, r, ORACLE) in acc else "–"
            lines.append(f"| {r} | {k} | " + " | ".join(cells) + f" | {gain} | {oracle} |")
    lines += ["", f"Device cost (1 thread, median): adapting to 5 examples and weighing every candidate command "
              f"{result['adapt_ms']:.0f} ms; decoding one utterance {result['decode_ms']:.2f} ms."]
    return "\n".join(lines)


PROTOCOL = """\
Protocol: held-out synthetic users (their own words from the evaluation pools, never seen in training), each with
5 example phrases (the 1- and 3-example sets are the first 1 and 3 of them) and other phrases of theirs as queries.
The household enrolls the grammar's content words and its own slot values as keywords; function and politeness
words are never heard. A query becomes the detections of its enrolled words with errors injected at the stated
rates; every score is 0.5 (the score adds no evidence) and the decoder's channel model is told the true rates.
*No LM*: every candidate command equally likely; *un-adapted LM*: the meta-trained slow LM (same placeholders, no
fast weights); *adapted LM*: fast weights generated from the examples; all three weigh the same candidate
commands. A wrong command and no command both count as errors. 95% intervals over users."""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="command model checkpoint (exported to a temporary folder first)")
    src.add_argument("--model", help="an exported commands/ folder")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--rates", nargs="+", default=["0,0,0", "0.1,0.1,0.05", "0.2,0.2,0.1", "0.3,0.3,0.15"],
                   help="substitution,deletion,insertion triples")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args()
    rates = [parse_rates(r) for r in args.rates]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model
        if args.checkpoint:
            import torch

            from edge_meta.export.command_export import export_command_model

            torch.set_num_threads(1)
            folder = str(export_command_model(args.checkpoint, Path(tmp) / "commands")[0].parent)
        result = run(CommandModel(folder), args.users, args.queries, rates, args.seed)
        provenance = json.loads((Path(folder) / "vocab.json").read_text())["provenance"]
    body = tables(result, rates, args.users, args.queries)
    print(body)
    if args.write:
        cmd = "OPENBLAS_NUM_THREADS=1 .venv/bin/python " + " ".join(["benchmarks/commands_lm.py", *sys.argv[1:]])
        header = (f"### Command language model (Meta Networks adaptation)\n\nMeasured {dt.date.today()} on "
                  f"{platform.machine()}, {os.cpu_count()} cores ({platform.processor() or platform.platform()}), "
                  f"model of `export/recipes/commands.toml` (best step {provenance['step']}).\n"
                  f"Command: `{cmd}`\n\n{PROTOCOL}\n")
        write_section("commands", header + "\n" + body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
