"""Where sumtune's training steps lose time against the zero-padding bound: the same batches taken apart.

    python benchmarks/train_padding_profile.py /work/shared/data/ko_dialogsum_2025/dev.csv \
        --config config/model_configs/tiny_kobart.yaml --size base

The batches are those of ``train_throughput.py``'s sumtune lane (sumtune's exact length buckets, same
seed; every ``--every``-th of its first ``--steps``). Each is trained forward + backward in five forms,
which differ in one thing at a time, taking turns batch by batch and round by round (``--rounds``; the
median round counts):

1. sumtune: dynamic padding to a multiple of 8 (``sumtune.data.data_collator``), what ``sumtune train`` does;
2. no rounding: the same padding without ``pad_to_multiple_of``;
3. summaries unpadded: 2's padded sources, with the summaries laid end to end in equal rows;
4. bound + one masked position: the bound's rows, with one source position masked, which makes the
   model apply an attention mask as every padded batch does;
5. the zero-padding bound: sources and summaries both in equal rows (``train_throughput.EqualRows``).

So 1→2 is the cost of rounding to 8, 2→3 of padded summaries, 3→5 of padded sources (with 4 telling
how much of that is the mask itself rather than the positions). The optimizer step, the same for all
forms, is left out.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers

from sumtune import backends, data
from sumtune.batching import LengthBuckets, example_shapes
from sumtune.config import load_config

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
    parser.add_argument("--rounds", type=int, default=3, help="Rounds over all batches and forms; the first is a warm-up.")
    parser.add_argument("--out", type=Path, default=None, help="Also write the Markdown report to this file.")
    return parser.parse_args(argv)


def forms(features, model, tokenizer) -> dict[str, dict]:
    """One batch in the five forms of the module doc."""
    sumtune = data.data_collator(tokenizer, model)(features)
    unrounded = transformers.DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=data.IGNORE_INDEX)(features)
    bound = EqualRows(model)(features)
    summaries_unpadded = dict(unrounded, labels=bound["labels"], decoder_input_ids=bound["decoder_input_ids"])
    masked = dict(bound, attention_mask=bound["attention_mask"].clone())
    masked["attention_mask"][0, -1] = 0
    return {"sumtune (multiple of 8)": sumtune, "no rounding": unrounded, "summaries unpadded": summaries_unpadded,
            "bound + one masked position": masked, "zero-padding bound": bound}


def positions(batch) -> tuple[int, int, int]:
    """Real tokens, source positions, summary positions."""
    real = int(batch["attention_mask"].sum()) + int((batch["labels"] != data.IGNORE_INDEX).sum())
    return real, batch["input_ids"].numel(), batch["labels"].numel()


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
    buckets = LengthBuckets(shapes, cfg.training.per_device_train_batch_size, cfg.training.seed)
    picked = timed_batches(buckets, args.steps)[::args.every]
    columns = ("input_ids", "attention_mask", "labels")
    batches = [forms([{key: train_set[i][key] for key in columns} for i in batch], model, tokenizer) for batch in picked]
    names = list(batches[0])
    model.train()
    bf16 = args.precision == "bf16"
    rounds: list[dict[str, float]] = []
    for round_ in range(args.rounds):
        seconds = dict.fromkeys(names, 0.0)
        for at, batch in enumerate(batches):
            shift = (round_ + at) % len(names)  # a rotating order, as in train_throughput.py
            for name in names[shift:] + names[:shift]:
                seconds[name] += forward_backward(model, batch[name], bf16)
        rounds.append(seconds)
        print(f"round {round_ + 1}/{args.rounds}: " + "  ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
              + f"  load {load_average()}", flush=True)
    timed = rounds[1:] or rounds
    median = {name: statistics.median(r[name] for r in timed) for name in names}
    bound = median["zero-padding bound"]
    bound_real = sum(positions(batch["zero-padding bound"])[0] for batch in batches)
    lines = ["| form | real tokens | source positions | summary positions | seconds (forward + backward) | "
             "of the bound (per real token) |", "|---|---:|---:|---:|---:|---:|"]
    for name in names:
        real, source, summary = (sum(values) for values in zip(*(positions(batch[name]) for batch in batches)))
        lines.append(f"| {name} | {real:,} | {source:,} | {summary:,} | {median[name]:.1f} | "
                     f"{(real / median[name]) / (bound_real / bound):.1%} |")
    facts = {
        "batches": f"{len(batches)} of sumtune's first {args.steps} (every {args.every}th), {sum(map(len, picked))} examples",
        "model": f"{cfg.model.architecture} '{cfg.model.size}' preset from {args.config}, LoRA "
                 f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), {args.precision}",
        "rounds": f"{args.rounds} (median of {len(timed)} after a warm-up round)",
        "machine": machine_fact(load_before),
        "versions": versions_line("python", "torch", "transformers", "peft"),
    }
    publish("\n".join(lines) + "\n\n" + "\n".join(f"- {key}: {value}" for key, value in facts.items()) + "\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
