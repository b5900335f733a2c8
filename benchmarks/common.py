"""What every benchmark report shares: the machine it ran on, and how it is printed and saved
(imported by the scripts beside it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

import torch

from sumtune.machine import cpu_name, load_average, versions_line  # noqa: F401 (the scripts import them from here)


def machine_line() -> str:
    threads = "OMP_NUM_THREADS" if os.environ.get("OMP_NUM_THREADS") else "default"
    return (f"{cpu_name()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()} ({threads}), "
            f"no GPU used; Python {platform.python_version()}")


def machine_fact(load_before: str) -> str:
    return f"{machine_line()}; load average (1, 5, 15 min) {load_before} before, {load_average()} after"


def publish(report: str, out: Optional[Path]) -> None:
    """Print the Markdown report, and also write it to `out` when given."""
    print("\n" + report, flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        print(f"wrote {out}")
