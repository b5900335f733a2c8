"""Multi-process launches (``torchrun``, ``accelerate launch``): who reserves the run, who writes.

Every process trains; rank 0 alone reserves the run directory (its run id is broadcast), writes
artifacts and the log, generates and scores; the other ranks get a ``FollowerRun`` that writes
nothing and wait for rank 0 at a barrier. docs/multi_gpu.md has the commands.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from . import artifacts
from .config import ConfigError, RunConfig

DDP_TIMEOUT = timedelta(minutes=30)  # what the other ranks give rank 0 to generate and score (HF's ddp_timeout)


@dataclass(frozen=True)
class Processes:
    """This process's place in a multi-process launch; rank 0 of 1 when started on its own."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, value):
        """Rank 0's ``value``, on every rank."""
        if self.world_size == 1:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]

    def wait_for_everyone(self) -> None:
        if self.world_size > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()


def launched_processes(cfg: RunConfig) -> Processes:
    """Join the process group when a launcher started several processes (``WORLD_SIZE`` > 1).

    The group is the one the HF Trainer would create (accelerate's PartialState, same backend and
    DeepSpeed switch); the Trainer reuses it. It is needed earlier, to agree on the run directory.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    placed = [f"model.{key}" for key in ("device_map", "max_memory") if getattr(cfg.model, key) is not None]
    if placed:
        raise ConfigError([f"{cfg.name}: {' and '.join(placed)} set, but this run was launched as {world_size} processes "
                           f"(WORLD_SIZE={world_size}): under DDP each rank holds the whole model on its own GPU, so the "
                           f"weights cannot be spread over devices. Remove {' and '.join(placed)} (e.g. --set "
                           f"{placed[0]}=null), or launch one process to spread a model too big for one GPU"])
    from accelerate import PartialState

    launcher_flag = os.environ.get("ACCELERATE_USE_DEEPSPEED")
    if cfg.training.deepspeed:
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"  # as TrainingArguments does, so DeepSpeed owns the group
    try:
        state = PartialState(cpu=not torch.cuda.is_available(), timeout=DDP_TIMEOUT)
    finally:
        if launcher_flag is None:
            os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)
        else:
            os.environ["ACCELERATE_USE_DEEPSPEED"] = launcher_flag
    return Processes(state.process_index, state.num_processes)


def reserve_run(cfg: RunConfig, resume: bool, processes: Processes) -> artifacts.Run:
    """Rank 0 creates (or, with ``resume``, finds) the run directories; the other ranks get its run id."""
    if processes.world_size == 1:
        return open_run(cfg, resume)
    run, problem = None, None
    if processes.main:
        try:
            run = open_run(cfg, resume)
        except Exception as exc:  # every rank must hear of it, or the others wait at the broadcast forever
            problem = exc
    run_id, error = processes.share((run.run_id if run else None, f"{type(problem).__name__}: {problem}" if problem else None))
    if problem is not None:
        raise problem
    if error is not None:
        raise RuntimeError(f"rank 0 could not reserve the run directory: {error}")
    return run if processes.main else FollowerRun(cfg.name, run_id, Path(cfg.output.root))


def open_run(cfg: RunConfig, resume: bool) -> artifacts.Run:
    """A new run, or with ``resume`` the one to continue, held by this process (``artifacts.RunHeld`` when a
    live process holds it); a resumed run's staging leftovers from an interrupted save are removed."""
    run = artifacts.run_to_resume(cfg.name, cfg.output.root) if resume else artifacts.new_run(cfg.name, cfg.output.root)
    run.hold()
    if resume:
        run.remove_staging_leftovers()
    return run


class FollowerRun(artifacts.Run):
    """A non-zero rank's view of rank 0's run: the same paths; it writes nothing and logs warnings only."""

    def update(self, **facts) -> None:
        self.manifest.update(facts)

    def write_json(self, filename: str, obj) -> Path:
        return self.results_dir / filename

    def write_predictions(self, ids, predictions, references) -> Path:
        return self.results_dir / "predictions.csv"

    def attach_log(self) -> None:
        self._console_level = logging.getLogger("sumtune").level
        logging.getLogger("sumtune").setLevel(logging.WARNING)

    def detach_log(self) -> None:
        logging.getLogger("sumtune").setLevel(getattr(self, "_console_level", logging.NOTSET))
