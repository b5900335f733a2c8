"""Where sumtune's training steps lose time against the zero-padding bound: the same batches taken apart.

    python benchmarks/train_padding_profile.py /work/shared/data/ko_dialogsum_2025/dev.csv \
        --config config/model_configs/tiny_kobart.yaml --size base

The batches are those of ``train_throughput.py``'s sumtune lane (sumtune's exact length buckets, same
seed; every ``--every``-th of its first ``--steps``). Each is trained forward + backward in four forms,
which differ in one thing at a time:

1. rounded to 8: dynamic padding to a multiple of 8, what ``sumtune train`` does on a GPU;
2. sumtune: dynamic padding without rounding (``sumtune.data.data_collator`` on a CPU);
3. summaries unpadded: 2's padded sources, with the summaries laid end to end in equal rows;
4. the zero-padding bound: sources and summaries both in equal rows (``train_throughput.EqualRows``);

so 1→2 is the cost of rounding to 8, 2→3 of padded summaries, 3→4 of padded sources. A fifth form, one
row of 8 source and 8 summary tokens, measures what a step costs whatever its tokens (the weights'
casts, the LoRA layers, the Python around each module): the larger that share, the less padding weighs.
The optimizer step, the same for all forms, is left out.

The forms of one batch run back to back in a rotating order, batch after batch, for ``--rounds``
rounds, so that in every round all forms see the same load from other processes. A form's share of the
bound is its real tokens/s ÷ the bound's within a round (each over all batches, so long batches weigh
as much as they cost), the median over rounds, with the lowest and highest beside it.

Before timing, a second table says what other ways of cutting the whole data set into batches of the
same size would leave as padding (no model runs for it): each sequence's pad share, and the share of a
step's work that real tokens get when a position costs what it multiplies, the encoder's layers for a
source position, the decoder's layers and the output layer for a summary position (for KoBART's shape
a summary position costs 1.9 source positions).
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers

from sumtune import backends, data
from sumtune.batching import LengthBuckets, example_shapes, least_padded_work
from sumtune.config import load_config
from sumtune.train import position_weights

from common import load_average, machine_fact, publish, versions_line
from train_throughput import DEFAULT_CONFIG, EqualRows, timed_batches


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="CSV/JSONL with dialogue and summary columns.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="sumtune run config (default: tiny_bart.yaml).")
    parser.add_argument("--size", default="small", help="Scratch size preset (model.size); default: small.")
    parser.add_argument("--batch-size", type=int, default=None, help="Rows per batch (default: the config's, 8).")
    parser.add_argument("--max-source-length", type=int, default=512)
    parser.add_argument("--max-target-length", type=int, default=128)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"], help="Autocast or not (default: bf16).")
    parser.add_argument("--steps", type=int, default=30, help="The benchmark's timed steps, whose batches are sampled.")
    parser.add_argument("--every", type=int, default=5, help="Take every N-th of those batches (default: 5).")
    parser.add_argument("--rounds", type=int, default=4, help="Rounds over all batches and forms (default: 4; 0: only the table of batch orders).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the Markdown report to this file.")
    return parser.parse_args(argv)


BOUND, PROBE = "zero-padding bound", "one row, 8 + 8 tokens"


def forms(features, model, tokenizer) -> dict[str, dict]:
    """One batch in the forms of the module doc."""
    rounded = transformers.DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=data.IGNORE_INDEX,
                                                  pad_to_multiple_of=8)(features)
    unrounded = data.data_collator(tokenizer, model)(features)
    bound = EqualRows(model)(features)
    summaries_unpadded = dict(unrounded, labels=bound["labels"], decoder_input_ids=bound["decoder_input_ids"])
    probe = EqualRows(model)([{key: features[0][key][:8] for key in ("input_ids", "labels")}])
    return {"rounded to 8 (GPU)": rounded, "sumtune (CPU)": unrounded, "summaries unpadded": summaries_unpadded,
            BOUND: bound, PROBE: probe}


def positions(batch) -> tuple[int, int, int]:
    """Real tokens, source positions, summary positions."""
    real = int(batch["attention_mask"].sum()) + int((batch["labels"] != data.IGNORE_INDEX).sum())
    return real, batch["input_ids"].numel(), batch["labels"].numel()


def window_sorted(order: list[int], shapes, window: int) -> list[int]:
    """``order`` (sorted by source length) re-sorted by summary length inside each run of ``window`` examples."""
    return [i for at in range(0, len(order), window)
            for i in sorted(order[at:at + window], key=lambda i: (shapes[i][1], shapes[i][0]))]


def sort_orders(shapes, batch_size: int, seed: int, cost: tuple[float, float]) -> str:
    """The batch orders of the module doc's second table, as a Markdown table."""
    every = range(len(shapes))
    by_source = sorted(every, key=lambda i: shapes[i])
    shuffled = list(every)
    random.Random(seed).shuffle(shuffled)
    cut = lambda order: [order[at:at + batch_size] for at in range(0, len(order), batch_size)]  # noqa: E731
    ascending = [shapes[i] for i in by_source]
    layouts = {
        "stretches re-sorted by summary (sumtune)": [[by_source[p] for p in batch]
                                                     for batch in least_padded_work(ascending, batch_size, cost)],
        "source, then summary": cut(by_source),
        "source + summary": cut(sorted(every, key=lambda i: (sum(shapes[i]), shapes[i]))),
        **{f"source, then summary inside every {k} batches": cut(window_sorted(by_source, shapes, k * batch_size))
           for k in (2, 4)},
        "random ((b))": cut(shuffled),
    }
    lines = ["| batches cut from | rounded to | source pad | summary pad | real share of the work |",
             "|---|---:|---:|---:|---:|"]
    for name, batches in layouts.items():
        for multiple in (8, 1):
            real, padded = [0, 0], [0, 0]
            for batch in batches:
                rows = [shapes[i] for i in batch]
                for side in (0, 1):
                    real[side] += sum(row[side] for row in rows)
                    padded[side] += len(rows) * -(-max(row[side] for row in rows) // multiple) * multiple
            work = lambda counts: cost[0] * counts[0] + cost[1] * counts[1]  # noqa: E731
            lines.append(f"| {name} | {multiple} | {1 - real[0] / padded[0]:.1%} | {1 - real[1] / padded[1]:.1%} | "
                         f"{work(real) / work(padded):.1%} |")
    return "\n".join(lines)


def forward_backward(model, batch, bf16: bool) -> float:
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad()
    return time.perf_counter() - started


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = [f"data.train_file={args.data}", "data.eval_file=null", "data.test_file=null",
                 f"data.max_source_length={args.max_source_length}", f"data.max_target_length={args.max_target_length}",
                 f"model.size={args.size}",
                 *([f"training.per_device_train_batch_size={args.batch_size}"] if args.batch_size else [])]
    cfg = load_config(args.config, overrides)
    transformers.logging.set_verbosity_error()
    logging.getLogger("sumtune").setLevel(logging.WARNING)
    load_before = load_average()
    examples = data.read_examples(cfg.data.train_file, cfg.data, limit=cfg.data.max_train_samples)
    plan = backends.resolve(cfg, backends.probe_machine(cfg))
    torch.manual_seed(cfg.training.seed)
    base = backends.load(plan, cfg, data.tokenizer_training_texts(data.Splits(examples, None)))
    model, tokenizer = base.model, base.tokenizer
    train_set = data.encode_examples(examples, cfg, tokenizer, "train")
    shapes = example_shapes(train_set, cfg.arch.kind)
    cost = position_weights(model)
    orders = sort_orders(shapes, cfg.training.per_device_train_batch_size, cfg.training.seed, cost)
    print(orders, flush=True)
    if not args.rounds:
        publish(orders + f"\n\n- position costs (sumtune.train.position_weights): a summary position costs {cost[1]:.2f} "
                f"source positions, {args.config} at model.size {cfg.model.size}\n", args.out)
        return 0
    buckets = LengthBuckets(shapes, cfg.training.per_device_train_batch_size, cfg.training.seed, weights=cost)
    picked = timed_batches(buckets, args.steps)[::args.every]
    columns = ("input_ids", "attention_mask", "labels")
    batches = [forms([{key: train_set[i][key] for key in columns} for i in batch], model, tokenizer) for batch in picked]
    names = list(batches[0])
    model.train()
    bf16 = args.precision == "bf16"
    times = {(at, name): [] for at in range(len(batches)) for name in names}  # seconds, one per round
    for round_ in range(args.rounds):
        for at, batch in enumerate(batches):
            shift = (round_ + at) % len(names)  # a rotating order, as in train_throughput.py
            for name in names[shift:] + names[:shift]:
                times[at, name].append(forward_backward(model, batch[name], bf16))
        print(f"round {round_ + 1}/{args.rounds}: " + "  ".join(
            f"{name} {sum(times[at, name][-1] for at in range(len(batches))):.1f} s" for name in names)
              + f"  load {load_average()}", flush=True)
    per_round = {name: [sum(times[at, name][round_] for at in range(len(batches))) for round_ in range(args.rounds)]
                 for name in names}  # seconds of all batches, round by round
    real = {name: sum(positions(batch[name])[0] for batch in batches) for name in names}
    shares = {name: sorted((real[name] / form) / (real[BOUND] / bound)
                           for form, bound in zip(per_round[name], per_round[BOUND])) for name in names}
    fixed = statistics.median(probe / bound for probe, bound in zip(per_round[PROBE], per_round[BOUND]))
    lines = ["| form | real tokens | source positions | summary positions | seconds a round (median) | "
             "of the bound per real token: median (lowest–highest round) |", "|---|---:|---:|---:|---:|---:|"]
    for name in names:
        _, source, summary = (sum(values) for values in zip(*(positions(batch[name]) for batch in batches)))
        share = shares[name]
        lines.append(f"| {name} | {real[name]:,} | {source:,} | {summary:,} | {statistics.median(per_round[name]):.1f} | "
                     + (f"{statistics.median(share):.1%} ({share[0]:.1%}–{share[-1]:.1%}) |" if name != PROBE
                        else f"(its time is {fixed:.1%} of the bound's) |"))
    facts = {
        "position costs": f"a summary position costs {cost[1]:.2f} source positions (parameters it goes through, "
                          "sumtune.train.position_weights)",
        "batches": f"{len(batches)} of sumtune's first {args.steps} (every {args.every}th), {sum(map(len, picked))} examples",
        "model": f"{cfg.model.architecture} '{cfg.model.size}' preset from {args.config}, LoRA "
                 f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), {args.precision}",
        "rounds": f"{args.rounds}; share of the bound: the form's real tokens/s ÷ the bound's, over all batches within "
                  f"a round, median over rounds",
        "machine": machine_fact(load_before),
        "versions": versions_line("python", "torch", "transformers", "peft"),
    }
    publish(orders + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {key}: {value}" for key, value in facts.items()) + "\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
