"""``sumtune models``: the trained runs under a root, newest first, and pruning old ones.

    sumtune models                                   # every run under $SUMTUNE_HOME, else the current directory
    sumtune models tiny_bart --json                  # one name (or a pattern: 'tiny_*'), as JSON
    sumtune models --root /data/sumtune
    sumtune models prune tiny_bart --keep 2 --dry-run
    sumtune models prune tiny_bart --keep 2

A run's status comes from its run.json; one still marked ``running`` whose process (the pid and host
recorded when it started) is gone shows as ``interrupted``, and as ``running?`` when it ran on another
host (or recorded no pid), where this command cannot tell. ``size`` is the adapter (or full model)
weights in the model directory, not its checkpoints/ or a scratch run's base_model/.

Pruning deletes the older *completed* runs of one name (models/, outputs/ and logs/ entries), keeping
the ``--keep`` newest completed ones; it never deletes the newest run, a run that is or may be running,
a run without a readable run.json (one being set up), or the run a ``SUMTUNE_MODEL_<NAME>`` variable
pins. Failed and interrupted runs stay too, since their checkpoints may be resumed, unless
``--include-failed`` is given. Standard library only, so it answers at once.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import socket
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from . import artifacts

MODEL_WEIGHTS = ("*model*.safetensors", "*model*.bin")  # top level only: checkpoints/ and base_model/ are not the model
UNSURE = "running?"
STOPPED = ("failed", "interrupted")  # kept by prune unless --include-failed: their checkpoints may be resumed


@dataclass(frozen=True)
class RunInfo:
    name: str
    run_id: str
    status: str
    architecture: Optional[str]
    checkpoint: Optional[str]
    backend: Optional[str]
    size_bytes: int
    score: Optional[float]
    date: str
    model_dir: str
    pinned_by: Optional[str]  # the SUMTUNE_MODEL_<NAME> variable that pins this run


def list_runs(root: Path, pattern: Optional[str] = None) -> list[RunInfo]:
    """Every run under root/models whose name matches ``pattern`` (a name or a shell pattern), newest first."""
    models = Path(root) / "models"
    found = []
    for directory in models.iterdir() if models.is_dir() else ():
        match = artifacts.RUN_ID.match(directory.name)
        if not match or directory.name.startswith(".") or not directory.is_dir():
            continue
        if pattern is None or fnmatch.fnmatchcase(match["name"], pattern):
            found.append(artifacts.Run(match["name"], directory.name, Path(root)))
    found.sort(key=lambda run: (artifacts.run_order(run.run_id), run.name), reverse=True)
    return [describe(run) for run in found]


def describe(run: artifacts.Run) -> RunInfo:
    manifest = read_manifest(run)
    metrics = manifest.get("metrics") or {}
    score = metrics.get("score") if isinstance(metrics, dict) else None
    stamp = artifacts.RUN_ID.match(run.run_id)["ts"][:15]
    return RunInfo(
        name=run.name,
        run_id=run.run_id,
        status=status_of(manifest),
        architecture=manifest.get("architecture"),
        checkpoint=manifest.get("checkpoint"),
        backend=manifest.get("backend"),
        size_bytes=weights_size(run.model_dir),
        score=score if isinstance(score, (int, float)) else None,
        date=datetime.strptime(stamp, artifacts.TIMESTAMP_FORMAT).strftime("%Y-%m-%d %H:%M:%S"),
        model_dir=str(run.model_dir),
        pinned_by=_pinned_by(run),
    )


def read_manifest(run: artifacts.Run) -> dict:
    """run.json, with metrics.json's scores when run.json has none; {"status": ...} when it cannot be read."""
    try:
        manifest = json.loads(run.run_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"status": "no run.json"}
    except (OSError, ValueError):
        return {"status": "unreadable run.json"}
    if not isinstance(manifest, dict):
        return {"status": "unreadable run.json"}
    if not manifest.get("metrics"):
        try:
            manifest["metrics"] = json.loads((run.results_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    return manifest


def status_of(manifest: dict) -> str:
    """The run.json status, with ``running`` checked against the recorded process."""
    status = str(manifest.get("status") or "no status")
    if status != "running":
        return status
    pid, host = manifest.get("pid"), manifest.get("host")
    if not isinstance(pid, int) or pid <= 0 or host != socket.gethostname():
        return UNSURE
    return "running" if process_alive(pid) else "interrupted"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OverflowError:
        return False
    return True


def weights_size(model_dir: Path) -> int:
    return sum(path.stat().st_size for pattern in MODEL_WEIGHTS for path in model_dir.glob(pattern) if path.is_file())


def _pinned_by(run: artifacts.Run) -> Optional[str]:
    try:
        pinned = artifacts.pinned_run_dir(run.name)
    except artifacts.PinError:
        return None  # `sumtune doctor` and lookups by name report a bad pin
    if pinned is not None and pinned.resolve() == run.model_dir.resolve():
        return artifacts.pin_variable(run.name)
    return None


# --- printing --------------------------------------------------------------------------------------

COLUMNS = (  # (heading, value of a RunInfo)
    ("name", lambda r: r.name),
    ("run id", lambda r: r.run_id + (" *" if r.pinned_by else "")),
    ("status", lambda r: r.status),
    ("architecture", lambda r: r.architecture or "-"),
    ("base checkpoint", lambda r: r.checkpoint or "-"),
    ("backend", lambda r: r.backend or "-"),
    ("size", lambda r: human_size(r.size_bytes) if r.size_bytes else "-"),
    ("score", lambda r: f"{r.score:.4f}" if r.score is not None else "-"),
    ("date", lambda r: r.date),
)


def format_table(runs: list[RunInfo]) -> str:
    rows = [[heading for heading, _ in COLUMNS]] + [[value(run) for _, value in COLUMNS] for run in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    pins = [f"* pinned by {run.pinned_by}" for run in runs if run.pinned_by]
    return "\n".join(lines + pins)


def as_json(runs: list[RunInfo]) -> str:
    return json.dumps([dict(asdict(run), size=human_size(run.size_bytes)) for run in runs], ensure_ascii=False, indent=2)


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --- pruning ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruning:
    delete: list[RunInfo]
    kept: list[tuple[RunInfo, str]]  # every other run of the name, and why it stays


def plan_prune(name: str, root: Path, keep: int, include_failed: bool = False) -> Pruning:
    """Which runs of ``name`` go: completed ones (and, with ``include_failed``, failed and interrupted
    ones) older than the ``keep`` newest completed runs; never the newest run or a pinned one."""
    if keep < 1:
        raise ValueError(f"--keep must be at least 1 (got {keep}): the newest completed run always stays")
    runs = [run for run in list_runs(root, glob_escape(name)) if run.name == name]  # newest first
    newest_completed = [run.run_id for run in runs if run.status == "completed"][:keep]
    delete, kept = [], []
    for index, run in enumerate(runs):
        if index == 0:
            kept.append((run, "the newest run"))
        elif run.run_id in newest_completed:
            kept.append((run, f"newest completed, within --keep {keep}"))
        elif run.pinned_by:
            kept.append((run, f"pinned by {run.pinned_by}"))
        elif run.status == "completed" or (include_failed and run.status in STOPPED):
            delete.append(run)
        elif run.status in STOPPED:
            kept.append((run, f"{run.status}: its checkpoints may be resumed; --include-failed deletes it"))
        else:
            kept.append((run, f"{run.status}: never pruned"))
    return Pruning(delete, kept)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def run_paths(run: RunInfo, root: Path) -> list[Path]:
    """What a run owns on disk: its model directory, its outputs/ entry, its log and TensorBoard events."""
    owned = artifacts.Run(run.name, run.run_id, Path(root))
    return [owned.model_dir, owned.results_dir.parent, owned.log_path, owned.tensorboard_dir]


def prune(name: str, root: Path, keep: int, dry_run: bool = False, include_failed: bool = False,
          out: Callable[[str], None] = print) -> Pruning:
    """Delete (or with ``dry_run`` only list) what ``plan_prune`` picks; print each run and the space freed."""
    plan = plan_prune(name, root, keep, include_failed)
    verb = "would delete" if dry_run else "deleted"
    freed = 0
    for run in plan.delete:
        paths = [path for path in run_paths(run, root) if path.exists() or path.is_symlink()]
        size = sum(disk_usage(path) for path in paths)
        if not dry_run:
            for path in paths:
                remove(path)
        freed += size
        out(f"{verb} {run.run_id} ({run.status}, {human_size(size)}): {', '.join(map(str, paths))}")
    for run, why in plan.kept:
        out(f"kept {run.run_id} ({why})")
    out(f"{'would free' if dry_run else 'freed'} {human_size(freed)} ({len(plan.delete)} run(s) of '{name}' under {root})")
    return plan


def disk_usage(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum((Path(top) / name).lstat().st_size for top, _, files in os.walk(path) for name in files)


def remove(path: Path) -> None:
    """Delete a file or directory; a directory is first renamed aside, so that nothing (a lookup by name,
    a report) ever sees half of it, and a link is removed without following it."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    aside = path.with_name(f".deleting-{path.name}")
    path.rename(aside)
    shutil.rmtree(aside)
