"""The ``sumtune`` command: lazy imports, --help, validate exit codes and messages, and speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ML_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


def run_python(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def ml_modules_after(code: str, cwd: Path | None = None) -> list[str]:
    """Run ``code`` in a fresh interpreter and return the ML libraries it left in sys.modules."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {ML_LIBRARIES!r} if m in sys.modules)))"
    result = run_python(["-c", probe], cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_config(directory: Path, name: str, content: dict) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


def good(sample_csv: Path, **extra) -> dict:
    return {"model": {"architecture": "bart", "init": "scratch"}, "data": {"train_file": str(sample_csv)}, **extra}


# --------------------------------------------------------------------------------------------------
# Lazy imports


def test_importing_the_cli_loads_no_ml_library():
    assert ml_modules_after("import sumtune.cli") == []


def test_config_and_registry_load_no_ml_library():
    assert ml_modules_after("import sumtune.config, sumtune.architectures") == []


def test_help_and_validate_load_no_ml_library(tmp_path, sample_csv):
    config = write_config(tmp_path, "ok", good(sample_csv))
    code = (
        "from sumtune.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"assert main(['validate', {str(config)!r}]) == 0\n"
    )
    assert ml_modules_after(code) == []


def test_train_rejects_a_bad_config_before_loading_any_ml_library(tmp_path, sample_csv):
    bad = write_config(tmp_path, "bad", good(sample_csv, training={"precision": "fp8"}))
    code = f"from sumtune.cli import main\nassert main(['train', {str(bad)!r}]) == 2\n"
    assert ml_modules_after(code) == []


# --------------------------------------------------------------------------------------------------
# --help


def test_help_lists_the_commands():
    result = run_python(["-m", "sumtune.cli", "--help"])
    assert result.returncode == 0, result.stderr
    for command in ("train", "validate", "sweep", "score"):
        assert command in result.stdout


def test_subcommand_help_documents_overrides():
    result = run_python(["-m", "sumtune.cli", "validate", "--help"])
    assert result.returncode == 0
    assert "--set" in result.stdout and "KEY=VALUE" in result.stdout


def test_no_command_prints_help_and_exits_2():
    result = run_python(["-m", "sumtune.cli"])
    assert result.returncode == 2
    assert "validate" in result.stdout


# --------------------------------------------------------------------------------------------------
# validate


def test_validate_good_config_exits_0(tmp_path, sample_csv):
    config = write_config(tmp_path, "ok", good(sample_csv))
    result = run_python(["-m", "sumtune.cli", "validate", str(config)])
    assert result.returncode == 0, result.stderr
    assert "1 config(s) valid" in result.stdout
    assert result.stderr == ""


def test_validate_bad_config_exits_2_with_the_problem_lines(tmp_path, sample_csv):
    good_path = write_config(tmp_path, "ok", good(sample_csv))
    bad = write_config(tmp_path, "bad", good(sample_csv, traning={}, qlora={"lora_rank": 0}))
    result = run_python(["-m", "sumtune.cli", "validate", str(good_path), str(bad)])
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{bad}: traning: unknown key; did you mean 'training'?") for line in lines)
    assert any(line.startswith(f"{bad}: qlora.lora_rank: ") and "greater than 0" in line for line in lines)
    assert not any(line.startswith(f"{good_path}:") for line in lines)
    assert lines[-1] == "2 problem(s) in 2 file(s)"


def test_validate_applies_set_overrides(tmp_path, sample_csv):
    config = write_config(tmp_path, "ok", good(sample_csv))
    ok = run_python(["-m", "sumtune.cli", "validate", str(config), "--set", "training.learning_rate=1e-3",
                     "--set", "qlora.target_modules=[q_proj,v_proj]"])
    assert ok.returncode == 0, ok.stderr
    bad = run_python(["-m", "sumtune.cli", "validate", str(config), "--set", "training.precision=fp8"])
    assert bad.returncode == 2
    assert f"{config}: training.precision: " in bad.stderr
    no_equals = run_python(["-m", "sumtune.cli", "validate", str(config), "--set", "training.precision"])
    assert no_equals.returncode == 2
    assert "expected key.path=value" in no_equals.stderr


def test_validate_every_shipped_config(repo_root):
    configs = sorted(str(p.relative_to(repo_root)) for p in (repo_root / "config" / "model_configs").rglob("*.yaml"))
    result = run_python(["-m", "sumtune.cli", "validate", *configs], cwd=repo_root)
    assert result.returncode == 0, result.stderr
    assert f"{len(configs)} config(s) valid" in result.stdout


def test_validate_is_fast(repo_root):
    """Product goal: 0.5 s. The bound here is loose so a busy machine does not fail the test."""
    command = ["-m", "sumtune.cli", "validate", "config/model_configs/tiny_bart.yaml"]
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        result = run_python(command, cwd=repo_root)
        timings.append(time.perf_counter() - start)
        assert result.returncode == 0, result.stderr
    print(f"sumtune validate wall-clock: {', '.join(f'{t:.3f}' for t in timings)} s (best {min(timings):.3f} s)")
    assert min(timings) < 3.0
