"""Memory: what a training run will hold at its peak, what this machine allows, what the process holds
now, and glibc's heap giving freed activations back (standard library only).

The estimate counts tensors from the shapes in the checkpoint's config.json and the costliest batch's
lengths; docs/benchmarks/causal_memory.md compares it with measured peaks. Its parts, for a decoder
layer trained with LoRA under autocast (compute dtype c bytes, weights and residual stream r bytes):

- kept for backward per token and layer, without checkpointing (``saved_per_token``): the residual and
  two fp32 copies per norm; the compute-dtype casts of the inputs of q, k, v, gate and up; LoRA's dropout
  mask and cast input per projection; q, k, v after the rotary embedding; attention's output; gate, up,
  the activation and their product. With checkpointing, only the layer's input (r·h), plus one layer's
  activations while its backward recomputes it.
- the output layer at the labelled positions, a chunk of rows at a time: fp32 logits, their gradient
  and the compute-dtype copy (``labelled_loss.CHUNK``); every position when ``labelled_logits_only`` is off.
- weights (r bytes each), and for what trains: gradients and AdamW's two moments (4 bytes each).
- ``RUNTIME_MIB``: Python, torch, transformers, PEFT, the tokenizer and the data (measured: 660 MiB on
  SmolLM2 and Gemma-3 after the first step, the weights' pages aside).

The resident peak can sit far above the tensors: glibc serves allocations under its mmap threshold from
the heap, and that threshold grows with every large block freed (up to 32 MiB), so a training step's
activations, freed and reallocated in other sizes, leave a fragmented heap that is never returned.
Measured on SmolLM2 with checkpointing at batch 8: 0.9 GB of tensors, 4.4 to 6.9 GB resident from one
identical run to the next. ``release_freed_memory`` fixes the threshold so that every block of
``MMAP_THRESHOLD`` bytes or more is mapped on its own and unmapped when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

MiB = 2**20
RUNTIME_MIB = 660  # measured, see the module doc
HEAD_CHUNK_ROWS = 1024  # labelled_loss.CHUNK
MARGIN = 0.15  # auto checkpointing wants the estimate 15 % under the limit
MMAP_THRESHOLD = 1 << 20  # 1 MiB: blocks of this size or more are mapped and unmapped on their own
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
NORMS_PER_LAYER = {"gemma3": 4, "gemma3_text": 4, "gemma2": 4}  # model_type -> RMSNorms around each decoder layer (default 2)
QK_NORM = {"gemma3", "gemma3_text", "qwen3"}  # model types that normalise q and k per head
CONFIG_ALIASES = {"hidden_size": ("n_embd", "d_model"), "num_attention_heads": ("n_head",),
                  "num_hidden_layers": ("n_layer",), "intermediate_size": ("n_inner",)}


@dataclass(frozen=True)
class ModelShape:
    """The sizes the estimate needs, from a checkpoint's config.json."""

    model_type: str
    layers: int
    hidden: int
    intermediate: int
    q_dim: int  # attention heads x head dim
    kv_dim: int  # key-value heads x head dim
    vocab: int
    parameters: int  # counted from the sizes (embeddings once when tied)

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        """From config.json (a dict) or a transformers config object; GPT-2's names (n_embd, ...) too."""
        read = config.get if isinstance(config, dict) else (lambda key, default=None: getattr(config, key, default))
        text = read("text_config") or config  # multimodal configs nest the language model
        if text is not config:
            read = text.get if isinstance(text, dict) else (lambda key, default=None: getattr(text, key, default))
        value = lambda key: next((read(name) for name in (key, *CONFIG_ALIASES.get(key, ())) if read(name)), None)  # noqa: E731
        hidden, heads, layers, vocab = (value(k) for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size"))
        if not all((hidden, heads, layers, vocab)):
            raise ValueError("the model config names no hidden_size, num_attention_heads, num_hidden_layers or vocab_size")
        head_dim = value("head_dim") or hidden // heads
        kv_heads = value("num_key_value_heads") or heads
        intermediate = value("intermediate_size") or 4 * hidden
        q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
        per_layer = hidden * (2 * q_dim + 2 * kv_dim) + 3 * hidden * intermediate
        tied = read("tie_word_embeddings", True) is not False
        return cls(str(read("model_type") or "?"), layers, hidden, intermediate, q_dim, kv_dim, vocab,
                   layers * per_layer + vocab * hidden * (1 if tied else 2))

    def saved_per_token(self, compute_bytes: int, residual_bytes: int, lora_dropout: bool) -> int:
        """Bytes one token keeps for backward in one layer without checkpointing (see the module doc)."""
        h, q, kv, i, c, r = self.hidden, self.q_dim, self.kv_dim, self.intermediate, compute_bytes, residual_bytes
        norms = NORMS_PER_LAYER.get(self.model_type, 2)
        mask = 1 if lora_dropout else 0
        per_norm = r * h + 8 * h  # its input, and fp32 normalised and scaled copies
        attention = 3 * c * h + 3 * (mask * h + c * h) + 3 * c * q + 4 * c * kv + 2 * c * q + (mask * q + c * q) + c * h
        if self.model_type in QK_NORM:
            attention += 8 * (q + kv)
        mlp = 2 * c * h + 2 * (mask * h + c * h) + 4 * c * i + (mask * i + c * i) + c * h
        return norms * per_norm + attention + mlp


@dataclass(frozen=True)
class BatchShape:
    """The costliest batch: rows, positions once padded, and the positions that carry labels."""

    rows: int
    positions: int
    labelled: int

    @property
    def tokens(self) -> int:
        return self.rows * self.positions


def costliest_batch(lengths: list[int], labelled: list[int], batch_size: int) -> BatchShape:
    """The batch of the ``batch_size`` longest examples, padded to the longest: the costliest a length-sorted
    (or any) cut of these examples can make. ``labelled``: each example's labelled positions."""
    longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])[:batch_size]
    if not longest:
        return BatchShape(0, 0, 0)
    return BatchShape(len(longest), lengths[longest[0]], sum(labelled[i] for i in longest))


@dataclass(frozen=True)
class Estimate:
    """Peak resident memory, in MiB, and its parts."""

    parts: dict

    @property
    def total_mib(self) -> int:
        return round(sum(self.parts.values()))

    def parts_mib(self) -> dict:
        return {name: round(value) for name, value in self.parts.items()}

    def describe(self) -> str:
        return f"{self.total_mib:,} MiB (" + ", ".join(f"{k} {round(v):,}" for k, v in self.parts.items()) + ")"


def estimate_training(shape: ModelShape, batch: BatchShape, checkpointed_layers: int = 0, *, compute_bytes: int = 2,
                      weight_bytes: int = 4, trainable: int = 0, lora_dropout: bool = True,
                      labelled_logits_only: bool = True) -> Estimate:
    """The training step's peak with ``checkpointed_layers`` of the model's layers checkpointed."""
    per_token = shape.saved_per_token(compute_bytes, weight_bytes, lora_dropout)
    kept = batch.tokens * ((shape.layers - checkpointed_layers) * per_token + checkpointed_layers * weight_bytes * shape.hidden)
    recomputed = batch.tokens * per_token if checkpointed_layers else 0
    head_rows = min(batch.labelled, HEAD_CHUNK_ROWS) if labelled_logits_only else batch.tokens
    head = head_rows * shape.vocab * (8 + compute_bytes)
    return Estimate({"runtime": RUNTIME_MIB, "weights": shape.parameters * weight_bytes / MiB,
                     "optimizer": trainable * 12 / MiB, "activations": (kept + recomputed) / MiB,
                     "output layer": head / MiB})


def estimate_evaluation(shape: ModelShape, batch: BatchShape, *, compute_bytes: int = 2, weight_bytes: int = 4,
                        labelled_logits_only: bool = True) -> Estimate:
    """An evaluation forward's peak: no activations kept, one layer's transients at a time."""
    transient = batch.tokens * shape.saved_per_token(compute_bytes, weight_bytes, False)
    head_rows = min(batch.labelled, HEAD_CHUNK_ROWS) if labelled_logits_only else batch.tokens
    return Estimate({"runtime": RUNTIME_MIB, "weights": shape.parameters * weight_bytes / MiB,
                     "activations": transient / MiB, "output layer": head_rows * shape.vocab * (4 + compute_bytes) / MiB})


@dataclass(frozen=True)
class Limit:
    mib: int
    source: str


def memory_limit(configured_mib: Optional[int] = None) -> Limit:
    """What this process may use: ``training.memory_limit`` when set, else the cgroup's limit (a container's
    or a job's), else MemAvailable, else the physical memory."""
    if configured_mib:
        return Limit(configured_mib, "training.memory_limit")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number: no limit
            return Limit(int(text) // MiB, f"the cgroup limit ({path})")
    available = meminfo_mib("MemAvailable")
    if available:
        return Limit(available, "MemAvailable in /proc/meminfo")
    return Limit(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MiB, "physical memory")


def meminfo_mib(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class CheckpointingChoice:
    """What ``training.gradient_checkpointing`` resolved to (run.json's ``gradient_checkpointing``)."""

    layers: int  # how many of the model's layers are checkpointed (0: off)
    of: int
    estimate: Optional[Estimate]  # None where the model is not one the estimate covers
    reason: str

    def summary(self) -> str:
        return "off" if not self.layers else "every layer" if self.layers >= self.of else f"{self.layers} of {self.of} layers"

    def facts(self) -> dict:
        return dict(used=self.summary(), checkpointed_layers=self.layers, layers=self.of, reason=self.reason,
                    estimated_peak_mib=self.estimate.total_mib if self.estimate else None,
                    estimate=self.estimate.parts_mib() if self.estimate else None)


def choose_checkpointing(setting, shape: ModelShape, batch: BatchShape, limit: Limit, **estimate_kwargs) -> CheckpointingChoice:
    """``training.gradient_checkpointing``: true or false as asked; ``auto``: off when the estimated peak
    fits ``limit`` with ``MARGIN`` to spare, else the fewest layers (spread evenly) that make it fit, else
    every layer, with a warning in the reason that even that may not fit."""
    budget = limit.mib * (1 - MARGIN)
    estimate = lambda n: estimate_training(shape, batch, n, **estimate_kwargs)  # noqa: E731
    if isinstance(setting, bool):
        layers = shape.layers if setting else 0
        return CheckpointingChoice(layers, shape.layers, estimate(layers), f"training.gradient_checkpointing: {str(setting).lower()}")
    without = estimate(0)
    where = f"{limit.mib:,} MiB ({limit.source}) less {MARGIN:.0%}"
    if without.total_mib <= budget:
        return CheckpointingChoice(0, shape.layers, without, f"auto: the estimated peak {without.total_mib:,} MiB fits {where}")
    for layers in range(1, shape.layers + 1):
        if estimate(layers).total_mib <= budget:
            return CheckpointingChoice(layers, shape.layers, estimate(layers),
                                       f"auto: without checkpointing the estimated peak {without.total_mib:,} MiB would not fit "
                                       f"{where}; {layers} of {shape.layers} layers checkpointed: {estimate(layers).total_mib:,} MiB")
    full = estimate(shape.layers)
    return CheckpointingChoice(shape.layers, shape.layers, full,
                               f"auto: every layer checkpointed, and the estimated peak {full.total_mib:,} MiB still exceeds "
                               f"{where}: lower training.per_device_train_batch_size or data.max_source_length")


def checkpointed_layer_indices(layers: int, of: int) -> list[int]:
    """``layers`` of ``of`` layer indices spread evenly (every n-th layer)."""
    return sorted({math.floor(j * of / layers) for j in range(layers)}) if layers else []


def largest_batch_that_fits(shape: ModelShape, positions: int, labelled_per_row: int, limit: Limit, checkpointed: int,
                            **estimate_kwargs) -> int:
    """The most rows of ``positions`` that fit ``limit`` less the margin (0 when not even one does)."""
    rows = 0
    while rows < 4096:
        trial = BatchShape(rows + 1, positions, labelled_per_row * (rows + 1))
        if estimate_training(shape, trial, checkpointed, **estimate_kwargs).total_mib > limit.mib * (1 - MARGIN):
            break
        rows += 1
    return rows


SIZE_UNITS = {"": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # a bare number: GiB
SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size_mib(text: str) -> int:
    """'8GB' (10^9 bytes), '8GiB', '7500MiB', '8' (GiB) -> MiB."""
    found = SIZE.fullmatch(text)
    unit = found.group(2).lower() if found else None
    if unit not in SIZE_UNITS:
        raise ValueError(f"{text!r} is not a memory size: write a number and one of "
                         "KB, MB, GB, TB, KiB, MiB, GiB, TiB, e.g. '8GB' or '7500MiB'")
    return max(1, round(float(found.group(1)) * SIZE_UNITS[unit] / MiB))


def resident_mib(field: str = "VmRSS") -> Optional[int]:
    """This process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def release_freed_memory() -> Optional[str]:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` (see the module doc); what was done, or None where
    the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return None
    return f"glibc mmap threshold fixed at {MMAP_THRESHOLD // MiB} MiB: freed activations go back to the system"
