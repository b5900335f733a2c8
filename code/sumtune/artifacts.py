"""Where a run's products go, and its manifest (run.json). Runs are never overwritten.

    {root}/models/{name}_{YYYYmmdd-HHMMSS}/            adapter or model (safetensors), tokenizer, config.yaml
    {root}/models/{name}_{ts}/checkpoints/             Trainer checkpoints (for --resume)
    {root}/outputs/{name}_{ts}/results/                metrics.json, predictions.csv, run.json, losses.csv
                                                       (training and eval loss by step), base_predictions.csv
                                                       (the base model's, when the run scored it)
    {root}/outputs/.baselines/{key}/                   base-model scores reused across runs (sumtune/baseline.py)
    {root}/logs/{name}_{ts}.log                        the run's log
    {root}/logs/tensorboard/{name}_{ts}/               TensorBoard event files (training.report_to: tensorboard)

run.json is written when the run starts (status "running", with the process id and host) and rewritten
as facts arrive, ending in "completed", "failed" (with the error and log path) or "interrupted" (Ctrl-C).
Every file is written atomically. A run is held by one live process at a time (``Run.hold``: a lock file
beside run.json that the system releases when the process ends, even by kill -9).

Where models live: ``{root}`` is the config's ``output.root`` when it sets one (in the YAML or with
``--set``), else ``$SUMTUNE_HOME``, else the current directory (``default_root``). ``SUMTUNE_MODEL_<NAME>``
(the run name upper-cased, every other character than a letter or digit as ``_``) pins a name to one
run directory: lookups by name use it instead of the newest completed run (``pinned_run_dir``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .records import staging_leftovers, write_csv_atomic, write_json_atomic

log = logging.getLogger("sumtune")

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
LOGGERS_TO_FILE = ("sumtune", "sumtune.file", "transformers")
RUN_ID = re.compile(r"^(?P<name>.+)_(?P<ts>\d{8}-\d{6}(?:-\d+)?)$")
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"  # the HF Trainer writes it last, after weights, optimizer and RNG states
CHECKPOINT_WEIGHTS = ("*model*.safetensors", "*model*.bin", "global_step*")  # (adapter_)model, pickle, DeepSpeed
LOCK_FILE = "run.lock"  # beside run.json; holds the id and host of the process that holds the run
HOME_VARIABLE = "SUMTUNE_HOME"
PIN_PREFIX = "SUMTUNE_MODEL_"

# Lines libraries log that are not a problem for a sumtune run, as (logger, start of the message):
# kept off the console and written to the next run's log file at debug level. Real warnings stay visible.
LIBRARY_NOISE = (
    # bitsandbytes looks for an optional CPU kernel package on import and warns when it is absent.
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
)


class PinError(ValueError):
    """A SUMTUNE_MODEL_<NAME> variable that does not point at a run; the message names it and the fix."""


class RunHeld(RuntimeError):
    """Another live process holds the run (``Run.hold``); the message names the run and that process."""


class CorruptRun(ValueError):
    """A run's file cannot be read (cut short, not JSON); the message names the file."""


def default_root() -> tuple[Path, str]:
    """The root for a config that sets no ``output.root``, and where it came from."""
    home = os.environ.get(HOME_VARIABLE, "").strip()
    return (Path(home).expanduser(), HOME_VARIABLE) if home else (Path("."), "current directory")


def pin_variable(name: str) -> str:
    """``llama_3.2_korean_3b`` -> ``SUMTUNE_MODEL_LLAMA_3_2_KOREAN_3B``."""
    return PIN_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def pinned_run_dir(name: str) -> Optional[Path]:
    """The run directory ``SUMTUNE_MODEL_<NAME>`` pins ``name`` to, or None when the variable is unset."""
    variable = pin_variable(name)
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    problem = pin_problem(path)
    if problem:
        raise PinError(f"{variable}={value}: {problem}; point it at a run's model directory "
                       f"(models/{name}_{{timestamp}}), or unset it to use the newest completed run of '{name}'")
    return path


def pin_problem(path: Path) -> Optional[str]:
    if not path.exists():
        return "no such directory"
    if not path.is_dir():
        return "not a directory"
    if not (path / "config.yaml").is_file():
        return "not a trained run's model directory (it has no config.yaml)"
    return None


def this_process() -> dict[str, Any]:
    """What ``sumtune models`` needs to tell a live run from one whose process is gone."""
    return dict(pid=os.getpid(), host=socket.gethostname())


@dataclass
class Run:
    name: str
    run_id: str  # {name}_{timestamp}
    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    _log_handler: Optional[logging.Handler] = None
    _lock: Optional[Any] = field(default=None, repr=False)  # the open lock file while this process holds the run

    @property
    def model_dir(self) -> Path:
        return self.root / "models" / self.run_id

    @property
    def checkpoint_dir(self) -> Path:
        return self.model_dir / "checkpoints"

    @property
    def scratch_base_dir(self) -> Path:
        return self.model_dir / "base_model"

    @property
    def results_dir(self) -> Path:
        return self.root / "outputs" / self.run_id / "results"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / f"{self.run_id}.log"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "logs" / "tensorboard" / self.run_id

    @property
    def run_json(self) -> Path:
        return self.results_dir / "run.json"

    @property
    def lock_path(self) -> Path:
        return self.results_dir / LOCK_FILE

    def hold(self) -> None:
        """Hold the run for this process, or raise RunHeld naming the process that holds it.

        An exclusive ``fcntl.flock`` on results/run.lock: the system drops it when the holder ends, however
        it ends (kill -9 included), so a crashed run is never left held; the file's text (process id and
        host) is only for the message. Released by ``release``.
        """
        self.results_dir.mkdir(parents=True, exist_ok=True)
        handle = open(os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666), "r+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunHeld(f"run {self.run_id} is held by {holder} ({self.lock_path}); wait for it to end or stop it, "
                          "then run again (a process that crashed or was killed holds nothing)") from None
        handle.truncate(0)
        facts = this_process()
        handle.write(f"process {facts['pid']} on {facts['host']}\n")
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def remove_staging_leftovers(self) -> list[Path]:
        """Delete what an interrupted save left in the model and results directories (staging folders and
        temporary files of ``records``' atomic writers); return what was removed, each also logged."""
        removed = staging_leftovers(self.model_dir) + staging_leftovers(self.results_dir)
        for leftover in removed:
            log.warning("removing %s, left by a save that was interrupted", leftover)
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        return removed

    def update(self, **facts: Any) -> None:
        """Merge facts into run.json and rewrite it atomically."""
        self.manifest.update(facts)
        write_json_atomic(self.run_json, self.manifest)

    def write_json(self, filename: str, obj: Any) -> Path:
        return write_json_atomic(self.results_dir / filename, obj)

    def write_predictions(self, ids: list[str], predictions: list[str], references: list,
                          filename: str = "predictions.csv") -> Path:
        """predictions.csv (or ``filename``: the base model's are base_predictions.csv): id, prediction,
        reference; several references per example (a list each) are written as reference, reference2,
        reference3, ... (``sumtune score`` reads them all)."""
        reference_sets = [[r] if isinstance(r, str) else list(r) for r in references]
        widest = max((len(refs) for refs in reference_sets), default=1)
        columns = ["reference"] + [f"reference{n}" for n in range(2, widest + 1)]
        rows = [dict(id=i, prediction=p, **dict(zip(columns, refs))) for i, p, refs in zip(ids, predictions, reference_sets)]
        return write_csv_atomic(self.results_dir / filename, rows, ["id", "prediction", *columns])

    def checkpoints(self) -> list[Path]:
        """The Trainer's checkpoint-{step} directories, oldest step first, complete or not."""
        found = [(int(match[1]), path) for path in self.checkpoint_dir.glob("checkpoint-*")
                 if (match := CHECKPOINT.match(path.name)) and path.is_dir()]
        return [path for _, path in sorted(found)]

    def last_checkpoint(self) -> Optional[Path]:
        """The newest complete checkpoint; newer half-written ones (a process killed while saving) are skipped."""
        for checkpoint in reversed(self.checkpoints()):
            problem = checkpoint_problem(checkpoint)
            if problem is None:
                return checkpoint
            log.warning("skipping %s: %s (was the run killed while saving it?)", checkpoint, problem)
        return None

    def attach_log(self) -> None:
        """Send sumtune's log (and transformers' warnings) to logs/{run_id}.log as well as the console."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in LOGGERS_TO_FILE:
            logging.getLogger(name).addHandler(handler)
        logging.getLogger("sumtune").setLevel(logging.INFO)
        file_only = logging.getLogger("sumtune.file")  # trainer lines, tracebacks, library noise
        file_only.propagate = False
        file_only.setLevel(logging.DEBUG)
        for line in _KnownNoise.held_back:
            file_only.debug(line)
        self._log_handler = handler

    def detach_log(self) -> None:
        if self._log_handler is not None:
            for name in LOGGERS_TO_FILE:
                logging.getLogger(name).removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


def keep_library_noise_off_the_console() -> None:
    for name, start in LIBRARY_NOISE:
        library = logging.getLogger(name)
        if not any(isinstance(f, _KnownNoise) for f in library.filters):
            library.addFilter(_KnownNoise(start))


class _KnownNoise(logging.Filter):
    """Holds back one known library message; ``Run.attach_log`` writes it to the run's log file."""

    held_back: list[str] = []  # libraries log at import, before any run's log file is open

    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(self.start):
            return True
        line = f"{record.name}: {record.getMessage()}"
        if line not in self.held_back:
            self.held_back.append(line)
        return False


def new_run(name: str, root: Path, now: Optional[datetime] = None) -> Run:
    """Reserve fresh, empty run directories; a clash within the same second gets a -2, -3 suffix."""
    stamp = (now or datetime.now()).strftime(TIMESTAMP_FORMAT)
    for attempt in range(1, 1000):
        run_id = f"{name}_{stamp}" if attempt == 1 else f"{name}_{stamp}-{attempt}"
        run = Run(name, run_id, Path(root))
        try:
            run.model_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        if run.results_dir.exists():  # left by an earlier run with this id: never reuse
            continue
        run.results_dir.mkdir(parents=True)
        return run
    raise RuntimeError(f"could not reserve a run directory for {name} under {root}/models")


def find_runs(name: str, root: Path) -> list[Run]:
    """Runs of ``name`` under root/models, oldest first."""
    runs = []
    for directory in (Path(root) / "models").glob(f"{name}_*"):
        match = RUN_ID.match(directory.name)
        if match and match["name"] == name and directory.is_dir():
            runs.append(Run(name, directory.name, Path(root)))
    return sorted(runs, key=lambda run: run_order(run.run_id))


def run_order(run_id: str) -> tuple[str, int]:
    date, clock, *clash = RUN_ID.match(run_id)["ts"].split("-")
    return date + clock, int(clash[0]) if clash else 1


def checkpoint_problem(checkpoint: Path) -> Optional[str]:
    """Why a checkpoint directory cannot be resumed from (half-written), or None when it is complete."""
    try:
        json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))["global_step"]
    except FileNotFoundError:
        return f"it has no {TRAINER_STATE}"
    except (ValueError, KeyError, TypeError):
        return f"its {TRAINER_STATE} is cut short or unreadable"
    if not any(any(checkpoint.glob(pattern)) for pattern in CHECKPOINT_WEIGHTS):
        return "it holds no model weights"
    return None


def run_to_resume(name: str, root: Path) -> Run:
    """The latest run of ``name`` that has a complete checkpoint and did not complete."""
    for run in reversed(find_runs(name, root)):
        if not any(checkpoint_problem(checkpoint) is None for checkpoint in run.checkpoints()):
            continue
        manifest = load_manifest(run)
        if manifest.get("status") == "completed":
            raise FileExistsError(
                f"the latest run of '{name}' with checkpoints ({run.model_dir}) already completed; "
                "start a new run without --resume"
            )
        run.manifest = manifest
        return run
    raise FileNotFoundError(f"no run of '{name}' with a checkpoint under {Path(root) / 'models'} (half-written ones do not "
                            "count); start without --resume")


def load_manifest(run: Run) -> dict[str, Any]:
    """run.json as a dict ({} when there is none); CorruptRun naming the file when it cannot be read."""
    if not run.run_json.is_file():
        return {}
    try:
        manifest = json.loads(run.run_json.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise CorruptRun(f"{run.run_json} is cut short or not JSON ({exc}): run {run.run_id} is corrupt") from None
    if not isinstance(manifest, dict):
        raise CorruptRun(f"{run.run_json} holds a {type(manifest).__name__}, not an object: run {run.run_id} is corrupt")
    return manifest


def run_task(manifest: dict[str, Any]) -> str:
    """A run's task: run.json's ``task``, else its metrics', else summarization (runs made before sumtune
    trained classifiers record none)."""
    metrics = manifest.get("metrics")
    return manifest.get("task") or (metrics.get("task") if isinstance(metrics, dict) else None) or "summarization"
