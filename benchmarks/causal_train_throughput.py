"""Causal (decoder-only) training throughput: sumtune against padding baselines and TRL's SFTTrainer, in one run.

    OMP_NUM_THREADS=1 python benchmarks/causal_train_throughput.py /work/shared/data/ko_dialogsum_2025/dev.csv
    OMP_NUM_THREADS=1 python benchmarks/causal_train_throughput.py DATA --batch-size 4 --skip d --out /tmp/causal.md

A Llama-shape model from scratch (``config/model_configs/tiny_llama.yaml`` at ``--size``, LoRA, a BPE
tokenizer trained on the data) learns chat-template summaries with the prompt masked (labels -100), one
epoch of the first ``steps × batch size`` examples, so that every fixed-batch variant trains on the same
examples. The variants, each on its own deep copy of the same initial weights, interleaved step by step:

- sumtune: what ``sumtune train`` does: exact length bucketing (``sumtune.batching``), dynamic padding
  (multiple of 8), default precision (``training.precision: auto``: bf16 autocast on a CPU with
  AVX512-BF16/AMX), no packing (``training.packing: auto`` resolves to off under sdpa attention);
- sumtune packing: ``training.packing: true``: the same buckets, each batch one unpadded row
  (DataCollatorWithFlattening, attention kept inside each example), default precision;
- (c) random order + dynamic padding (``training.group_by_length: false``), at sumtune's precision;
- (d) every example padded to max_source_length + max_target_length (done here, never in sumtune), at
  sumtune's precision;
- TRL defaults: ``trl.SFTTrainer`` given the same initial model and a LoRA config of the same shape
  (``peft_config``), with ``SFTConfig``'s defaults — gradient checkpointing on, bf16 on,
  loss ``chunked_nll`` (the LM head only on completion tokens), no packing, no padding-free, random
  order, padding to the batch's longest — on the same conversations in TRL's conversational
  prompt/completion format (completion-only loss), TRL tokenizing them itself with the same tokenizer;
- TRL matched: the same at sumtune's settings: its precision, no gradient checkpointing;
- zero-padding bound: each of the sumtune lane's batches, its real tokens laid out in equal-length rows
  (same row count, no padding, no mask), at sumtune's precision: the time of the same steps on the same
  real tokens with no padding at all.

Each variant's loader, optimizer, schedule and ``training_step`` come from its own Trainer (sumtune's
``build_hf_trainer``, or TRL's ``SFTTrainer``); the per-step work (fetch, forward + backward, clip,
optimizer and scheduler step) runs here, interleaved, as in ``train_throughput.py``. Real tokens per step:
the non-pad positions (prompt + completion) of the batch trained on.

Speeds are real tokens per second of this process's CPU time (``time.process_time``), wall time beside
it. On a machine shared with other jobs, wall time measures the share of the CPU the benchmark got: a
first run at load average 5 on 2 cores, torch's 2 threads, took about 5.5 s a step in every variant,
whatever its work (pad-to-max_length's 48 % padding came out only 1.09× slower), because a step waits
on whichever of its threads was descheduled. Run with ``OMP_NUM_THREADS=1``: one thread, whose CPU
time is the work done, however busy the machine.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import transformers

from sumtune import artifacts, backends, data
from sumtune.architectures import SIZE_PRESETS
from sumtune.config import load_config
from sumtune.precision import resolve_precision
from sumtune.train import build_hf_trainer, count_parameters

from common import load_average, machine_fact, machine_line, publish, versions_line
from train_throughput import percentiles, run_interleaved

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "model_configs" / "tiny_llama.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="CSV/JSONL with dialogue and summary columns (the training data).")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="sumtune run config of a chat-style causal family (default: tiny_llama.yaml).")
    parser.add_argument("--size", default="small", help="Scratch size preset (model.size); default: small.")
    parser.add_argument("--steps", type=int, default=30, help="Timed optimizer steps per variant = one epoch of steps × batch size examples (default 30).")
    parser.add_argument("--batch-size", type=int, default=8, help="Examples per step, every variant (default 8).")
    parser.add_argument("--max-source-length", type=int, default=512, help="data.max_source_length: prompt tokens.")
    parser.add_argument("--max-target-length", type=int, default=128, help="data.max_target_length: completion tokens.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed warm-up steps per variant, on throwaway model copies.")
    parser.add_argument("--skip", action="append", default=[], metavar="KEY", help="Leave a variant out (repeatable).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Extra config override, as for `sumtune train --set` (repeatable).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the Markdown report to this file.")
    return parser.parse_args(argv)


# --- variants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    name: str
    sampler: str  # "buckets" (sumtune.batching) or "random"
    layout: str  # how a batch's rows are laid out
    precision: str = "default"  # sumtune's default (training.precision auto); "trl": TRL's own default
    tool: str = "sumtune"  # "sumtune", "trl" or "bound"
    packing: bool = False
    pad_to_max: bool = False
    checkpointing: bool = False


SAMPLERS = {"buckets": "exact length buckets", "random": "random"}
VARIANTS = [
    Variant("sumtune", "sumtune", "buckets", "dynamic, multiple of 8", precision="default"),
    Variant("packing", "sumtune packing", "buckets", "packed: one row, no padding", precision="default", packing=True),
    Variant("c", "(c) random + dynamic", "random", "dynamic, multiple of 8", precision="default"),
    Variant("d", "(d) pad to max_length", "random", "max_length", precision="default", pad_to_max=True),
    Variant("trl", "TRL SFTTrainer defaults", "random", "dynamic (longest)", precision="trl", tool="trl",
            checkpointing=True),
    Variant("trl_matched", "TRL SFTTrainer matched", "random", "dynamic (longest)", precision="default", tool="trl"),
    Variant("bound", "zero-padding bound", "buckets", "sumtune's real tokens in equal rows", precision="default",
            tool="bound"),
]


class PadToMaxLength:
    """Variant (d): every row padded to ``length`` (prompt + completion limits), then collated."""

    def __init__(self, collate, pad_id: int, length: int):
        self.collate, self.pad_id, self.length = collate, pad_id, length

    def __call__(self, features):
        rows = []
        for row in features:
            gap = self.length - len(row["input_ids"])
            rows.append({"input_ids": list(row["input_ids"]) + [self.pad_id] * gap,
                         "attention_mask": list(row["attention_mask"]) + [0] * gap,
                         "labels": list(row["labels"]) + [data.IGNORE_INDEX] * gap})
        return self.collate(rows)


def equal_rows(batch: dict) -> dict:
    """The zero-padding bound's batch: ``batch``'s real tokens (and their labels) laid out in as many rows
    of equal length as it has rows, no padding, no mask (the few tokens left over from the division dropped)."""
    keep = batch["attention_mask"].bool()
    ids, labels = batch["input_ids"][keep], batch["labels"][keep]
    rows = batch["input_ids"].shape[0]
    length = ids.numel() // rows
    return {"input_ids": ids[:rows * length].view(rows, length), "labels": labels[:rows * length].view(rows, length)}


def trl_conversations(examples, cfg) -> datasets.Dataset:
    """The examples in TRL's conversational prompt/completion format: the same system and user messages as
    sumtune's chat prompt, the summary as the assistant's completion (TRL masks the prompt in the loss)."""
    return datasets.Dataset.from_list([
        {"prompt": data._chat_messages(e.dialogue, cfg.preprocessing),
         "completion": [{"role": "assistant", "content": e.summary}]} for e in examples])


def trl_trainer(cfg, variant: Variant, model, tokenizer, conversations, root: Path, steps: int, precision: str):
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    t = cfg.training
    settings = dict(output_dir=str(root / f"trl-{variant.key}"), per_device_train_batch_size=t.per_device_train_batch_size,
                    max_steps=steps, learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler_type, seed=t.seed,
                    save_strategy="no", logging_steps=10**6, report_to="none", use_cpu=True)
    if variant.precision != "trl":  # matched: sumtune's precision, no gradient checkpointing
        settings.update(bf16=precision == "bf16", gradient_checkpointing=False)
    # as a TRL user: the plain model and a LoRA config of the same shape, which SFTTrainer applies (sumtune's
    # own adapter also trains added tokens' embedding rows, which TRL's chunked loss cannot read)
    lora = model.peft_config["default"]
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                             target_modules=sorted(lora.target_modules), task_type="CAUSAL_LM")
    return SFTTrainer(model=model.unload(), args=SFTConfig(**settings), train_dataset=conversations,
                      processing_class=tokenizer, peft_config=peft_config)


class Lane:
    """One variant's training, stepped by ``run_interleaved``: the Trainer's per-step work, timed."""

    def __init__(self, cfg, plan, model, tokenizer, train_set, conversations, variant: Variant, root: Path,
                 steps: int, precision: str):
        self.variant = variant
        if variant.tool == "trl":
            self.trainer = trl_trainer(cfg, variant, model, tokenizer, conversations, root, steps, precision)
            self.precision = "bf16" if self.trainer.args.bf16 else "fp32"
        else:
            cfg = cfg.model_copy(deep=True)
            t = cfg.training
            t.group_by_length, t.packing = variant.sampler == "buckets", variant.packing
            t.precision = precision
            t.max_steps = steps
            run = artifacts.new_run(f"{cfg.name}-{variant.key}", root)
            self.trainer = build_hf_trainer(cfg, plan, model, tokenizer, train_set, None, run)
            self.precision = run.manifest["precision"]["used"]
            if variant.pad_to_max:
                self.trainer.data_collator = PadToMaxLength(self.trainer.data_collator, tokenizer.pad_token_id,
                                                            cfg.data.max_source_length + cfg.data.max_target_length)
        args = self.trainer.args
        if args.gradient_checkpointing:  # as Trainer.train() turns it on
            self.trainer.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs)
        self.trainer.create_optimizer_and_scheduler(num_training_steps=steps)
        torch.manual_seed(cfg.training.seed)  # the random-order lanes draw the same order
        self.loader = self.trainer.get_train_dataloader()
        self.batches = iter(self.loader)
        self.model = self.trainer.accelerator.prepare_model(self.trainer.model)  # bf16: autocast, as in train()
        self.model.train()
        self.seconds: list[float] = []  # CPU time of this process (see the module doc)
        self.wall: list[float] = []
        self.real: list[int] = []  # prompt + completion tokens, no padding
        self.labelled: list[int] = []  # tokens in the loss
        self.padded: list[int] = []  # every position, padding included
        self.losses: list[float] = []

    def step(self) -> None:
        trainer, args = self.trainer, self.trainer.args
        started, cpu_started = time.perf_counter(), time.process_time()
        batch = next(self.batches, None)
        if batch is None:  # end of the epoch: the next one, as the Trainer does
            self.batches = iter(self.loader)
            batch = next(self.batches)
        if self.variant.tool == "bound":
            batch = equal_rows(batch)
        num_items = trainer._get_num_items_in_batch([batch], args.device)
        loss = trainer.training_step(self.model, batch, num_items)
        if args.max_grad_norm > 0:
            trainer.accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        self.model.zero_grad()
        self.seconds.append(time.process_time() - cpu_started)
        self.wall.append(time.perf_counter() - started)
        ids = batch["input_ids"]
        self.real.append(int(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel())
        self.labelled.append(int((batch["labels"][..., 1:] != data.IGNORE_INDEX).sum()))
        self.padded.append(ids.numel())
        self.losses.append(float(loss))


@dataclass
class Result:
    variant: Variant
    steps: int
    real_tokens: int
    labelled_tokens: int
    padded_tokens: int
    seconds: float  # CPU
    wall: float
    first_loss: float
    last_loss: float
    precision: str

    @classmethod
    def of(cls, lane: Lane) -> "Result":
        return cls(lane.variant, len(lane.seconds), sum(lane.real), sum(lane.labelled), sum(lane.padded),
                   sum(lane.seconds), sum(lane.wall), lane.losses[0], statistics.mean(lane.losses[-10:]), lane.precision)

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def pad_share(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens


# --- report ----------------------------------------------------------------------------------------


def markdown_report(results: list[Result], facts: dict) -> str:
    by_key = {r.variant.key: r for r in results}
    sumtune = by_key["sumtune"]
    lines = [
        "| variant | sampler | layout | precision | grad. ckpt | steps | real tokens | in loss | positions | pad share "
        "| CPU time (s) | wall time (s) | real tokens per CPU second | sumtune ÷ variant | loss first → last 10 |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.variant.name} | {SAMPLERS[r.variant.sampler]} | {r.variant.layout} | {r.precision} | "
            f"{'on' if r.variant.checkpointing else 'off'} | {r.steps} | {r.real_tokens:,} | {r.labelled_tokens:,} | "
            f"{r.padded_tokens:,} | {r.pad_share:.0%} | {r.seconds:.1f} | {r.wall:.1f} | {r.tokens_per_s:,.0f} | "
            f"{sumtune.tokens_per_s / r.tokens_per_s:.2f}× | {r.first_loss:.2f} → {r.last_loss:.2f} |")

    def ratio(ours: str, theirs: str) -> str:
        if ours not in by_key or theirs not in by_key:
            return "not run"
        return f"{by_key[ours].tokens_per_s / by_key[theirs].tokens_per_s:.2f}×"

    lines += [
        "",
        f"At each tool's defaults (sumtune {sumtune.precision}, TRL its own): **sumtune / TRL SFTTrainer = "
        f"{ratio('sumtune', 'trl')}** (target ≥ 1.4×).",
        "",
        f"At matched settings ({sumtune.precision}, no gradient checkpointing): sumtune / TRL matched = "
        f"{ratio('sumtune', 'trl_matched')}; sumtune / (c) = {ratio('sumtune', 'c')}, sumtune / (d) = {ratio('sumtune', 'd')}; "
        f"packing / sumtune = {ratio('packing', 'sumtune')}.",
        "",
        f"Fraction of the zero-padding bound (bound time ÷ measured time, same steps on the same real tokens): "
        f"sumtune {ratio('sumtune', 'bound').rstrip('×')}, sumtune packing {ratio('packing', 'bound').rstrip('×')}.",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
    ]
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    examples_used = args.steps * args.batch_size
    overrides = [
        f"data.train_file={args.data}", "data.eval_file=null", "data.test_file=null",
        f"data.max_source_length={args.max_source_length}", f"data.max_target_length={args.max_target_length}",
        f"model.size={args.size}", f"training.per_device_train_batch_size={args.batch_size}",
        "training.gradient_accumulation_steps=1", "training.precision=auto",
        "training.eval_strategy=no", "training.save_strategy=no", "training.early_stopping_patience=null",
        *args.overrides,
    ]
    cfg = load_config(args.config, overrides)
    if cfg.arch.kind != "causal" or cfg.arch.prompt_style != "chat":
        raise SystemExit(f"{args.config}: this benchmark measures chat-style causal training; "
                         f"{cfg.model.architecture} is {cfg.arch.kind} with {cfg.arch.prompt_style} prompts")
    transformers.logging.set_verbosity_error()
    logging.getLogger("sumtune").setLevel(logging.WARNING)
    logging.getLogger("trl").setLevel(logging.ERROR)
    load_before = load_average()
    print(f"machine: {machine_line()}; load average {load_before}", flush=True)

    everything = data.read_examples(cfg.data.train_file, cfg.data)
    examples = everything[:examples_used]
    texts = data.tokenizer_training_texts(data.Splits(everything, None))  # the tokenizer learns the whole file
    plan = backends.resolve(cfg, backends.probe_machine(cfg))
    torch.manual_seed(cfg.training.seed)
    base = backends.load(plan, cfg, texts)  # tokenizer trained on the data + scratch model + LoRA, built once
    model, tokenizer = base.model, base.tokenizer
    train_set = data.encode_examples(examples, cfg, tokenizer, "train")
    conversations = trl_conversations(examples, cfg)
    trainable, total = count_parameters(model)
    default_precision = resolve_precision("auto", torch.cuda.is_available())
    variants = [v for v in VARIANTS if v.key not in args.skip]
    lengths = [len(row) for row in train_set["input_ids"]]
    in_loss = [sum(label != data.IGNORE_INDEX for label in row) for row in train_set["labels"]]
    size = cfg.arch.scratch_config(SIZE_PRESETS[cfg.model.size])

    facts = {
        "data": f"{args.data}: the first {len(train_set)} examples (one epoch of {args.steps} steps × batch {args.batch_size})",
        "config": f"{args.config} with {' '.join(overrides[3:])}",
        "model": f"{cfg.model.architecture} from scratch, '{cfg.model.size}' preset ({size}), {total / 1e6:.2f}M "
                 f"parameters, {trainable / 1e6:.3f}M trainable ({plan.backend}: {plan.reason}); attention "
                 f"{model.config._attn_implementation}",
        "tokenizer": f"BPE trained on the data by sumtune, {len(tokenizer)} tokens; chat template prompts, prompt masked",
        "sequence tokens (sumtune's encoding)": f"{percentiles(lengths)}; in the loss: {percentiles(in_loss)}",
        "threads": f"torch {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})",
        "training": f"{args.steps} timed optimizer steps per variant, batch size {args.batch_size}, variants interleaved "
                    f"step by step, {args.warmup} untimed warm-up steps per variant on throwaway copies, seed "
                    f"{cfg.training.seed}, lr {cfg.training.learning_rate}",
        "precision": f"sumtune's default training.precision auto = {default_precision.used} ({default_precision.reason})",
    }
    print("\n".join(f"{key}: {value}" for key, value in facts.items()), flush=True)

    with tempfile.TemporaryDirectory(prefix="sumtune-bench-") as tmp:
        root = Path(tmp)
        make = lambda: [Lane(cfg, plan, copy.deepcopy(model), tokenizer, train_set, conversations, v, root,  # noqa: E731
                             args.steps, default_precision.used) for v in variants]
        if args.warmup:
            started = time.perf_counter()
            run_interleaved(make(), args.warmup, "warm-up", progress=False)
            print(f"\nwarm-up: {args.warmup} steps per variant in {time.perf_counter() - started:.1f} s (not timed)", flush=True)
        lanes = make()
        run_interleaved(lanes, args.steps, "timed", progress=True)
    results = [Result.of(lane) for lane in lanes]
    lane_of = {lane.variant.key: lane for lane in lanes}
    same = lambda a, b: "yes" if a in lane_of and b in lane_of and lane_of[a].real == lane_of[b].real else "no"  # noqa: E731
    facts.update({
        "same batches": f"sumtune and packing: {same('sumtune', 'packing')}; (c) and (d): {same('c', 'd')}; "
                        "TRL tokenizes the conversations itself (its own real-token count above)",
        "zero-padding bound": "each sumtune batch's real tokens (and labels) reshaped into the same number of "
                              "equal-length rows, trained like the others",
        "time": "CPU time of this process (and wall time), summed over the timed steps, of: fetch + collate the "
                "batch, forward, backward, clip, optimizer and scheduler step",
        "machine": machine_fact(load_before),
        "versions": versions_line("python", "torch", "transformers", "trl", "peft", "datasets", "accelerate"),
    })
    publish(markdown_report(results, facts), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
