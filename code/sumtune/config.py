"""The run configuration: one typed schema, YAML loading, ``_base_`` inheritance, ``--set`` overrides.

    sumtune validate config/model_configs/tiny_bart.yaml
    sumtune train config/model_configs/tiny_bart.yaml --set training.learning_rate=1e-3

A YAML file may name ``_base_: other.yaml`` (relative to itself); the file's keys are merged over the
base's (except ``name``: a config's run name is its own ``name:`` or else its file stem, never its
base's), then ``--set a.b=c`` overrides over both (values parsed as YAML, so ``=3``, ``=true`` and
``=[q,v]`` are typed), and the result is validated once. Every problem is reported at once as
``file: key.path: message``. Relative data and output paths resolve from the current directory.

This module imports no ML library, so ``sumtune validate`` stays instant.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .artifacts import HOME_VARIABLE, default_root
from .architectures import ARCHITECTURES, SIZE_PRESETS, get_architecture, unknown_choice_message
from .checkpoints import FETCHABLE, checkpoint_problems, fetched_name
from .datafiles import ROLES, CheckedFile, check_data_file, check_labels, check_overlap
from .memory import parse_size_mib

log = logging.getLogger("sumtune")

BASE_KEY = "_base_"
DEBUG_SUFFIX = "-debug"
# `--debug` (sumtune train/sweep, code/trainer.py): these overrides come before the user's --set, which
# may change any of them. The run is named {name}-debug, so nothing that picks the newest run of {name}
# (predict, sumtune.load, --resume, pruning) ever sees it.
DEBUG_OVERRIDES = (
    "debug=true",
    "training.max_steps=2",
    "training.logging_steps=1",
    "training.eval_strategy=no",
    "training.save_strategy=no",
    "training.early_stopping_patience=null",
    "data.max_train_samples=16",
    "data.max_eval_samples=2",
)
DEBUG_OVERRIDES_OF_TASK = {  # keys only one task has
    "summarization": ("evaluation.max_examples=2", "generation.max_new_tokens=16"),
    "classification": (),
}
# training.report_to backend -> modules that provide it (any one will do); the pip extra has the backend's name
TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}
SpecialTokenRole = Literal["bos_token", "eos_token", "unk_token", "pad_token", "mask_token"]

# Loading options, checked here (no ML library) for the config and for sumtune.load's arguments alike.
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES = get_args(DtypeName)
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate spreads the weights
DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
MEMORY_DEVICE = re.compile(r"^(cpu|mps|disk|cuda:\d+|\d+)$")  # a bare number is that GPU
MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?(GiB|MiB|KiB|GB|MB|KB)$")  # the units accelerate reads


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _raise_problems(problems: list[tuple[str, str]]) -> None:
    """Raise every cross-field problem at once as (key, message) pairs; each becomes its own
    ``file: key.path: message`` line (the key is relative to the section that checks it)."""
    if problems:
        summary = "; ".join(f"{key}: {message}" for key, message in problems)
        raise PydanticCustomError("cross_field", "{summary}", {"summary": summary, "problems": problems})


class ModelConfig(_Section):
    architecture: str = Field(description="Family key in the registry (sumtune/architectures.py), e.g. bart, t5, llama.")
    checkpoint: Optional[str] = Field(None, description="Hub id, local directory, a .gguf file (dequantized once into the checkpoint cache), or fetched:NAME for a checkpoint `sumtune fetch NAME` got; required when init is pretrained.")
    gguf_file: Optional[str] = Field(None, description="The .gguf file inside the checkpoint directory, when model.checkpoint names a directory of GGUF files.")
    revision: Optional[str] = Field(None, description="Branch, tag or commit of the checkpoint.")
    tokenizer: Optional[str] = Field(None, description="Tokenizer id or directory; default: the checkpoint's, or one trained on the data for init: scratch.")
    config: Optional[str] = Field(None, description="init: scratch only: a directory with a checkpoint's config.json (and generation_config.json); the random model keeps its facts (vocab size, special-token ids, decoder start, tied embeddings) with the size preset's dimensions.")
    special_tokens_map: dict[SpecialTokenRole, str] = Field(default_factory=dict, description="Special tokens the tokenizer does not declare, e.g. {eos_token: '</s>', pad_token: '<pad>'}; each must be in its vocabulary.")
    dtype: DtypeName = Field("auto", description="dtype of the base weights (bf16, fp16, fp32 are read as bfloat16, float16, float32). auto: bfloat16 on a GPU that supports it when the base does not train (LoRA, QLoRA), else float32 (CPU, full fine-tuning, a scratch model).")
    device_map: Optional[Union[str, int, dict[str, Union[int, str]]]] = Field(None, description="Where a pretrained checkpoint's weights go when it loads, through accelerate: auto (fill the GPUs, then the CPU), balanced, balanced_low_0, sequential, one device (cpu, cuda:0, 0), or {module: device}. Also sumtune.load's default. Single-process runs only: under DDP and DeepSpeed each rank holds the whole model on its own device.")
    max_memory: Optional[dict[str, Union[int, str]]] = Field(None, description="Memory cap per device for device_map, e.g. {cuda:0: 10GiB, cpu: 30GiB} (units GiB, MiB, GB, MB; a bare number of bytes); set alone, it implies device_map: auto.")
    trust_remote_code: bool = Field(False, description="Run code shipped with the checkpoint. Only for checkpoints you trust.")
    allow_pickle: bool = Field(False, description="Allow non-safetensors (pickle) weights.")
    init: Literal["pretrained", "scratch"] = Field("pretrained", description="Load a checkpoint, or build a randomly initialised model offline.")
    size: str = Field("tiny", description=f"Size preset for init: scratch ({', '.join(SIZE_PRESETS)}).")
    tokenizer_vocab_size: int = Field(4000, gt=100, description="Vocabulary size of a tokenizer trained for init: scratch.")

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(unknown_choice_message("architecture", value, ARCHITECTURES))
        return value

    @field_validator("checkpoint")
    @classmethod
    def _known_fetchable(cls, value: Optional[str]) -> Optional[str]:
        name = fetched_name(value)
        if name is not None and name not in FETCHABLE:
            raise ValueError(unknown_choice_message("fetchable checkpoint", name, FETCHABLE)
                             + " (`sumtune fetch --list` shows them)")
        return value

    @field_validator("size")
    @classmethod
    def _known_size(cls, value: str) -> str:
        if value not in SIZE_PRESETS:
            raise ValueError(unknown_choice_message("size preset", value, SIZE_PRESETS))
        return value

    @field_validator("dtype", mode="before")
    @classmethod
    def _known_dtype(cls, value):
        return check_dtype(value)

    @field_validator("device_map", mode="before")
    @classmethod
    def _known_device_map(cls, value):
        return check_device_map(value)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _known_max_memory(cls, value):
        return check_max_memory(value)


def check_dtype(value: str) -> str:
    """A dtype name (``auto``, ``bf16``/``bfloat16``, ...) as ``model.dtype`` holds it."""
    name = DTYPE_ALIASES.get(value, value) if isinstance(value, str) else value
    if name not in DTYPES:
        raise ValueError(f"{value!r} is not a dtype; use one of {', '.join((*DTYPES, *DTYPE_ALIASES))}")
    return name


def check_device_map(value: Any) -> Any:
    """A device_map as transformers takes it, or ValueError saying what is allowed."""
    if value is None or value in DEVICE_MAP_STRATEGIES or _is_device(value):
        return value
    if isinstance(value, dict) and value:
        wrong = {module: device for module, device in value.items() if not (_is_device(device) or device == "disk")}
        if not wrong:
            return value
        raise ValueError(f"{wrong} names no device; a module's device is cpu, disk, cuda:N, mps or a GPU number")
    raise ValueError(f"{value!r} is neither a strategy ({', '.join(DEVICE_MAP_STRATEGIES)}) nor a device "
                     "(cpu, cuda, cuda:0, mps, a GPU number) nor a non-empty {module: device} mapping")


def _is_device(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
        isinstance(value, str) and DEVICE.match(value) is not None)


def check_max_memory(value: Any) -> Optional[dict[str, Union[int, str]]]:
    """``{device: size}`` with GPUs written ``cuda:N`` (a bare number N is read as GPU N), or ValueError."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{value!r} is not a non-empty mapping of device to size, e.g. {{cuda:0: 10GiB, cpu: 30GiB}}")
    problems, checked = [], {}
    for device, size in value.items():
        key = str(device)
        if MEMORY_DEVICE.match(key) is None or isinstance(device, bool):
            problems.append(f"{device!r} is not a device (cpu, mps, disk, cuda:0, or a GPU number)")
            continue
        good_size = (isinstance(size, int) and not isinstance(size, bool) and size > 0) or (
            isinstance(size, str) and MEMORY_SIZE.match(size) is not None)
        if not good_size:
            problems.append(f"{key}: {size!r} is not a size (e.g. 10GiB, 512MiB, 30GB, or a number of bytes)")
        checked[f"cuda:{key}" if key.isdigit() else key] = size
    if problems:
        raise ValueError("; ".join(problems))
    return checked


class DataConfig(_Section):
    train_file: Path = Field(description="Training data: CSV, JSON Lines (.jsonl/.json) or a JSON array of records (.json).")
    eval_file: Optional[Path] = Field(None, description="Dev data for early stopping and the ROUGE after training.")
    test_file: Optional[Path] = Field(None, description="Test data for `sumtune predict` (summaries optional; ids must be unique).")
    encoding: str = Field("auto", description="Text encoding of the data files. auto: UTF-8 (with or without BOM), else CP949/EUC-KR (Excel's Korean CSV) when every byte decodes as that; or a Python codec name, e.g. cp949, utf-8, latin-1.")
    id_column: str = Field("fname", description="Column of row ids (predictions are matched by id); rows of a file without it are named row1, row2, ...")
    dialogue_column: str = "dialogue"
    summary_column: str = "summary"
    reference_columns: Optional[list[str]] = Field(None, min_length=1, description="eval_file only: columns of reference summaries that the dev ROUGE scores against together (mean and max over references), e.g. [summary1, summary2, summary3] for DialogSum's test file; the first is the target of the eval loss. Default: summary_column.")
    text_column: str = Field("text", description="task: classification: the column holding the text to classify.")
    label_column: str = Field("label", description="task: classification: the column holding each text's label (a string, or an integer that is then the label's id).")
    labels: Optional[list[Union[int, str]]] = Field(None, description="task: classification: the label set, in id order (integers are their own ids). Default: every label of train_file, sorted; a run's saved config.yaml always lists them.")
    eval_split: Optional[float] = Field(None, gt=0, lt=1, description="task: classification without eval_file: the share of train_file held out as dev, stratified by label and drawn with training.seed (default 0.2).")
    max_source_length: int = Field(512, gt=0, description="Prompt tokens kept, prefix / chat template / special tokens included; only the dialogue is shortened, at a token boundary.")
    max_target_length: int = Field(128, gt=0, description="Target tokens kept, its end token (EOS, or the chat template's end of turn) included and never cut.")
    clean: bool = Field(True, description="Normalise whitespace and line breaks; drop rows with an empty dialogue or summary.")
    train_rows: Optional[str] = Field(None, pattern=r"^\d*:\d*$", description="Only these examples of train_file, as START:END (0-based, END excluded, either may be left out), e.g. '0:399'; with eval_rows, one file gives disjoint train and dev parts.")
    eval_rows: Optional[str] = Field(None, pattern=r"^\d*:\d*$", description="Only these examples of eval_file, as START:END, e.g. '399:499'.")
    max_train_samples: Optional[int] = Field(None, gt=0)
    max_eval_samples: Optional[int] = Field(None, gt=0)

    @field_validator("train_rows", "eval_rows", mode="before")
    @classmethod
    def _rows_as_text(cls, value):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"got {value!r}: write START:END in quotes, e.g. '0:399' (unquoted, YAML reads 1:30 as "
                             "the number 90 and 7: as a mapping)")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            if value != "auto":
                "".encode(value)  # also refuses codecs that are not text encodings (base64, rot13)
        except LookupError:
            raise ValueError("unknown text encoding; use auto, or a Python codec name such as utf-8, cp949, euc-kr, latin-1") from None
        return value


class PreprocessingConfig(_Section):
    prefix: Optional[str] = Field(None, description="Source prefix; default from the registry (T5: 'summarize: ').")
    prompt_template: Optional[str] = Field(None, description="Prompt with a {dialogue} field. GPT default: '{dialogue} TL;DR: '; chat default: a summarisation request.")
    system_prompt: Optional[str] = Field(None, description="System message for chat-template families.")
    chat_template: Optional[str] = Field(None, description="Jinja chat template overriding the tokenizer's.")
    speaker_tokens: bool = Field(True, description="Add #Person1#-style tags and masks found in the data as single special tokens.")
    special_tokens: list[str] = Field(default_factory=list, description="Extra tokens to add as single special tokens.")

    @field_validator("prompt_template")
    @classmethod
    def _has_dialogue_field(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and "{dialogue}" not in value:
            raise ValueError("prompt_template must contain '{dialogue}', where the dialogue goes")
        return value


class QLoRAConfig(_Section):
    use_unsloth: bool = Field(False, description="Wish for unsloth's fast path; honoured only on CUDA for families it accelerates.")
    use_qlora: bool = Field(True, description="Train LoRA adapters (true) or all weights (false).")
    load_in_4bit: bool = Field(False, description="Quantise the base model to 4-bit NF4 (CUDA only).")
    lora_rank: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: Union[Literal["auto"], list[str]] = Field("auto", description="'auto' = the registry's targets present in the model.")


class TrainingConfig(_Section):
    num_train_epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: use epochs).")
    learning_rate: float = Field(5e-5, gt=0)
    per_device_train_batch_size: int = Field(8, gt=0)
    per_device_eval_batch_size: int = Field(16, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"] = "linear"
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="bf16/fp16: mixed precision (autocast; fp32 master weights). auto: bf16 on GPUs that support it and on CPUs that multiply bf16 natively (AVX512-BF16 or AMX-BF16: measured faster with the same loss), else fp32; run.json's precision says what it resolved to and why.")
    gradient_checkpointing: Union[Literal["auto"], bool] = Field("auto", description="Recompute each checkpointed layer's activations in backward instead of keeping them (about 1.3x the step time on CPU, a fraction of the memory). auto: off when the estimated training peak (sumtune/memory.py, from config.json and the costliest batch) fits the memory limit with 15 % to spare, else as few layers as make it fit, spread evenly, else every layer; run.json's gradient_checkpointing says what it chose and why. `sumtune validate` prints the estimate.")
    memory_limit: Optional[str] = Field(None, description="The memory this run may use, e.g. '8GB', '8GiB', '7500MiB' (GB = 10^9 bytes); default: the cgroup's limit, else MemAvailable. Decides training.gradient_checkpointing: auto.")
    labelled_logits_only: bool = Field(True, description="Causal models: run the output layer and the loss only at labelled positions (the summary), a chunk at a time, instead of computing logits for every prompt position (sumtune/labelled_loss.py); the loss is the same. false: the model's own forward and loss. Single-process runs only (DDP uses the model's own).")
    group_by_length: bool = Field(True, description="Exact length bucketing: the training examples sorted by length (seq2seq: source, then target; causal: the whole sequence) are cut into batches of neighbours, whose order is shuffled per epoch from the seed (deterministic, resumable); false: random order.")
    max_tokens_per_batch: Optional[int] = Field(None, gt=0, description="With group_by_length: batches of as many length-sorted examples as fit this many tokens once padded (rows x longest row, source and target each; at least one row), instead of per_device_train_batch_size rows, so that short examples travel in bigger batches.")
    packing: Union[Literal["auto"], bool] = Field("auto", description="Padding-free packing, decoder-only (causal) families only: each batch's examples concatenated into one row without padding, position ids restarting per example, attention kept inside each example (transformers' DataCollatorWithFlattening; checked on the loaded model before training). auto: on where the attention is flash attention (variable-length sequences), off elsewhere: with sdpa/eager attention (every CPU) a packed row gets a dense mask over the whole row and trained at 0.70x the speed of exact length bucketing (docs/benchmarks/causal_train_throughput.md); run.json's packing says what it resolved to and why.")
    eval_strategy: Literal["no", "steps", "epoch"] = "epoch"
    save_strategy: Literal["no", "steps", "epoch"] = "epoch"
    eval_steps: Optional[int] = Field(None, gt=0)
    save_steps: Optional[int] = Field(None, gt=0)
    save_total_limit: Optional[int] = Field(2, gt=0)
    logging_steps: int = Field(10, gt=0)
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list, description="Experiment tracking: none (default), tensorboard, wandb, or a list of them; the run id is the run name. TensorBoard event files go to logs/tensorboard/{run_id}/. Needs the tracker installed: pip install 'sumtune[tensorboard]' or 'sumtune[wandb]'.")
    early_stopping_patience: Optional[int] = Field(None, gt=0, description="Stop after this many evaluations without a better eval_loss; keeps the best checkpoint.")
    class_weights: Optional[Union[Literal["auto"], dict[str, float]]] = Field(None, description="task: classification: weigh the loss per class against imbalance. auto: n / (classes x count of the class) from train_file; or {label: weight}.")
    deepspeed: Optional[Path] = Field(None, description="DeepSpeed JSON passed to the HF Trainer.")

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _a_size(cls, value):
        if value is None:
            return None
        parse_size_mib(str(value))  # raises with the units it takes
        return str(value)

    @property
    def memory_limit_mib(self) -> Optional[int]:
        return parse_size_mib(self.memory_limit) if self.memory_limit else None

    @field_validator("eval_strategy", "save_strategy", mode="before")
    @classmethod
    def _yaml_no_is_false(cls, value):
        return "no" if value is False else value  # YAML reads a bare `no` as false

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_a_list(cls, value):
        if value in ("none", None, False):
            return []
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> "TrainingConfig":
        problems = []
        if self.early_stopping_patience is not None and self.eval_strategy == "no":
            problems.append(("early_stopping_patience", "needs eval_strategy 'steps' or 'epoch' (got 'no')"))
        if self.early_stopping_patience is not None and self.save_strategy != self.eval_strategy:
            problems.append(("early_stopping_patience", f"needs save_strategy equal to eval_strategy (the best checkpoint must be saved; got save_strategy '{self.save_strategy}', eval_strategy '{self.eval_strategy}')"))
        if self.eval_strategy == "steps" and self.eval_steps is None:
            problems.append(("eval_steps", "required when eval_strategy is 'steps'"))
        if self.save_strategy == "steps" and self.save_steps is None:
            problems.append(("save_steps", "required when save_strategy is 'steps'"))
        if self.max_tokens_per_batch is not None and not self.group_by_length:
            problems.append(("max_tokens_per_batch", "needs group_by_length: true (token budgets cut length-sorted batches)"))
        _raise_problems(problems)
        return self


class GenerationConfig(_Section):
    num_beams: int = Field(4, gt=0)
    max_new_tokens: int = Field(100, gt=0)
    no_repeat_ngram_size: int = Field(0, ge=0)
    length_penalty: float = 1.0
    early_stopping: Union[bool, Literal["never"]] = Field(False, description="Beam search: false (transformers' default) stops when no live beam is likely to beat the finished ones; never: only when none can; true: as soon as num_beams hypotheses have finished, which may return a cut summary (an empty one finished at the first step counts), so it is no default here.")
    batch_size: int = Field(16, gt=0, description="Examples per generate() call when max_tokens_per_batch is null; a config that sets batch_size and not max_tokens_per_batch gets fixed batches of batch_size.")
    max_tokens_per_batch: Optional[int] = Field(32768, gt=0, description="As many length-sorted prompts per generate() call as keep rows x (longest prompt + max_new_tokens) x num_beams within this many positions, so that short prompts go in bigger batches (a longer prompt goes alone); measured 1.4x faster than batches of 16 in bf16 on CPU (docs/benchmarks/eval_throughput.md). null: batch_size examples per call.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="bf16: generate under bfloat16 autocast. auto: bf16 on GPUs that support it and on CPUs with AVX512-BF16 or AMX-BF16, else fp32 (sumtune/precision.py).")

    @model_validator(mode="before")
    @classmethod
    def _batch_size_means_fixed_batches(cls, data):
        """A config (or --set) that asks for batch_size examples per call gets them, not the default budget."""
        if isinstance(data, dict) and "batch_size" in data and "max_tokens_per_batch" not in data:
            data = {**data, "max_tokens_per_batch": None}
        return data


class EvaluationConfig(_Section):
    tokenizer: Literal["auto", "kiwi", "mecab", "whitespace", "english"] = Field("auto", description="ROUGE tokenizer; auto = kiwi for examples with Hangul, english otherwise.")
    max_examples: Optional[int] = Field(None, gt=0, description="Score only the first N dev examples.")
    baseline: bool = Field(True, description="Before training a pretrained checkpoint (model.init: pretrained), score the base model on the same dev examples with the run's decoding and prompt, and compare it with the fine-tuned scores after training (run.json baseline, base_vs_fine_tuned; a fine-tuned score below the base's is a warning). Reused from {output.root}/outputs/.baselines/ when the same base, dev examples, decoding and prompt were scored already. Scratch models are never scored (they know nothing before training). false: skip it.")


class OutputConfig(_Section):
    root: Path = Field(default_factory=lambda: default_root()[0], validate_default=True,
                       description=f"Directory that holds models/, outputs/ and logs/; when not set: ${HOME_VARIABLE}, else the current directory.")

    @field_validator("root")
    @classmethod
    def _a_directory(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a directory; set output.root (or ${HOME_VARIABLE}) to the directory "
                             "for models/, outputs/ and logs/")
        return value

    @property
    def root_source(self) -> str:
        """Where ``root`` came from: output.root (the YAML or --set), SUMTUNE_HOME, or current directory."""
        return "output.root" if "root" in self.model_fields_set else default_root()[1]


Task = Literal["summarization", "classification"]
DEFAULT_EVAL_SPLIT = 0.2

# Keys that only one task reads, as (section, key) with key None for a whole section. Setting one under the
# other task is an error: a user who sets it expects an effect that would silently not happen.
TASK_ONLY_KEYS: dict[str, tuple[tuple[str, Optional[str]], ...]] = {
    "summarization": (("data", "dialogue_column"), ("data", "summary_column"), ("data", "max_target_length"),
                      ("preprocessing", None), ("generation", None), ("evaluation", None)),
    "classification": (("data", "text_column"), ("data", "label_column"), ("data", "labels"),
                       ("data", "eval_split"), ("training", "class_weights")),
}


class RunConfig(_Section):
    name: str = Field(description="Run name; artifact directories are {name}_{timestamp}.", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    debug: bool = Field(False, description="A smoke test (set by --debug with a few steps and examples, no checkpoints): the run is named {name}-debug and marked debug in run.json, so it is never taken as the newest run of {name}.")
    task: Task = Field("summarization", description="summarization (seq2seq and causal families) or classification (encoder families: electra, bert, roberta).")
    backend: Literal["auto", "unsloth", "peft", "full"] = Field("auto", description="auto picks; naming one insists on it.")
    model: ModelConfig
    data: DataConfig
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    qlora: QLoRAConfig = Field(default_factory=QLoRAConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig = Field(default_factory=dict, validate_default=True)  # validated: root may come from SUMTUNE_HOME

    @model_validator(mode="after")
    def _cross_checks(self) -> "RunConfig":
        problems = []
        if self.model.init == "pretrained" and not self.model.checkpoint:
            problems.append(("model.checkpoint", "required when model.init is 'pretrained' (or set model.init: scratch)"))
        if self.model.gguf_file and (self.model.init != "pretrained" or not self.model.checkpoint
                                     or self.model.checkpoint.endswith(".gguf")
                                     or fetched_name(self.model.checkpoint)):
            problems.append(("model.gguf_file", "names a .gguf file inside the directory model.checkpoint names; "
                             "remove it (a .gguf path or fetched:NAME in model.checkpoint needs none)"))
        if self.model.init == "pretrained" and self.model.config:
            problems.append(("model.config", "only for model.init: scratch (a pretrained checkpoint brings its own config.json)"))
        if self.backend == "full" and self.qlora.use_qlora:
            problems.append(("backend", "'full' trains all weights: set qlora.use_qlora: false"))
        if self.backend in ("peft", "unsloth") and not self.qlora.use_qlora:
            problems.append(("backend", f"'{self.backend}' trains adapters: set qlora.use_qlora: true"))
        if self.qlora.load_in_4bit and not self.qlora.use_qlora:
            problems.append(("qlora.load_in_4bit", "needs LoRA adapters (qlora.use_qlora: true); 4-bit weights cannot be fully fine-tuned"))
        problems += self._task_problems()
        if self.training.packing is True and self.arch.kind != "causal":
            problems.append(("training.packing", f"packs decoder-only (causal) models only; '{self.model.architecture}' is "
                             f"an {'encoder-decoder' if self.arch.kind == 'seq2seq' else 'encoder'} model, whose examples "
                             "are not one sequence of prompt and answer. Set training.packing: false or auto (exact "
                             "length bucketing, training.group_by_length, keeps its padding low)"))
        for key in ("device_map", "max_memory"):
            if self.training.deepspeed and getattr(self.model, key) is not None:
                problems.append((f"model.{key}", f"cannot be used with training.deepspeed: DeepSpeed gives every rank the "
                                 f"whole model on its own device. Remove model.{key} (or training.deepspeed)"))
        _raise_problems(problems)
        return self

    def _task_problems(self) -> list[tuple[str, str]]:
        """The family must serve the task, and keys of the other task must not be set."""
        problems = []
        families = [family for family, row in ARCHITECTURES.items() if row.task == self.task]
        if self.arch.task != self.task:
            problems.append(("model.architecture", f"'{self.model.architecture}' is a family for {self.arch.task} "
                             f"({self.arch.kind}); task {self.task} needs one of: {', '.join(families)} (or set task: {self.arch.task})"))
        for other, keys in TASK_ONLY_KEYS.items():
            if other == self.task:
                continue
            for section, key in keys:
                node = getattr(self, section)
                if key is None and section in self.model_fields_set:
                    problems.append((section, f"is for task {other} only; remove the {section} section (task is {self.task}; "
                                     "classification configs take _base_: ../base/classification.yaml)"))
                elif key is not None and key in node.model_fields_set:
                    problems.append((f"{section}.{key}", f"is for task {other} only; remove it (task is {self.task})"))
        if self.task == "classification" and self.data.eval_file is not None and self.data.eval_split is not None:
            problems.append(("data.eval_split", "holds out part of train_file as dev, but data.eval_file is set too; "
                             "keep one of them"))
        labels = self.data.labels
        if labels is not None and (len(labels) < 2 or len(set(map(str, labels))) != len(labels)):
            problems.append(("data.labels", f"needs two or more distinct labels (got {labels})"))
        weights = self.training.class_weights
        if isinstance(weights, dict) and labels is not None:
            unknown = sorted(set(weights) - set(map(str, labels)))
            if unknown:
                problems.append(("training.class_weights", f"{', '.join(unknown)} not in data.labels ({', '.join(map(str, labels))})"))
        return problems

    @property
    def arch(self):
        return get_architecture(self.model.architecture)

    @property
    def eval_split(self) -> Optional[float]:
        """The share of train_file held out as dev (classification without eval_file), else None."""
        if self.task != "classification" or self.data.eval_file is not None:
            return None
        return self.data.eval_split if self.data.eval_split is not None else DEFAULT_EVAL_SPLIT

    def to_yaml(self) -> str:
        """Every key of this task, with its value (the other task's keys are left out: they would be refused)."""
        exclude: dict = {}
        for other, keys in TASK_ONLY_KEYS.items():
            if other != self.task:
                for section, key in keys:
                    if key is None:
                        exclude[section] = True
                    else:
                        exclude.setdefault(section, set()).add(key)
        dumped = json.loads(self.model_dump_json(exclude=exclude))
        return yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------------------------------
# Loading


class ConfigError(Exception):
    """One or more problems in one or more config files; ``problems`` holds ``file: key: message`` lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def read_yaml_with_bases(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: file not found"])
    if path.resolve() in _seen:
        raise ConfigError([f"{path}: {BASE_KEY}: circular inheritance ({' -> '.join(str(p) for p in (*_seen, path.resolve()))})"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, not {type(raw).__name__}"])
    base_name = raw.pop(BASE_KEY, None)
    if base_name is None:
        return raw
    base = read_yaml_with_bases(path.parent / base_name, _seen + (path.resolve(),))
    base.pop("name", None)  # a run name is never inherited: two configs sharing one would share runs (--resume, predict)
    return deep_merge(base, raw)


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=c`` strings; values are parsed as YAML scalars/lists."""
    result = dict(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--set {item}: expected key.path=value, e.g. training.learning_rate=1e-4"])
        value = _override_value(item, text)
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return result


def _override_value(item: str, text: str) -> Any:
    """The YAML value of one ``--set``; a malformed or tagged value (``!!python/...``: safe_load never runs
    it) is one ConfigError line naming the override and the fix."""
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"--set {item}: the value is not valid YAML ({problem}); quote a text value "
                           "(--set 'key=\"...\"'), and write lists as [a, b]"]) from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (), check_files: bool = True,
                debug: bool = False) -> RunConfig:
    """Read, merge and validate one config file; raise ConfigError listing every problem.

    ``check_files``: also check what training needs on this machine: the data files' rows and the
    experiment trackers' packages. ``debug`` (``--debug``): the smoke-test overrides of the config's task
    come before ``overrides``."""
    path = Path(path)
    raw = read_yaml_with_bases(path)
    if debug:
        task = apply_overrides(raw, list(overrides)).get("task", "summarization")
        overrides = [*DEBUG_OVERRIDES, *DEBUG_OVERRIDES_OF_TASK.get(task, ()), *overrides]
    raw = apply_overrides(raw, list(overrides))
    raw.setdefault("name", path.stem)
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {line}" for line in _describe_errors(exc)]) from None
    if cfg.debug:
        cfg.name += DEBUG_SUFFIX
    if check_files:
        problems = data_file_problems(check_data_files(cfg)) + tracker_problems(cfg) + checkpoint_problems(cfg.model, cfg.arch)
        if problems:
            raise ConfigError([f"{path}: {line}" for line in problems])
    return cfg


def _describe_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "cross_field":
            lines.extend(f"{'.'.join([*map(str, err['loc']), key])}: {message}" for key, message in err["ctx"]["problems"])
        elif err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key{_did_you_mean(err['loc'])}")
        elif err["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
        else:
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc}: {message} (got {err['input']!r})" if _shows_input(err) else f"{loc}: {message}")
    return lines


def _shows_input(err: dict) -> bool:
    return not isinstance(err.get("input"), (dict, list)) and err["type"] != "value_error"


def _did_you_mean(loc: tuple) -> str:
    section: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        field = section.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        section = annotation
    valid = list(section.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid keys here: {', '.join(valid)}"


def check_data_files(cfg: RunConfig) -> list[CheckedFile]:
    """Every row of every data file read and checked by the rules training uses (``datafiles``): the
    columns, empty fields, duplicate ids, malformed rows, the encoding. No tokenizer is loaded."""
    files = [(role, getattr(cfg.data, role)) for role in ROLES]
    checked = {role: check_data_file(path, cfg.data, role, cfg.task) for role, path in files if path is not None}
    if cfg.task == "classification":
        check_labels(checked.get("train_file"), checked.get("eval_file"), cfg.data)
    if "train_file" in checked:
        check_overlap(checked["train_file"], checked.get("eval_file"), cfg.data)
    return list(checked.values())


def tracker_problems(cfg: RunConfig) -> list[str]:
    """``training.report_to`` backends whose package is not installed here (found without importing it)."""
    problems = []
    for backend in cfg.training.report_to:
        modules = TRACKER_MODULES[backend]
        if not any(importlib.util.find_spec(module) for module in modules):
            problems.append(f"training.report_to: '{backend}' is not installed here: pip install 'sumtune[{backend}]' "
                            f"(or pip install {modules[0]}), or remove '{backend}' from training.report_to")
    return problems


def data_file_problems(checked: list[CheckedFile]) -> list[str]:
    """``data.train_file: <problem>`` lines for every problem found in the files."""
    return [f"data.{found.role}: {line}" for found in checked for line in found.problems]


def validate_files(paths: list[str | Path], overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """All problems in all files (empty list: all valid). Data files' warnings (rows that training will
    drop, duplicate ids) and a non-UTF-8 encoding are logged to the ``sumtune`` logger."""
    problems: list[str] = []
    for path in paths:
        try:
            cfg = load_config(path, overrides, check_files=False)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        checked = check_data_files(cfg)
        problems.extend(f"{path}: {line}" for line in data_file_problems(checked) + tracker_problems(cfg)
                        + checkpoint_problems(cfg.model, cfg.arch))
        for found in checked:
            found.log_findings(log, prefix=f"{path}: data.{found.role}: ")
    return problems
