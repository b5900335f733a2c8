"""Peak memory and speed of LoRA training on real checkpoints: sumtune's labelled-positions loss with and
without gradient checkpointing, its full-logits path, and TRL's SFTTrainer matched and at its defaults.

    python benchmarks/causal_memory.py --out docs/benchmarks/causal_memory.md          # both models
    python benchmarks/causal_memory.py --models smollm2_135m --steps 2 --batch-size 4  # quicker

Needs the fetched checkpoints (``sumtune fetch``). Every variant runs in a process of its own (a peak is
that process's alone) and trains the same batch: the ``--batch-size`` longest examples of the shipped
config's training rows (the costliest batch of its epoch), ``--steps`` optimizer steps of LoRA r 16 on
every projection at the config's learning rate and sumtune's precision (bf16 autocast on a CPU with
AVX512-BF16/AMX). What each prints:

- training-phase peak RSS: ``VmHWM`` after the steps, with the high-water mark reset (``/proc/self/clear_refs``)
  once the model is loaded and the batch made; whole-process peak beside it;
- non-padding tokens per second of wall time over the steps after the first (the first pays one-off costs).

The TRL baseline is SFTTrainer + PEFT with the same conversations (system + user prompt, the summary as
the completion, completion-only loss), LoRA shape, learning rate, batch and precision; matched: gradient
checkpointing off; defaults: TRL's own ``gradient_checkpointing`` and ``loss_type``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("smollm2_135m", "gemma3_270m")
VARIANTS = {  # key: (label, tool, gradient checkpointing, labelled logits only)
    "sumtune": ("sumtune, no checkpointing", "sumtune", False, True),
    "sumtune_ckpt": ("sumtune, gradient checkpointing", "sumtune", True, True),
    "sumtune_full_logits": ("sumtune full logits, no checkpointing", "sumtune", False, False),
    "trl_matched": ("TRL matched (no checkpointing)", "trl", False, None),
    "trl_defaults": ("TRL defaults (checkpointing, its loss)", "trl", None, None),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--memory-guard-gib", type=float, default=20.0, help="kill a variant past this RSS (default 20)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- measuring -------------------------------------------------------------------------------------


def rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS


# --- one variant, in its own process ---------------------------------------------------------------


def child(model_stem: str, key: str, batch_size: int, steps: int) -> dict:
    import torch
    import transformers

    from sumtune import backends, data
    from sumtune.config import load_config
    from sumtune.machine import cpu_bf16_flags
    from sumtune.train import build_hf_trainer

    transformers.logging.set_verbosity_error()
    logging.getLogger("sumtune").setLevel(logging.WARNING)
    label, tool, checkpointing, labelled_only = VARIANTS[key]
    os.chdir(REPO)
    overrides = [f"training.per_device_train_batch_size={batch_size}", "training.gradient_accumulation_steps=1",
                 "training.eval_strategy=no", "training.save_strategy=no", "data.eval_file=null", "data.test_file=null",
                 "qlora.lora_rank=16", "qlora.lora_alpha=32", "qlora.lora_dropout=0.05",
                 f"training.labelled_logits_only={str(bool(labelled_only)).lower()}", "training.group_by_length=false"]
    cfg = load_config(REPO / "config" / "model_configs" / f"{model_stem}.yaml", overrides)
    splits = data.read_splits(cfg)
    plan = backends.resolve(cfg, backends.probe_machine(cfg))
    loaded = backends.load(plan, cfg, data.tokenizer_training_texts(splits))
    model, tokenizer = loaded.model, loaded.tokenizer
    encoded = data.encode_examples(splits.train, cfg, tokenizer, "train")
    costliest = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]["input_ids"]))[:batch_size]
    examples = [splits.train[i] for i in costliest]
    train_set = encoded.select(costliest)
    with tempfile.TemporaryDirectory(prefix="sumtune-mem-") as tmp:
        if tool == "sumtune":
            from sumtune import artifacts

            cfg.training.gradient_checkpointing = checkpointing
            run = artifacts.new_run(f"{cfg.name}-{key}", Path(tmp))
            trainer = build_hf_trainer(cfg, plan, model, tokenizer, train_set, None, run, checkpointing=checkpointing)
            precision = run.manifest["precision"]["used"]
        else:
            trainer = trl_trainer(cfg, model, tokenizer, examples, Path(tmp), steps, defaults=checkpointing is None)
            precision = "bf16" if trainer.args.bf16 else "fp32"
        args = trainer.args
        if args.gradient_checkpointing:  # as Trainer.train() turns it on
            trainer.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs)
        trainer.create_optimizer_and_scheduler(num_training_steps=steps)
        batch = next(iter(trainer.get_train_dataloader()))
        prepared = trainer.accelerator.prepare_model(trainer.model)
        prepared.train()
        whole_before = rss_mib("VmHWM")
        reset_peak_rss()
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            num_items = trainer._get_num_items_in_batch([batch], args.device)
            loss = trainer.training_step(prepared, batch, num_items)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad()
            times.append(time.perf_counter() - started)
    real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    return {"model": model_stem, "variant": key, "label": label, "precision": precision,
            "checkpointing": bool(args.gradient_checkpointing), "loss_type": getattr(args, "loss_type", "sumtune"),
            "train_peak_mib": round(rss_mib("VmHWM")), "whole_peak_mib": round(max(whole_before, rss_mib("VmHWM"))),
            "loss": round(float(loss), 4),
            "tokens": real, "labelled": int((batch["labels"][:, 1:] != -100).sum()), "shape": list(batch["input_ids"].shape),
            "step_s": [round(t, 2) for t in times],
            "tokens_per_s": round(real * (len(times) - 1) / sum(times[1:]), 1) if len(times) > 1 else None,
            "bf16_flags": cpu_bf16_flags()}


def trl_trainer(cfg, model, tokenizer, examples, root: Path, steps: int, defaults: bool):
    import datasets
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from sumtune import data

    t = cfg.training
    conversations = datasets.Dataset.from_list([
        {"prompt": data._chat_messages(e.dialogue, cfg.preprocessing),
         "completion": [{"role": "assistant", "content": e.summary}]} for e in examples])
    settings = dict(output_dir=str(root / "trl"), per_device_train_batch_size=len(examples), max_steps=steps,
                    learning_rate=t.learning_rate, save_strategy="no", logging_steps=10**6, report_to="none",
                    use_cpu=True, max_length=cfg.data.max_source_length + cfg.data.max_target_length, bf16=True)
    if not defaults:
        settings["gradient_checkpointing"] = False
    lora = model.peft_config["default"]
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                             target_modules=sorted(lora.target_modules), task_type="CAUSAL_LM")
    return SFTTrainer(model=model.unload(), args=SFTConfig(**settings), train_dataset=conversations,
                      processing_class=tokenizer, peft_config=peft_config)


# --- the report ------------------------------------------------------------------------------------


def report(results: list[dict], args) -> str:
    from common import machine_line, versions_line

    lines = ["# LoRA training memory on real checkpoints (CPU)", "",
             f"`python benchmarks/causal_memory.py --batch-size {args.batch_size} --steps {args.steps}`; "
             f"machine: {machine_line()}; CPU bf16 flags: {', '.join(results[0]['bf16_flags']) or 'none'}.", "",
             "| model | variant | precision | checkpointing | batch (rows x positions) | labelled | training-phase peak RSS (MiB) | "
             "whole-run peak RSS (MiB) | non-padding tokens/s | loss |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {VARIANTS[r['variant']][0]} | failed: {r['error']} | | | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['label']} | {r['precision']} | {'on' if r['checkpointing'] else 'off'} | "
                     f"{r['shape'][0]} x {r['shape'][1]} | {r['labelled']} | {r['train_peak_mib']:,} | {r['whole_peak_mib']:,} | "
                     f"{r['tokens_per_s']} | {r['loss']} |")
    lines += ["", "Step times (s): " + "; ".join(f"{r['model']} {r['variant']}: {r.get('step_s')}" for r in results),
              "", f"Versions: {versions_line('python', 'torch', 'transformers', 'trl', 'peft')}", ""]
    return "\n".join(lines)


def run_guarded(command: list[str], limit_gib: float) -> tuple[str, str, bool]:
    """Run ``command``, killing it when its resident memory passes ``limit_gib`` (a full-logits Gemma batch
    would take the whole machine otherwise)."""
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        watched, stopped = psutil.Process(process.pid), False
        while process.poll() is None:
            try:
                if watched.memory_info().rss > limit_gib * 2**30:
                    process.kill()
                    stopped = True
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        process.wait()
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), stopped


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(*args.child, args.batch_size, args.steps)), flush=True)
        return 0
    results = []
    for model_stem in args.models:
        for key in args.variants:
            command = [sys.executable, __file__, "--child", model_stem, key, "--batch-size", str(args.batch_size),
                       "--steps", str(args.steps)]
            stdout, stderr, stopped = run_guarded(command, args.memory_guard_gib)
            found = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
            error = (f"stopped at {args.memory_guard_gib} GiB of RSS, before the machine ran out" if stopped
                     else (stderr.strip().splitlines() or ["?"])[-1][:200])
            result = json.loads(found[-1][7:]) if found else {"model": model_stem, "variant": key, "error": error}
            print(json.dumps(result), flush=True)
            results.append(result)
    text = report(results, args)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
