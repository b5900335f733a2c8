"""A trained run, rebuilt exactly as it was trained: the one loader behind predict and apps.

    import sumtune
    trained = sumtune.load("tiny_bart")                         # newest completed run of a config / run name
    trained = sumtune.load("tiny_bart_20250101-120000")         # a run id under models/, or a run directory
    trained = sumtune.load("kobart", device_map="auto", dtype="bf16", max_memory={"cuda:0": "10GiB", "cpu": "30GiB"})
    trained = sumtune.load("tiny_bart", merge=True)             # the LoRA adapter folded into the base
    trained.summarize(["#Person1#: 안녕하세요 ...", ...], num_beams=1)
    sumtune.load("tiny_electra_spam").classify(["(광고) 무료 대출 ..."])   # a classification run: ["spam"]

A run is a ``models/{name}_{ts}`` directory, a run id (``{name}_{ts}``, looked up under ``models/``), or a
name: a config (path, or a stem of config/model_configs/) or a run name, whose latest *completed* run
is used. The run's ``config.yaml`` and ``run.json`` decide everything: the base (the checkpoint and
revision it was trained from, or the scratch init saved in ``base_model/``), its dtype, its quantization
(a run trained on 4-bit NF4 base weights is rebuilt in 4-bit through bitsandbytes, which also runs on a
CPU; where it is not usable the log says what was done instead), the embedding rows made for added
tokens, the adapter, the tokenizer saved with the run, and the preprocessing and generation settings.
``device_map``, ``dtype`` and ``max_memory`` given to ``load`` win over the run's ``model.*`` keys.
Weights load from safetensors only, unless the run's config says ``model.allow_pickle: true``. Loading
writes nothing; it logs and keeps how long the base and the adapter took and the peak memory after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import yaml
from pydantic import ValidationError

from . import artifacts
from .config import DEBUG_SUFFIX, ModelConfig, RunConfig, load_config
from .records import staging_leftovers

log = logging.getLogger("sumtune")

MODEL_CONFIGS = Path("config") / "model_configs"


class RunError(ValueError):
    """The run cannot be found or rebuilt; the message says why and what to pass instead."""


@dataclass
class TrainedModel:
    model: Any
    tokenizer: Any
    config: RunConfig
    run: Path  # the run's model directory
    manifest: dict = field(default_factory=dict)  # its run.json
    notes: list[str] = field(default_factory=list)  # where the rebuild differs from training, and why
    load_time_s: dict[str, float] = field(default_factory=dict)  # {"base": s, "adapter": s[, "merge": s]}
    peak_memory_mb: Optional[float] = None  # after loading: CUDA max allocated, or the process's peak RSS on a CPU

    def summarize(self, dialogues: Sequence[str], progress: bool = False, **generation) -> list[str]:
        """Summaries with the run's preprocessing; ``generation`` overrides its settings (num_beams=1, ...;
        ``batch_size`` means that many dialogues per call, the run's token budget aside)."""
        from .generate import generate_summaries

        self._require_task("summarization", "summarize", "classify")
        if "batch_size" in generation:  # batch_size=N: N per generate() call, as in a config, not the run's budget
            generation.setdefault("max_tokens_per_batch", None)
        cfg = self.config.model_copy(update={"generation": self.config.generation.model_copy(update=generation)})
        return generate_summaries(self.model, self.tokenizer, list(dialogues), cfg, progress=progress)

    def classify(self, texts: Sequence[str], batch_size: Optional[int] = None, probabilities: bool = False) -> list:
        """The label of each text (a classification run); with ``probabilities``, ``Classified(label,
        probability, probabilities)`` with the probability of every label."""
        from .classify import predict_labels
        from .datafiles import label_ids

        self._require_task("classification", "classify", "summarize")
        labels, probs = predict_labels(self.model, self.tokenizer, list(texts), self.config, batch_size=batch_size)
        if not probabilities:
            return labels
        ids = label_ids(self.config.data.labels)
        return [Classified(label, p[ids[label]], {name: p[i] for name, i in ids.items()}) for label, p in zip(labels, probs)]

    def _require_task(self, task: str, method: str, other: str) -> None:
        if self.config.task != task:
            raise RunError(f"{self.run} is a {self.config.task} run: use .{other}(...), not .{method}(...)")


class Classified(NamedTuple):
    label: str
    probability: float  # of ``label``
    probabilities: dict[str, float]  # of every label, in id order


def load(ref: str | Path, device_map=None, dtype=None, max_memory: Optional[dict] = None,
         merge: bool = False) -> TrainedModel:
    """The run ``ref`` rebuilt as trained; the options, when given, win over its ``model.*`` keys.

    ``device_map``: ``"auto"`` spreads the model over the GPUs, then the CPU (accelerate); a device
    (``"cpu"``, ``"cuda:0"``) or ``{module: device}``. ``dtype``: ``"auto"``, ``"bf16"``, ``"fp16"``,
    ``"fp32"`` or a torch dtype. ``max_memory``: a cap per device, ``{"cuda:0": "10GiB", "cpu": "30GiB"}``
    (alone it implies ``device_map="auto"``). ``merge``: fold a LoRA adapter into the base weights
    (``merge_and_unload``) for faster generation; a 4-bit base is dequantized first (see ``notes``).
    """
    run_dir = find_run_dir(ref)
    cfg = with_load_options(load_run_config(run_dir), run_dir, device_map=device_map, dtype=dtype, max_memory=max_memory)
    manifest = artifacts.load_manifest(artifacts.Run(cfg.name, run_dir.name, run_dir.parent.parent))
    return rebuild(run_dir, cfg, manifest, merge=merge)


def with_load_options(cfg: RunConfig, run_dir: Path, **options) -> RunConfig:
    """The run's config with ``load``'s options over its ``model.*`` keys, checked before any model loads."""
    given = {key: value for key, value in options.items() if value is not None}
    if "dtype" in given and not isinstance(given["dtype"], str):  # a torch dtype: torch.bfloat16 -> "bfloat16"
        given["dtype"] = str(given["dtype"]).removeprefix("torch.")
    if not given:
        return cfg
    try:
        model = ModelConfig.model_validate({**cfg.model.model_dump(), **given})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise RunError(f"sumtune.load({run_dir}): {problems}") from None
    return cfg.model_copy(update={"model": model})


# --- which run -------------------------------------------------------------------------------------


def find_run_dir(target: str | Path) -> Path:
    """A run's model directory from itself, a run id, or a name: a config path / config stem / run name,
    whose ``SUMTUNE_MODEL_<NAME>`` pin, else latest completed run, is used. A run found is whole: a corrupt
    or half-saved one is a RunError naming its file (``run_problem``); lookups by name pass over it."""
    path = Path(target)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise RunError(
                f"{path} is not a trained run's model directory (no config.yaml); pass models/{{name}}_{{timestamp}}, "
                "a run id, a run name or a config file"
            )
        return whole_run_dir(path)
    config_path = path if path.is_file() else MODEL_CONFIGS / f"{target}.yaml"
    task = None
    if config_path.is_file():
        cfg = load_config(config_path, check_files=False)
        name, root, task = cfg.name, cfg.output.root, cfg.task
    else:  # a run id or a run name under $SUMTUNE_HOME, else the current directory
        name, root = str(target), artifacts.default_root()[0]
        if path.name != name:  # a path to nothing
            raise _nothing_there(target, config_path, None)
        if (root / "models" / name / "config.yaml").is_file():
            return whole_run_dir(root / "models" / name)
    try:
        pinned = artifacts.pinned_run_dir(name)
    except artifacts.PinError as exc:
        raise RunError(str(exc)) from None
    if pinned is not None:
        log.info("%s pins '%s' to %s", artifacts.pin_variable(name), name, pinned)
        return whole_run_dir(check_pin(pinned, name, task))
    if not config_path.is_file() and not artifacts.find_runs(name, root):
        raise _nothing_there(target, config_path, root)
    return latest_completed_run(name, root).model_dir


def check_pin(run_dir: Path, name: str, task: Optional[str]) -> Path:
    """A pinned run of another task than the config asked for is an error; one of another name, or a
    ``--debug`` smoke run, is used with a warning that says so."""
    variable = f"{artifacts.pin_variable(name)}={run_dir}"
    saved = _saved_config(run_dir)
    pinned_name = str(saved.get("name", run_dir.name))
    pinned_task = artifacts.run_task({"task": saved.get("task")})
    if task is not None and pinned_task != task:
        raise RunError(f"{variable} pins the {task} run name '{name}' to a {pinned_task} run ('{pinned_name}'); point "
                       f"it at a run of '{name}' (models/{name}_{{timestamp}}), or unset it to use the newest completed one")
    if saved.get("debug") or pinned_name == f"{name}{DEBUG_SUFFIX}":
        log.warning("%s is a --debug smoke run (2 training steps): its outputs are not a trained model's", variable)
    elif pinned_name != name:
        log.warning("%s pins '%s' to a run of '%s'", variable, name, pinned_name)
    return run_dir


def run_problem(run_dir: Path) -> Optional[str]:
    """Why the run in ``run_dir`` cannot be used as it is (corrupt, or its final save interrupted), or None."""
    leftovers = staging_leftovers(run_dir)
    if leftovers:
        return (f"its final save was interrupted ({leftovers[0]} is left over): the run is incomplete; finish it with "
                "sumtune train CONFIG --resume")
    try:
        if (run_dir / "config.yaml").exists():
            _saved_config(run_dir)
        artifacts.load_manifest(artifacts.Run(run_dir.name, run_dir.name, run_dir.parent.parent))
    except (RunError, artifacts.CorruptRun) as exc:
        return str(exc)
    for weights in sorted(run_dir.glob("*.safetensors")) + sorted((run_dir / "base_model").glob("*.safetensors")):
        problem = safetensors_problem(weights)
        if problem:
            return f"{weights} is {problem}: the run is corrupt (a copy or save cut short); copy it again or retrain"
    return None


def safetensors_problem(path: Path) -> Optional[str]:
    """Why safetensors cannot open ``path`` (its header says more bytes than the file holds, ...), or None."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            return None
    except (SafetensorError, OSError) as exc:
        return f"unreadable ({exc})"


def whole_run_dir(run_dir: Path) -> Path:
    """``run_dir`` when ``run_problem`` finds nothing wrong with it, else a RunError naming what is."""
    problem = run_problem(run_dir)
    if problem:
        raise RunError(f"{run_dir}: {problem}")
    return run_dir


def _saved_config(run_dir: Path) -> dict:
    """config.yaml as a mapping; a RunError naming it when it cannot be read."""
    path = run_dir / "config.yaml"
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} cannot be read ({str(exc).splitlines()[0]}): the run is corrupt") from None
    if not isinstance(saved, dict):
        raise RunError(f"{path} is not a mapping of config keys: the run is corrupt")
    return saved


def _nothing_there(target, config_path: Path, root) -> RunError:
    runs = "" if root is None else (f", and {Path(root) / 'models'} holds no run of that name or id (runs live under "
                                    f"output.root, else ${artifacts.HOME_VARIABLE}, else the current directory)")
    return RunError(f"'{target}' is neither a run directory (models/{{name}}_{{timestamp}}) nor a config file, and "
                    f"{config_path} does not exist{runs}")


def latest_completed_run(name: str, root: Path) -> artifacts.Run:
    """The newest run of ``name`` that completed and is whole; corrupt or half-saved ones are passed over
    with a warning naming the file."""
    runs = artifacts.find_runs(name, root)
    statuses = []
    for run in reversed(runs):
        try:
            status = artifacts.load_manifest(run).get("status", "no run.json")
            problem = run_problem(run.model_dir) if status == "completed" else None
        except artifacts.CorruptRun as exc:
            status, problem = "corrupt", str(exc)
        if status == "completed" and problem is None:
            return run
        if problem:
            log.warning("passing over %s: %s", run.model_dir, problem)
            status = "corrupt"
        statuses.append(f"{run.run_id} ({status})")
    where = Path(root) / "models"
    if not runs:
        raise RunError(f"no run of '{name}' under {where}; train it first: sumtune train CONFIG "
                       f"(or set ${artifacts.HOME_VARIABLE} / output.root to where its runs are)")
    raise RunError(f"no completed run of '{name}' under {where}; found {', '.join(reversed(statuses))}. "
                   "Pass a run directory to use one")


def load_run_config(run_dir: Path) -> RunConfig:
    """The config the run was trained with (saved as config.yaml); its data files need not exist here."""
    try:
        return RunConfig.model_validate(_saved_config(run_dir))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise RunError(f"{run_dir / 'config.yaml'} is not a valid run config ({problems}): the run is corrupt, or "
                       "was saved by another sumtune") from None


# --- the model -------------------------------------------------------------------------------------


def rebuild(run_dir: Path, cfg: RunConfig, manifest: dict, merge: bool = False) -> TrainedModel:
    """Base + adapter when the run saved one, else the fully trained model; ``cfg.model`` says where the
    weights go and in which dtype (on a GPU, by default, all on this process's GPU)."""
    import transformers

    from .loading import (LoadClock, load_dtype, load_pretrained_model, make_room_for_new_tokens, placement,
                          quantized_device_map, warn_if_base_changed)

    if cfg.model.trust_remote_code:
        log.warning("trust_remote_code is ON for %s: code shipped with the checkpoint will run", cfg.model.checkpoint)
    adapter = (run_dir / "adapter_config.json").is_file()
    _require_safetensors(run_dir, "adapter_model" if adapter else "model", cfg)
    notes: list[str] = []
    quantization_config = _quantization_as_trained(manifest, notes) if adapter else None
    if cfg.model.device_map is None and cfg.model.max_memory is None:  # straight onto the GPU, or kept on the CPU
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device_map": quantized_device_map()})})
    auto_class = getattr(transformers, cfg.arch.auto_class)
    weights = dict(use_safetensors=None if cfg.model.allow_pickle else True, dtype=load_dtype(cfg), **placement(cfg.model))
    clock = LoadClock()
    with clock.step("base"):
        tokenizer = getattr(transformers, cfg.arch.tokenizer_class).from_pretrained(
            str(run_dir), trust_remote_code=cfg.model.trust_remote_code)
        if not adapter:
            model = auto_class.from_pretrained(str(run_dir), trust_remote_code=cfg.model.trust_remote_code, **weights)
        elif cfg.model.init == "scratch":  # saved with its embedding rows already made for the added tokens
            base = auto_class.from_pretrained(str(run_dir / "base_model"), quantization_config=quantization_config, **weights)
            added = []
        else:
            revision = cfg.model.revision or manifest.get("checkpoint_commit")
            base = load_pretrained_model(cfg.model_copy(update={"model": cfg.model.model_copy(update={"revision": revision})}),
                                         quantization_config)
            warn_if_base_changed(cfg, manifest, run_dir)
            added = added_token_ids(tokenizer, cfg, manifest)
        if adapter:
            if merge and quantization_config is not None:
                base = base.dequantize()
                notes.append(f"merge=True on a run trained on 4-bit NF4 base weights: the base was dequantized to "
                             f"{load_dtype(cfg)} before the adapter was folded in (peft would quantize each merged layer "
                             "to 4-bit again, rounding the small LoRA update away), so the merged model computes what "
                             "the trained one did, with the memory of an unquantized base")
            make_room_for_new_tokens(base, tokenizer, added)  # as training did; an untied output layer stays untied
    if adapter:
        from peft import PeftModel

        with clock.step("adapter"):  # its own weights stay float32, as trained (PEFT's autocast_adapter_dtype)
            model = PeftModel.from_pretrained(base, str(run_dir))
        if merge:
            with clock.step("merge"):
                model = model.merge_and_unload()
    elif merge:
        notes.append("merge=True: this run trained all weights and saved no adapter; there is nothing to fold in")
    for note in notes:
        log.warning("%s: %s", run_dir, note)
    log.info("%s: %s", run_dir, clock.describe())
    facts = clock.facts()
    return TrainedModel(model.eval(), tokenizer, cfg, run_dir, manifest, notes, facts["load_time_s"],
                        facts["load_peak_memory_mb"])


def _quantization_as_trained(manifest: dict, notes: list[str]):
    """The BitsAndBytesConfig the run trained with, or None (with a note when it cannot be had here)."""
    if manifest.get("quantization") != "4bit":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # a broken install raises more than ImportError
        notes.append(f"trained on 4-bit NF4 base weights, but bitsandbytes is not usable here ({type(exc).__name__}: "
                     f"{exc}); the base is loaded unquantized, so outputs may differ slightly from training")
        return None
    from .backends.peft import four_bit_config

    return four_bit_config()


def _require_safetensors(run_dir: Path, stem: str, cfg: RunConfig) -> None:
    if cfg.model.allow_pickle or any(run_dir.glob(f"{stem}*.safetensors")):
        return
    raise RunError(f"{run_dir} has no {stem}.safetensors (only pickle weights, which can run code when loaded); "
                   "re-save it as safetensors, or set model.allow_pickle: true in its config.yaml if you trust it")


def added_token_ids(tokenizer, cfg: RunConfig, manifest: dict) -> list[int]:
    """The token ids training added to the checkpoint's tokenizer (run.json, or by comparing with it)."""
    if manifest.get("added_token_ids") is not None:
        return list(manifest["added_token_ids"])
    from .loading import load_tokenizer

    original = load_tokenizer(cfg, texts=[])  # the checkpoint's tokenizer before training added tokens
    return list(range(len(original), len(tokenizer)))

