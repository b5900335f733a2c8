"""One training run, from config to artifacts, read top to bottom.

    sumtune train config/model_configs/tiny_bart.yaml
    sumtune train config/model_configs/tiny_bart.yaml --set training.max_steps=20 --resume

``train()`` is the table of contents: read and check the data, reserve the run directory, decide the
backend, load the model, tokenize, fit with the HF Trainer, save, generate on the dev split, score, record.

Under ``torchrun`` / ``accelerate launch`` (DDP; docs/multi_gpu.md) every process trains, and rank 0
alone reserves the run directory (its run id is broadcast), writes artifacts and the log, generates
and scores; the other ranks wait for it at a barrier.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import time
import traceback
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import transformers
from transformers.trainer_utils import seed_worker

from . import artifacts, backends, baseline, classify, data
from .batching import LengthBuckets, example_shapes
from .distributed import launched_processes, reserve_run
from .config import RunConfig
from .modelcard import run_card
from .loading import LoadClock, base_record, peak_memory_mb
from .memory import (CheckpointingChoice, ModelShape, checkpointed_layer_indices, choose_checkpointing, costliest_batch,
                     memory_limit, release_freed_memory, resident_mib)
from .machine import library_versions
from .generate import generation_precision
from .packing import check_packed_attention, resolve_packing
from .precision import resolve_precision
from .normalization import DESCRIPTION as TEXT_NORMALIZATION
from .records import files_moved_into, write_csv_atomic, write_text_atomic

log = logging.getLogger("sumtune")


@dataclass
class RunResult:
    run: artifacts.Run
    metrics: Optional[dict]
    status: str


def train(cfg: RunConfig, resume: bool = False, callbacks: Sequence = ()) -> RunResult:
    splits = data.read_splits(cfg)  # every row checked: bad data is refused before a run directory exists
    if cfg.task == "classification" and cfg.data.labels is None:
        cfg.data.labels = splits.labels  # saved in config.yaml and the model's config: ids stay what they were trained as
    steps = TASK_STEPS[cfg.task]
    processes = launched_processes(cfg)
    run = reserve_run(cfg, resume, processes)
    run.attach_log()
    started = time.perf_counter()
    try:
        log.info("run %s: models in %s, results in %s, log in %s", run.run_id, run.model_dir, run.results_dir, run.log_path)
        run.update(**describe_run(cfg, run), status="running", processes=processes.world_size, **artifacts.this_process())
        if processes.main:
            write_text_atomic(run.model_dir / "config.yaml", cfg.to_yaml())

        data.log_splits(splits)
        run.update(allocator=release_freed_memory())
        plan = backends.resolve(cfg, backends.probe_machine(cfg))
        log.info("backend: %s (%s)", plan.backend, plan.reason)
        run.update(backend=plan.backend, backend_reason=plan.reason, quantization=plan.quantization)

        transformers.set_seed(cfg.training.seed)  # a scratch model's weights and LoRA's initial A matrices
        # DDP starts every rank from rank 0's weights; a resumed run reads the tokenizer and init it saved
        scratch_dir = run.scratch_base_dir if processes.main or resume else None
        clock = LoadClock()
        with clock.step("base"):
            loaded = backends.load(plan, cfg, data.tokenizer_training_texts(splits), scratch_dir=scratch_dir)
        log.info(clock.describe())
        model, tokenizer = loaded.model, loaded.tokenizer
        trainable, total = count_parameters(model)
        run.update(trainable_params=trainable, total_params=total, added_token_ids=loaded.new_token_ids,
                   checkpoint_commit=getattr(model.config, "_commit_hash", None), **clock.facts(), **base_record(cfg))
        log.info("parameters: %s trainable of %s", f"{trainable:,}", f"{total:,}")

        train_set = steps.encode(splits.train, cfg, tokenizer, model, "train")
        eval_set = steps.encode(splits.eval, cfg, tokenizer, model, "eval") if splits.eval else None
        trainer = build_hf_trainer(cfg, plan, model, tokenizer, train_set, eval_set, run, callbacks,
                                   backend_checkpointing=loaded.checkpointing_on,
                                   collator=steps.collator, loss_func=steps.loss(cfg, splits.train))
        if steps.score_base is not None and processes.main and not resume:  # the bar training must clear
            run.update(baseline=steps.score_base(trainer.model, tokenizer, splits.eval, cfg, run, loaded.new_token_ids,
                                                 plan.backend, processes.world_size))
        fit_stats = fit(trainer, run.last_checkpoint() if resume else None)
        run.update(**fit_stats)
        if processes.main:
            write_losses(trainer.state.log_history, run)

        save_model(trainer, tokenizer, run)
        scores = None
        if splits.eval and processes.main:  # the other ranks wait while rank 0 generates and scores
            # without the autocast wrapper bf16 training put on forward: generation.precision decides
            model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
            model = loaded.for_generation(model) if loaded.for_generation else model
            if cfg.task == "summarization":
                run.update(generation_precision=generation_precision(model, cfg).facts())
            scores = steps.evaluate(model, tokenizer, splits.eval, cfg, run)
        processes.wait_for_everyone()
        if processes.main:  # instead of PEFT's empty template
            write_text_atomic(run.model_dir / "README.md", run_card(cfg, run.manifest, run.run_id, run.model_dir))
        run.manifest.pop("error", None)  # an earlier attempt's, before --resume finished the run
        run.update(status="completed", wall_time_s=round(time.perf_counter() - started, 2), peak_memory_mb=peak_memory_mb())
        log.info("done: model %s | results %s | log %s", run.model_dir, run.results_dir, run.log_path)
        warn_at_the_end(run)
        return RunResult(run, scores, "completed")
    except BaseException as exc:
        record_ending(run, exc, time.perf_counter() - started)
        raise
    finally:
        run.detach_log()
        run.release()


def record_ending(run: artifacts.Run, exc: BaseException, seconds: float) -> None:
    """Record in run.json how the run ended: ``interrupted`` for Ctrl-C, else ``failed`` with the error."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    error = ("KeyboardInterrupt: interrupted (Ctrl-C); continue with --resume" if interrupted
             else f"{type(exc).__name__}: {exc}")
    try:
        run.update(status="interrupted" if interrupted else "failed", error=error, log=str(run.log_path),
                   wall_time_s=round(seconds, 2))
    except OSError as unwritten:  # a disk still full: the console and the log say it instead
        log.error("could not record the run's end in %s: %s", run.run_json, unwritten)
    log.error("run %s %s: %s", run.run_id, "interrupted" if interrupted else "failed", error)
    logging.getLogger("sumtune.file").error(traceback.format_exc())


def describe_run(cfg: RunConfig, run: artifacts.Run) -> dict:
    return dict(
        name=cfg.name,
        run_id=run.run_id,
        task=cfg.task,
        **({"labels": list(cfg.data.labels)} if cfg.task == "classification" else {}),
        architecture=cfg.model.architecture,
        checkpoint=cfg.model.checkpoint or f"scratch:{cfg.model.size}",
        model_dir=str(run.model_dir),
        results_dir=str(run.results_dir),
        log=str(run.log_path),
        debug=cfg.debug,
        text_normalization=TEXT_NORMALIZATION,  # applied to every data file's text before training and scoring
        eval_file_sha256=file_sha256(cfg.data.eval_file),  # runs are compared only on the same dev data
        versions=library_versions(),
    )


def file_sha256(path: Optional[Path]) -> Optional[str]:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path is not None else None


def build_hf_trainer(cfg, plan, model, tokenizer, train_set, eval_set, run, callbacks=(), backend_checkpointing=False,
                     collator=None, loss_func=None):
    seq2seq = cfg.arch.kind == "seq2seq"
    args_class = transformers.Seq2SeqTrainingArguments if seq2seq else transformers.TrainingArguments
    trainer_class = SumtuneSeq2SeqTrainer if seq2seq else SumtuneTrainer
    t = cfg.training
    cuda = torch.cuda.is_available()
    precision = resolve_precision(t.precision, cuda)
    log.info("precision: %s (%s)", precision.used, precision.reason)
    run.update(precision=precision.facts())
    packing = resolve_packing(t.packing, cfg.arch.kind, getattr(model.config, "_attn_implementation", None))
    log.info("packing: %s (%s)", "on" if packing.used else "off", packing.reason)
    run.update(packing=packing.facts())
    evaluating = eval_set is not None and t.eval_strategy != "no"
    wanted_labelled_only = t.labelled_logits_only and cfg.arch.kind == "causal" and loss_func is None
    checkpointing = checkpointing_choice(cfg, model, train_set, precision.used, wanted_labelled_only, backend_checkpointing)
    log.info("gradient checkpointing: %s (%s)", checkpointing.summary(), checkpointing.reason)
    run.update(gradient_checkpointing=checkpointing.facts())
    args = args_class(
        output_dir=str(run.checkpoint_dir),
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,  # transformers 5: a value below 1 is a fraction of the steps
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.lr_scheduler_type,
        seed=t.seed,
        bf16=precision.used == "bf16",  # on CPU the Trainer (through accelerate) autocasts to bfloat16
        fp16=precision.used == "fp16",
        gradient_checkpointing=checkpointing.layers > 0 and not backend_checkpointing,
        # training batches come from LengthBucketing; HF's length grouping still orders the eval batches
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        eval_strategy=t.eval_strategy if evaluating else "no",
        eval_steps=t.eval_steps,
        save_strategy=t.save_strategy,
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        load_best_model_at_end=evaluating and t.early_stopping_patience is not None,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        include_num_input_tokens_seen="all" if packing.used else "non_padding",  # packed: no padding to skip
        optim="paged_adamw_8bit" if plan.quantization else "adamw_torch",
        deepspeed=str(t.deepspeed) if t.deepspeed else None,
        use_cpu=not cuda,
        report_to=t.report_to or "none",
        run_name=run.run_id,
    )
    all_callbacks = list(callbacks) + [MemoryLog(run), LogToFile()]
    if 0 < checkpointing.layers < checkpointing.of and not backend_checkpointing:
        all_callbacks.append(CheckpointSomeLayers(checkpointed_layer_indices(checkpointing.layers, checkpointing.of)))
    if args.load_best_model_at_end:
        all_callbacks.append(transformers.EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    if "tensorboard" in t.report_to:
        log.info("TensorBoard: tensorboard --logdir %s", run.tensorboard_dir.parent)
    with tensorboard_logging_dir(run.tensorboard_dir):
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set if evaluating else None,
            data_collator=(collator or data.data_collator)(tokenizer, model, packed=packing.used),
            processing_class=tokenizer,
            callbacks=all_callbacks,
            compute_loss_func=loss_func,
        )
    trainer.length_buckets = length_buckets(cfg, train_set, ranks=args.world_size, model=model)
    trainer.labelled_logits_only = labelled_logits_only(cfg, args, loss_func)
    run.update(labelled_logits_only=trainer.labelled_logits_only)
    if packing.used and not trainer.is_deepspeed_enabled:  # (ZeRO-3 weights run only inside the DeepSpeed engine)
        log.info("packing checked: a packed example's logits do not depend on the example before it (difference %.2g)",
                 check_packed_attention(trainer.model))
    return trainer


def checkpointing_choice(cfg: RunConfig, model, train_set, precision: str, labelled_logits_only: bool,
                         backend_checkpointing: bool) -> CheckpointingChoice:
    """``training.gradient_checkpointing`` resolved for this model and the costliest training batch (see
    ``memory.choose_checkpointing``); a backend that checkpoints itself (unsloth, 4-bit QLoRA) keeps its own."""
    setting = True if backend_checkpointing else cfg.training.gradient_checkpointing
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = len(decoder_layers(base))
    if cfg.arch.kind != "causal":
        if setting == "auto":
            return CheckpointingChoice(0, layers, None, "auto: off; the memory estimate covers decoder-only models")
        return CheckpointingChoice(layers if setting else 0, layers, None, f"training.gradient_checkpointing: {str(setting).lower()}")
    shape = ModelShape.from_config(base.config)
    labelled = [sum(label != -100 for label in labels) for labels in train_set["labels"]]
    batch = costliest_batch([len(ids) for ids in train_set["input_ids"]], labelled, cfg.training.per_device_train_batch_size)
    trainable, _ = count_parameters(model)
    weight_bytes = next(base.parameters()).element_size()
    return choose_checkpointing(setting, shape, batch, memory_limit(cfg.training.memory_limit_mib),
                                compute_bytes=2 if precision in ("bf16", "fp16") else weight_bytes, weight_bytes=weight_bytes,
                                trainable=trainable, lora_dropout=cfg.qlora.use_qlora and cfg.qlora.lora_dropout > 0,
                                labelled_logits_only=labelled_logits_only)


def decoder_layers(model) -> list:
    """The layers gradient checkpointing wraps (transformers' ``GradientCheckpointingLayer``), in order."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]


class CheckpointSomeLayers(transformers.TrainerCallback):
    """Gradient checkpointing on ``indices`` of the model's layers only: the Trainer turns it on for every
    layer as training begins (before this callback), and this turns the others off again."""

    def __init__(self, indices: list[int]):
        self.indices = set(indices)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        for index, layer in enumerate(decoder_layers(base)):
            layer.gradient_checkpointing = index in self.indices


class MemoryLog(transformers.TrainerCallback):
    """Resident memory in every training log line (``rss_mib``, ``peak_rss_mib``), and the peak so far in
    run.json at every logging step, so that a run stopped or killed midway still has its figure."""

    def __init__(self, run: artifacts.Run):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        now, peak = resident_mib("VmRSS"), resident_mib("VmHWM")
        if logs is None or peak is None:
            return
        logs.update(rss_mib=now, peak_rss_mib=peak)
        if args.should_save:
            self.run.update(peak_rss_mib_so_far=dict(mib=peak, step=state.global_step))


def labelled_logits_only(cfg: RunConfig, args, loss_func) -> bool:
    """Whether the output layer runs only at labelled positions: causal summarization, single process,
    the model's own loss (no task loss function), as ``training.labelled_logits_only`` asks."""
    wanted = cfg.training.labelled_logits_only and cfg.arch.kind == "causal" and loss_func is None
    if wanted and args.world_size > 1:
        log.info("labelled_logits_only: off under DDP (the loss must go through the DDP wrapper's forward)")
        return False
    return wanted


@contextmanager
def tensorboard_logging_dir(directory: Path):
    """HF's TensorBoardCallback takes its directory from TENSORBOARD_LOGGING_DIR when the Trainer builds it
    (else a folder under the checkpoints named by time and host): set for that moment, then restored."""
    before = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(directory)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TENSORBOARD_LOGGING_DIR"]
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = before


class DivergenceError(RuntimeError):
    """Training or eval loss became NaN or infinite: the run stops at that step instead of going on."""


class StopOnDivergence:
    """Checks every step's loss, and every evaluation's, for NaN/inf and stops the run at once.

    The HF Trainer would go on: its ``logging_nan_inf_filter`` swaps a non-finite step loss for the
    running mean, so a diverged run ended "completed". Raising here happens before the step's
    checkpoint is written, so the checkpoints left are those from before the divergence.
    """

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            self._diverged("training loss", loss.item())
        return loss

    def evaluate(self, *args, **kwargs):
        metrics = super().evaluate(*args, **kwargs)
        loss = metrics.get("eval_loss")
        if loss is not None and not math.isfinite(loss):
            self._diverged("eval loss", loss)
        return metrics

    def _diverged(self, what: str, value: float) -> None:
        step = self.state.global_step + (1 if what == "training loss" else 0)  # the step being computed
        raise DivergenceError(
            f"{what} is {value} at step {step} of {self.state.max_steps} (learning rate {self._get_learning_rate():.3g}): "
            "training diverged. Lower training.learning_rate, add warmup (training.warmup_ratio, e.g. 0.05), "
            "or train in fp32 (training.precision: fp32)"
        )


def position_weights(model) -> Optional[tuple[float, float]]:
    """What a source and a summary position cost an encoder-decoder ``model``, as the parameters each
    passes through (the encoder's layers; the decoder's and the output layer; KoBART: 1 : 1.87), for
    ``LengthBuckets``; None for other models (one sequence per example)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(getattr(base, "config", None), "is_encoder_decoder", False):
        return None
    layers = lambda stack: sum(p.numel() for name, p in stack.named_parameters() if "embed" not in name)  # noqa: E731
    encoder = layers(base.get_encoder())
    return (1.0, (layers(base.get_decoder()) + base.get_output_embeddings().weight.numel()) / encoder) if encoder else None


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed (most often a full disk); its partial directory was removed."""


class RemovePartialCheckpoint:
    """A checkpoint whose save fails is deleted before the error goes on, so a full disk gets its space back
    (and run.json can record the failure); the error names the checkpoint and what to do."""

    def _save_checkpoint(self, model, trial):
        try:
            return super()._save_checkpoint(model, trial)
        except Exception as exc:
            partial = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            shutil.rmtree(partial, ignore_errors=True)
            raise CheckpointSaveError(
                f"saving checkpoint {partial} failed ({type(exc).__name__}: {exc}); the partial checkpoint was removed. "
                f"Free space under {partial.parent} (or lower training.save_total_limit), then continue with --resume"
            ) from exc


class LengthBucketing:
    """Training batches from ``batching.LengthBuckets`` (``training.group_by_length``) when
    ``length_buckets`` is set, else the Trainer's own loader (random order).

    The Trainer passes only its own kinds of batch sampler to the DataLoader as one, so this builds the
    loader itself (with the Trainer's collator, worker settings and column filtering) and lets
    accelerate prepare it as the Trainer would. The Trainer calls ``set_epoch`` on the loader before
    each epoch, and on a resume skips the batches already trained through accelerate's
    ``skip_first_batches``, which wraps the batch sampler; under DDP accelerate wraps it in a
    ``BatchSamplerShard`` that forwards no ``set_epoch``, so the wrapper is given ours.
    """

    length_buckets = None

    def get_train_dataloader(self):
        if self.length_buckets is None:
            return super().get_train_dataloader()
        args = self.args
        loader = torch.utils.data.DataLoader(
            self._remove_unused_columns(self.train_dataset, description="training"),
            batch_sampler=self.length_buckets,
            collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers,
            prefetch_factor=args.dataloader_prefetch_factor,
            worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        )
        loader = self.accelerator.prepare(loader)
        if loader.batch_sampler is not self.length_buckets:  # DDP: BatchSamplerShard deals batch i to rank i mod N
            loader.batch_sampler.set_epoch = self.length_buckets.set_epoch
        return loader


def length_buckets(cfg: RunConfig, train_set, ranks: int, model=None) -> Optional[LengthBuckets]:
    """The batch sampler for ``train_set`` when ``training.group_by_length`` is on, else None."""
    t = cfg.training
    if not t.group_by_length:
        return None
    buckets = LengthBuckets(example_shapes(train_set, cfg.arch.kind), t.per_device_train_batch_size, t.seed,
                            max_tokens=t.max_tokens_per_batch, ranks=ranks, weights=position_weights(model))
    if t.max_tokens_per_batch:
        too_long = sum(sum(shape) > t.max_tokens_per_batch for shape in buckets.shapes)
        if too_long:
            log.warning("%d training examples are longer than training.max_tokens_per_batch (%d tokens): each is "
                        "a batch of its own", too_long, t.max_tokens_per_batch)
    log.info("length-bucketed batches: %d an epoch (%s)", len(buckets),
             f"up to {t.max_tokens_per_batch} padded tokens each" if t.max_tokens_per_batch
             else f"{t.per_device_train_batch_size} examples each")
    return buckets


class LabelledLogitsOnly:
    """``training.labelled_logits_only``: a causal model's training and evaluation loss from logits at the
    labelled positions alone (``labelled_loss``); other inputs (and DDP) get the model's own loss."""

    labelled_logits_only = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.labelled_logits_only or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        from .labelled_loss import labelled_positions_loss

        # the model's forward runs under the accelerator's autocast (bf16 training); the decoder called here
        # from the inside must too, or it runs in fp32 (twice the activation memory, and slower)
        with self.accelerator.autocast():
            loss = labelled_positions_loss(model, inputs, num_items_in_batch)
        return (loss, {"loss": loss}) if return_outputs else loss


class CostliestEvalBatchFirst:
    """The evaluation batch of the longest dev examples runs once before training (eval mode, no gradients),
    so that a batch too big for memory fails at the start, not at the first evaluation an epoch in. The
    costliest training batch is the first one already (``LengthBuckets``)."""

    def run_costliest_eval_batch(self) -> Optional[tuple[int, int]]:
        """(rows, longest) of the batch it ran; None without evaluation (or under DeepSpeed)."""
        dataset = self.eval_dataset
        if dataset is None or len(dataset) == 0 or self.is_deepspeed_enabled:
            return None
        lengths = [len(ids) for ids in dataset["input_ids"]]
        longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])[: self.args.per_device_eval_batch_size]
        rows = self._remove_unused_columns(dataset, description="evaluation").select(longest)
        batch = self._prepare_inputs(self.data_collator([rows[i] for i in range(len(rows))]))
        was_training = self.model.training
        self.model.eval()
        try:
            self.prediction_step(self.model, batch, prediction_loss_only=True)
        finally:
            self.model.train(was_training)
        return len(longest), lengths[longest[0]]


class SumtuneTrainer(
    StopOnDivergence, RemovePartialCheckpoint, LengthBucketing, LabelledLogitsOnly, CostliestEvalBatchFirst, transformers.Trainer
):
    pass


class SumtuneSeq2SeqTrainer(
    StopOnDivergence, RemovePartialCheckpoint, LengthBucketing, CostliestEvalBatchFirst, transformers.Seq2SeqTrainer
):
    pass


def fit(trainer, checkpoint: Optional[Path]) -> dict:
    """Train (from ``checkpoint`` when resuming) and return the facts for run.json.

    After a resume, ``train_loss`` and ``train_tokens`` cover the whole run, ``train_time_s`` and
    ``train_tokens_per_s`` this process.
    """
    before = transformers.TrainerState()
    if checkpoint is not None:
        before = transformers.TrainerState.load_from_json(str(checkpoint / artifacts.TRAINER_STATE))
        log.info("resuming from %s: step %d of %d done", checkpoint, before.global_step, before.max_steps)
    trainer.add_callback(LogAtCheckpoints())
    ran = trainer.run_costliest_eval_batch()
    if ran:
        log.info("costliest evaluation batch (%d x %d tokens) ran before training: resident %s MiB, peak %s MiB",
                 *ran, resident_mib("VmRSS"), resident_mib("VmHWM"))
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    state = trainer.state
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    seconds = output.metrics.get("train_runtime", 0.0)
    tokens = int(state.num_input_tokens_seen)
    return dict(
        train_steps=state.global_step,
        resumed_from_step=before.global_step if checkpoint is not None else None,
        train_loss=round(whole_run_loss(before, output.training_loss, state.global_step), 5),
        first_logged_loss=losses[0] if losses else None,
        last_logged_loss=losses[-1] if losses else None,
        best_checkpoint=state.best_model_checkpoint,
        train_time_s=round(seconds, 2),
        train_tokens=tokens,
        train_tokens_per_s=round((tokens - before.num_input_tokens_seen) / seconds, 1) if seconds else None,
    )


LOSS_COLUMNS = ("step", "epoch", "loss", "eval_loss", "learning_rate")


def write_losses(log_history: list[dict], run: artifacts.Run) -> None:
    """losses.csv in the run's results: every logged training loss and eval loss by step (the report's
    loss curve); after a resume it still starts at step 1 (the checkpoint keeps the log history)."""
    rows = [{key: entry.get(key, "") for key in LOSS_COLUMNS} for entry in log_history
            if "loss" in entry or "eval_loss" in entry]
    write_csv_atomic(run.results_dir / "losses.csv", rows, LOSS_COLUMNS)


def whole_run_loss(before: transformers.TrainerState, training_loss: float, steps: int) -> float:
    """The mean loss over every optimizer step of the run, as an uninterrupted run reports it.

    The HF Trainer keeps no running loss total in a checkpoint: after a resume its ``training_loss`` is
    the sum of this process's step losses divided by all steps. The steps up to the checkpoint are
    summed from the checkpoint's ``log_history`` (each logged loss is the mean over the steps since the
    previous log, and ``LogAtCheckpoints`` puts a log on every checkpoint's step).
    """
    if before.global_step == 0:
        return training_loss
    total_here = training_loss * steps  # undoes the Trainer's division
    total_before, last_step = 0.0, 0
    for entry in before.log_history:
        if "loss" in entry and entry["step"] <= before.global_step:
            total_before += entry["loss"] * (entry["step"] - last_step)
            last_step = entry["step"]
    if last_step != before.global_step:  # a checkpoint saved without a log on its step (older sumtune)
        log.warning("the checkpoint logged no loss at its step %d: train_loss averages the %d resumed steps only",
                    before.global_step, steps - before.global_step)
        return total_here / max(steps - before.global_step, 1)
    return (total_before + total_here) / steps


def save_model(trainer, tokenizer, run: artifacts.Run) -> None:
    """The adapter (PEFT) or full model as safetensors, and the tokenizer, in the run's model directory.

    An adapter holds the LoRA weights and the rows of added tokens, never a copy of the embedding
    matrices (PEFT would add one whenever the vocabulary grew; the loader makes the same rows instead).
    Files are staged and renamed into place one by one. Under DeepSpeed every rank calls
    ``trainer.save_model``, which gathers sharded weights and writes in place; only rank 0 writes.
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    deepspeed = trainer.is_deepspeed_enabled
    if deepspeed:
        trainer.save_model(str(run.model_dir))  # a collective: every rank calls it with the same directory
    if not trainer.args.should_save:
        return
    with files_moved_into(run.model_dir) as staging:  # an interrupted save leaves no half-written file
        if hasattr(model, "peft_config") and not deepspeed:
            model.save_pretrained(str(staging), save_embedding_layers=False)
        elif not deepspeed:
            trainer.save_model(str(staging))
        tokenizer.save_pretrained(str(staging))
    log.info("saved model to %s", run.model_dir)


def evaluate_after_training(model, tokenizer, examples, cfg: RunConfig, run: artifacts.Run) -> dict:
    from .evaluation import dev_examples, generate_and_score

    examples = dev_examples(examples, cfg)
    log.info("generating %d dev summaries", len(examples))
    scores = generate_and_score(model, tokenizer, examples, cfg, run, "predictions.csv")
    run.write_json("metrics.json", scores)
    paid = baseline.compare(run.manifest.get("baseline"), scores)
    run.update(metrics=scores, **paid, warnings=summary_warnings(scores, paid, cfg, run))
    log.info("ROUGE-1 %.4f  ROUGE-2 %.4f  ROUGE-L %.4f  score %.4f  (%d examples, %d empty predictions, %s)",
             scores["rouge1"], scores["rouge2"], scores["rougeL"], scores["score"], scores["n_examples"],
             scores["n_empty_predictions"], scores["tokenizer"])
    log.info("degenerate predictions: %s cut at generation.max_new_tokens (%d) without the end token, %d repeating "
             "a phrase (%d in all)", scores["n_cut_at_max_new_tokens"], cfg.generation.max_new_tokens,
             scores["n_repeating_predictions"], scores["n_degenerate_predictions"])
    if paid:
        log.info("base -> fine-tuned: %s", baseline.describe_comparison(paid["base_vs_fine_tuned"]))
    return scores


def summary_warnings(scores: dict, paid: dict, cfg: RunConfig, run: artifacts.Run) -> list[str]:
    """run.json's ``warnings``, repeated at the end of the log: too many empty or degenerate predictions,
    and a fine-tuned score below the base model's."""
    from .metrics import DegenerateCounts, degenerate_warning, empty_predictions_warning

    counts = DegenerateCounts(**{key: scores[key] for key in DegenerateCounts.__dataclass_fields__})
    found = [empty_predictions_warning(scores["n_empty_predictions"], scores["n_examples"]),
             degenerate_warning(counts, scores["n_examples"], cfg.generation.max_new_tokens),
             baseline.below_base_warning(paid["base_vs_fine_tuned"], run) if paid.get("below_base") else None]
    return [warning for warning in found if warning]


def warn_at_the_end(run: artifacts.Run) -> None:
    """The run's warnings again as its last log lines, where a reader looks."""
    warnings = run.manifest.get("warnings") or []
    for number, warning in enumerate(warnings, start=1):
        log.warning("WARNING %d of %d for %s: %s", number, len(warnings), run.run_id, warning)


@dataclass(frozen=True)
class TaskSteps:
    """What a task does its own way inside ``train()``; every other step is shared."""

    encode: Callable  # (examples, cfg, tokenizer, model, split) -> datasets.Dataset
    collator: Callable  # (tokenizer, model, packed) -> the Trainer's data collator
    loss: Callable  # (cfg, train examples) -> the Trainer's compute_loss_func, or None for the model's own loss
    evaluate: Callable  # (model, tokenizer, dev examples, cfg, run) -> metrics, after training
    score_base: Optional[Callable] = None  # (model, tokenizer, dev examples, cfg, run, added ids, backend, ranks) -> run.json baseline


def _classification_loss(cfg: RunConfig, examples):
    weights = classify.class_weights(cfg, examples)
    return classify.weighted_loss(weights) if weights is not None else None


TASK_STEPS = {
    "summarization": TaskSteps(
        encode=lambda examples, cfg, tokenizer, model, split: data.encode_examples(examples, cfg, tokenizer, split),
        collator=data.data_collator,
        loss=lambda cfg, examples: None,
        evaluate=evaluate_after_training,
        score_base=baseline.score_base_model,
    ),
    "classification": TaskSteps(classify.encode_texts, classify.data_collator, _classification_loss,
                                classify.evaluate_after_training),
}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total); PEFT's count for adapted models, which counts a 4-bit weight's packed bytes
    as the parameters they hold (a plain numel() sees half)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


class LogAtCheckpoints(transformers.TrainerCallback):
    """A loss log on every step that saves a checkpoint, so the checkpoint's log_history covers every
    step before it and a resumed run can total its loss (``whole_run_loss``)."""

    def on_step_end(self, args, state, control, **kwargs):
        control.should_log = control.should_log or control.should_save

    on_epoch_end = on_step_end


class LogToFile(transformers.TrainerCallback):
    """Trainer log lines (loss, learning rate, eval loss) into the run's log file."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            fields = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
            logging.getLogger("sumtune.file").info("step %d/%d %s", state.global_step, state.max_steps, fields)
