"""Where models live (output.root > SUMTUNE_HOME > current directory, SUMTUNE_MODEL_<NAME> pins) and
`sumtune models` (list, prune). Runs here are written by hand (run.json and directories), except one
tiny training run that checks what a real run records."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sumtune import artifacts
from sumtune.cli import main
from sumtune.config import ConfigError, load_config
from sumtune.models import human_size, list_runs, plan_prune
from sumtune.trained import RunError, find_run_dir

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "config" / "model_configs"
SAMPLE = REPO / "data" / "sample"


def fake_run(root: Path, run_id: str, status: str = "completed", *, score=None, weights: int = 0, **facts) -> artifacts.Run:
    """A run as sumtune leaves it on disk: models/{id}/config.yaml (+ weights), outputs/{id}/results/run.json, logs/{id}.log."""
    name = artifacts.RUN_ID.match(run_id)["name"]
    run = artifacts.Run(name, run_id, Path(root))
    run.model_dir.mkdir(parents=True)
    (run.model_dir / "config.yaml").write_text(f"name: {name}\n")
    if weights:
        (run.model_dir / "adapter_model.safetensors").write_bytes(b"\0" * weights)
    run.log_path.parent.mkdir(parents=True, exist_ok=True)
    run.log_path.write_text("log\n")
    run.tensorboard_dir.mkdir(parents=True)
    (run.tensorboard_dir / "events.out.tfevents.1").write_bytes(b"\0" * 8)
    manifest = dict(dict(architecture="bart", checkpoint="scratch:tiny", backend="peft"), name=name, run_id=run_id, status=status, **facts)
    if score is not None:
        manifest["metrics"] = {"score": score}
    if status is not None:
        run.update(**manifest)
    else:
        run.results_dir.mkdir(parents=True)
    return run


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- where models live: output.root > SUMTUNE_HOME > current directory -----------------------------


def test_root_is_the_current_directory_unless_sumtune_home_or_the_config_says(tmp_path, monkeypatch):
    home = tmp_path / "home"
    config = CONFIGS / "tiny_bart.yaml"
    cfg = load_config(config, check_files=False)
    assert (cfg.output.root, cfg.output.root_source) == (Path("."), "current directory")
    monkeypatch.setenv("SUMTUNE_HOME", str(home))
    cfg = load_config(config, check_files=False)
    assert (cfg.output.root, cfg.output.root_source) == (home, "SUMTUNE_HOME")
    cfg = load_config(config, [f"output.root={tmp_path / 'set'}"], check_files=False)
    assert (cfg.output.root, cfg.output.root_source) == (tmp_path / "set", "output.root")
    written = tmp_path / "explicit.yaml"
    written.write_text(f"_base_: {config}\noutput: {{root: {tmp_path / 'yaml'}}}\n")
    cfg = load_config(written, check_files=False)
    assert (cfg.output.root, cfg.output.root_source) == (tmp_path / "yaml", "output.root")


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.stem)
def test_no_shipped_config_pins_the_root_so_sumtune_home_applies(config, tmp_path, monkeypatch):
    monkeypatch.setenv("SUMTUNE_HOME", str(tmp_path))
    assert load_config(config, check_files=False).output.root == tmp_path


def test_a_sumtune_home_that_is_a_file_is_a_config_error_naming_the_key(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("SUMTUNE_HOME", str(not_a_dir))
    with pytest.raises(ConfigError, match=r"output\.root: .*file.* is a file, not a directory; set output\.root \(or \$SUMTUNE_HOME\)"):
        load_config(CONFIGS / "tiny_bart.yaml", check_files=False)


def test_an_invalid_config_in_a_sweep_records_its_failed_run_under_sumtune_home(tmp_path, monkeypatch):
    from sumtune.sweep import _invalid_config_facts

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nmodel: {architecture: nope}\n")
    monkeypatch.setenv("SUMTUNE_HOME", str(tmp_path / "home"))
    assert _invalid_config_facts(bad, []) == {"name": "broken", "root": tmp_path / "home"}


def test_a_run_name_is_looked_up_under_sumtune_home_then_the_current_directory(tmp_path, monkeypatch):
    here, home = tmp_path / "here", tmp_path / "home"
    in_cwd = fake_run(here, "mymodel_20250101-120000")
    in_home = fake_run(home, "mymodel_20250102-120000")
    monkeypatch.chdir(here)  # no config/model_configs here: "mymodel" is a run name
    assert find_run_dir("mymodel").resolve() == in_cwd.model_dir.resolve()
    monkeypatch.setenv("SUMTUNE_HOME", str(home))
    assert find_run_dir("mymodel") == in_home.model_dir
    assert find_run_dir("mymodel_20250102-120000") == in_home.model_dir  # a run id
    config = tmp_path / "mymodel.yaml"  # a config that sets output.root wins over SUMTUNE_HOME
    config.write_text(f"_base_: {CONFIGS / 'tiny_bart.yaml'}\nname: mymodel\noutput: {{root: {here}}}\n")
    assert find_run_dir(config) == in_cwd.model_dir
    with pytest.raises(RunError, match=r"'other' is neither a run directory .* does not exist, and .* holds no run of that name or id"):
        find_run_dir("other")


# --- SUMTUNE_MODEL_<NAME> pins ---------------------------------------------------------------------


@pytest.mark.parametrize("name, variable", [
    ("llama_3.2_korean_3b", "SUMTUNE_MODEL_LLAMA_3_2_KOREAN_3B"),
    ("kobart", "SUMTUNE_MODEL_KOBART"),
    ("exaone-3.5", "SUMTUNE_MODEL_EXAONE_3_5"),
    ("Qwen3_4B", "SUMTUNE_MODEL_QWEN3_4B"),
])
def test_pin_variable_names(name, variable):
    assert artifacts.pin_variable(name) == variable


def test_a_pin_wins_over_the_newest_completed_run(tmp_path, monkeypatch):
    older = fake_run(tmp_path, "llama_3.2_korean_3b_20250101-120000")
    newest = fake_run(tmp_path, "llama_3.2_korean_3b_20250105-120000")
    monkeypatch.setenv("SUMTUNE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert find_run_dir("llama_3.2_korean_3b") == newest.model_dir
    monkeypatch.setenv("SUMTUNE_MODEL_LLAMA_3_2_KOREAN_3B", str(older.model_dir))
    assert find_run_dir("llama_3.2_korean_3b") == older.model_dir
    config = tmp_path / "mine.yaml"  # lookups through a config's name honour it too
    config.write_text(f"_base_: {CONFIGS / 'tiny_llama.yaml'}\nname: llama_3.2_korean_3b\n")
    assert find_run_dir(config) == older.model_dir
    assert find_run_dir(newest.model_dir) == newest.model_dir  # an explicit run directory is never redirected


def test_a_pin_works_where_the_name_has_no_runs_at_all(tmp_path, monkeypatch):
    elsewhere = fake_run(tmp_path / "elsewhere", "shipped_20250101-120000")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUMTUNE_MODEL_APP", str(elsewhere.model_dir))
    assert find_run_dir("app") == elsewhere.model_dir


@pytest.mark.parametrize("target, problem", [
    ("missing", "no such directory"),
    ("a_file", "not a directory"),
    ("empty_dir", r"not a trained run's model directory \(it has no config.yaml\)"),
])
def test_a_bad_pin_is_a_clear_error_naming_the_variable(tmp_path, monkeypatch, capsys, target, problem):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty_dir").mkdir()
    fake_run(tmp_path, "kobart_20250101-120000")  # a good run is there, but the pin is what was asked for
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUMTUNE_MODEL_KOBART", str(tmp_path / target))
    expected = rf"SUMTUNE_MODEL_KOBART={tmp_path / target}: {problem}; point it at a run's model directory"
    with pytest.raises(RunError, match=expected):
        find_run_dir("kobart")
    test_file = tmp_path / "test.csv"
    test_file.write_text("fname,dialogue\nt1,hi\n")
    assert main(["predict", "kobart", "--input", str(test_file), "--output", str(tmp_path / "out.csv")]) == 2
    assert "SUMTUNE_MODEL_KOBART" in capsys.readouterr().err and not (tmp_path / "out.csv").exists()


# --- sumtune models --------------------------------------------------------------------------------


def test_models_lists_every_column_newest_first(tmp_path, capsys):
    first = fake_run(tmp_path, "tiny_bart_20250101-120000", score=0.1234, weights=3000)
    (first.checkpoint_dir / "checkpoint-2").mkdir(parents=True)  # neither checkpoints nor a scratch base count
    (first.checkpoint_dir / "checkpoint-2" / "adapter_model.safetensors").write_bytes(b"\0" * 50_000)
    first.scratch_base_dir.mkdir()
    (first.scratch_base_dir / "model.safetensors").write_bytes(b"\0" * 70_000)
    (first.model_dir / "training_args.bin").write_bytes(b"\0" * 9_000)  # not weights
    fake_run(tmp_path, "qwen3_4b_20250103-093000", architecture="qwen3", checkpoint="Qwen/Qwen3-4B", backend="unsloth",
             score=0.4, weights=5 * 2**20)
    fake_run(tmp_path, "tiny_bart_20250102-120000", status="failed")

    assert main(["models", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"runs under {tmp_path / 'models'} (root from --root), newest first"
    assert lines[1].split() == ["name", "run", "id", "status", "architecture", "base", "checkpoint", "backend", "size", "score", "date"]
    assert lines[2].split() == ["qwen3_4b", "qwen3_4b_20250103-093000", "completed", "qwen3", "Qwen/Qwen3-4B", "unsloth",
                                "5.0", "MiB", "0.4000", "2025-01-03", "09:30:00"]
    assert lines[3].split() == ["tiny_bart", "tiny_bart_20250102-120000", "failed", "bart", "scratch:tiny", "peft", "-", "-",
                                "2025-01-02", "12:00:00"]
    assert lines[4].split() == ["tiny_bart", "tiny_bart_20250101-120000", "completed", "bart", "scratch:tiny", "peft",
                                "2.9", "KiB", "0.1234", "2025-01-01", "12:00:00"]
    assert main(["models", "--root", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [run["run_id"] for run in listed] == ["qwen3_4b_20250103-093000", "tiny_bart_20250102-120000", "tiny_bart_20250101-120000"]
    assert listed[2] | {"model_dir": None} == dict(
        name="tiny_bart", run_id="tiny_bart_20250101-120000", status="completed", architecture="bart", checkpoint="scratch:tiny",
        backend="peft", size_bytes=3000, size="2.9 KiB", score=0.1234, date="2025-01-01 12:00:00", model_dir=None, pinned_by=None)


def test_models_filters_by_name_or_pattern_and_reads_sumtune_home(tmp_path, monkeypatch, capsys):
    for run_id in ("tiny_bart_20250101-120000", "tiny_bart_v2_20250102-120000", "kobart_20250103-120000"):
        fake_run(tmp_path, run_id)
    monkeypatch.setenv("SUMTUNE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "models")  # not the root: SUMTUNE_HOME is
    assert [run.run_id for run in list_runs(tmp_path, "tiny_bart")] == ["tiny_bart_20250101-120000"]
    assert main(["models", "tiny_*", "--json"]) == 0
    assert [run["name"] for run in json.loads(capsys.readouterr().out)] == ["tiny_bart_v2", "tiny_bart"]
    assert main(["models", "nothing"]) == 0
    out = capsys.readouterr().out
    assert "no runs of 'nothing' under" in out and "(root from SUMTUNE_HOME)" in out


def test_a_running_run_whose_process_is_gone_shows_as_interrupted(tmp_path):
    here = socket.gethostname()
    fake_run(tmp_path, "live_20250101-120000", status="running", pid=os.getpid(), host=here)
    fake_run(tmp_path, "gone_20250101-120000", status="running", pid=dead_pid(), host=here)
    fake_run(tmp_path, "remote_20250101-120000", status="running", pid=os.getpid(), host=here + "-elsewhere")
    fake_run(tmp_path, "old_20250101-120000", status="running")  # recorded before pids were
    fake_run(tmp_path, "setup_20250101-120000", status=None)  # no run.json yet
    broken = fake_run(tmp_path, "broken_20250101-120000")
    broken.run_json.write_text('{"status": "compl')
    assert {run.name: run.status for run in list_runs(tmp_path)} == {
        "live": "running", "gone": "interrupted", "remote": "running?", "old": "running?", "setup": "no run.json",
        "broken": "unreadable run.json"}


def test_models_marks_the_pinned_run(tmp_path, monkeypatch, capsys):
    older = fake_run(tmp_path, "kobart_20250101-120000")
    fake_run(tmp_path, "kobart_20250102-120000")
    monkeypatch.setenv("SUMTUNE_MODEL_KOBART", str(older.model_dir))
    assert main(["models", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kobart_20250101-120000 *" in out and "* pinned by SUMTUNE_MODEL_KOBART" in out
    assert "kobart_20250102-120000 *" not in out


def test_models_loads_nothing_but_the_standard_library(tmp_path):
    fake_run(tmp_path, "tiny_bart_20250101-120000", weights=10)
    code = (f"import sys; from sumtune.cli import main; assert main(['models', '--root', {str(tmp_path)!r}]) == 0; "
            "print(sorted(m for m in ('torch', 'transformers', 'yaml', 'pydantic', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO / "code")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]" and "tiny_bart_20250101-120000" in done.stdout


# --- sumtune models prune --------------------------------------------------------------------------


def prunable(root: Path) -> dict[str, artifacts.Run]:
    """Seven runs of kobart, oldest first, and one of kobart_v2 that prune kobart must not touch."""
    here = socket.gethostname()
    runs = dict(
        c1=fake_run(root, "kobart_20250101-120000", weights=1000),
        failed=fake_run(root, "kobart_20250102-120000", status="failed"),
        c2=fake_run(root, "kobart_20250103-120000", weights=2000),
        interrupted=fake_run(root, "kobart_20250104-120000", status="running", pid=dead_pid(), host=here),
        c3=fake_run(root, "kobart_20250105-120000", weights=3000),
        c4=fake_run(root, "kobart_20250106-120000", weights=4000),
        live=fake_run(root, "kobart_20250107-120000", status="running", pid=os.getpid(), host=here),
        other=fake_run(root, "kobart_v2_20250101-120000"),
    )
    (runs["c1"].checkpoint_dir / "checkpoint-1").mkdir(parents=True)
    (runs["c1"].checkpoint_dir / "checkpoint-1" / "optimizer.pt").write_bytes(b"\0" * 5000)
    return runs


def exists(run: artifacts.Run) -> list[bool]:
    return [run.model_dir.exists(), run.results_dir.parent.exists(), run.log_path.exists(), run.tensorboard_dir.exists()]


def bytes_on_disk(run: artifacts.Run) -> int:
    files = [*run.model_dir.rglob("*"), *run.results_dir.parent.rglob("*"), run.log_path]
    return sum(path.stat().st_size for path in files if path.is_file())


def test_prune_keeps_the_newest_completed_runs_and_never_a_running_or_stopped_one(tmp_path, capsys):
    runs = prunable(tmp_path)
    gone = {"c1", "c2"}
    sizes = {key: bytes_on_disk(runs[key]) for key in gone}
    assert sizes["c1"] > 6000  # adapter and checkpoint count, as do run.json and the log
    assert main(["models", "prune", "kobart", "--keep", "2", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for key, run in runs.items():
        assert exists(run) == [key not in gone] * 4, key
    assert f"deleted kobart_20250101-120000 (completed, {human_size(sizes['c1'])}): {runs['c1'].model_dir}, " in out
    assert "kept kobart_20250107-120000 (the newest run)" in out
    assert "kept kobart_20250104-120000 (interrupted: its checkpoints may be resumed; --include-failed deletes it)" in out
    assert "kept kobart_20250102-120000 (failed: its checkpoints may be resumed; --include-failed deletes it)" in out
    assert "kept kobart_20250106-120000 (newest completed, within --keep 2)" in out
    assert out.splitlines()[-1] == f"freed {human_size(sum(sizes.values()))} (2 run(s) of 'kobart' under {tmp_path})"
    assert not list((tmp_path / "models").glob(".deleting-*"))


def test_prune_dry_run_deletes_nothing_and_says_what_would_go(tmp_path, capsys):
    runs = prunable(tmp_path)
    assert main(["models", "prune", "kobart", "--keep", "1", "--dry-run", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(all(exists(run)) for run in runs.values())
    assert [line.split()[2] for line in out.splitlines() if line.startswith("would delete")] == [
        "kobart_20250101-120000", "kobart_20250103-120000", "kobart_20250105-120000"][::-1]
    assert out.splitlines()[-1].startswith("would free ")


def test_prune_include_failed_deletes_stopped_runs_but_never_a_live_one(tmp_path):
    runs = prunable(tmp_path)
    plan = plan_prune("kobart", tmp_path, keep=1, include_failed=True)
    assert sorted(run.run_id for run in plan.delete) == sorted(runs[k].run_id for k in ("c1", "failed", "c2", "interrupted", "c3"))
    assert main(["models", "prune", "kobart", "--keep", "1", "--include-failed", "--root", str(tmp_path)]) == 0
    assert all(exists(runs["live"])) and all(exists(runs["c4"])) and all(exists(runs["other"]))
    assert not any(exists(runs["failed"])) and not any(exists(runs["interrupted"]))


def test_prune_never_deletes_the_newest_run_or_a_pinned_or_unknown_one(tmp_path, monkeypatch):
    old = fake_run(tmp_path, "kobart_20250101-120000")
    pinned = fake_run(tmp_path, "kobart_20250102-120000")
    setting_up = fake_run(tmp_path, "kobart_20250103-120000", status=None)
    kept = fake_run(tmp_path, "kobart_20250104-120000")
    newest_failed = fake_run(tmp_path, "kobart_20250105-120000", status="failed")
    monkeypatch.setenv("SUMTUNE_MODEL_KOBART", str(pinned.model_dir))
    plan = plan_prune("kobart", tmp_path, keep=1, include_failed=True)
    assert [run.run_id for run in plan.delete] == [old.run_id]
    assert dict((run.run_id, why) for run, why in plan.kept) == {
        newest_failed.run_id: "the newest run", kept.run_id: "newest completed, within --keep 1",
        setting_up.run_id: "no run.json: never pruned", pinned.run_id: "pinned by SUMTUNE_MODEL_KOBART"}


@pytest.mark.parametrize("argv, message", [
    (["prune", "kobart", "--keep", "0"], "prune needs --keep N with N at least 1"),
    (["prune", "kobart"], "prune needs --keep N"),
    (["prune", "--keep", "1"], "prune takes one run name"),
    (["prune", "nothing", "--keep", "1"], "no run of 'nothing' under"),
    (["kobart", "--keep", "1"], "--keep, --dry-run and --include-failed belong to prune"),
    (["kobart", "tiny"], "list takes at most one NAME"),
])
def test_prune_refuses_bad_arguments_and_deletes_nothing(tmp_path, capsys, argv, message):
    runs = prunable(tmp_path)
    assert main(["models", *argv, "--root", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert all(all(exists(run)) for run in runs.values())


# --- sumtune doctor --------------------------------------------------------------------------------


def test_doctor_shows_where_models_live(tmp_path):
    good = fake_run(tmp_path / "home", "kobart_20250101-120000")
    env = {**os.environ, "PYTHONPATH": str(REPO / "code"), "SUMTUNE_HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf"),
           "SUMTUNE_MODEL_KOBART": str(good.model_dir), "SUMTUNE_MODEL_QWEN": str(tmp_path / "missing")}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "sumtune.cli", "doctor", str(CONFIGS / "tiny_bart.yaml"), "--set",
                           f"output.root={tmp_path / 'set'}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("where models live"))
    assert "output.root or --set, $SUMTUNE_HOME, the current directory" in lines[start]
    section = lines[start + 1: start + 6]
    assert section[0].split(None, 1) == ["root", f"{(tmp_path / 'home').resolve()} (SUMTUNE_HOME)"]
    assert section[1].split(None, 1) == ["tiny_bart", f"{(tmp_path / 'set').resolve()} (output.root)"]
    assert section[2] == f"  pin           SUMTUNE_MODEL_KOBART={good.model_dir} (lookups by that name use this run)"
    assert section[3] == f"  pin           SUMTUNE_MODEL_QWEN={tmp_path / 'missing'} — no such directory"
    assert section[4].startswith(f"  base weights  {tmp_path / 'hf' / 'hub'} (Hugging Face cache, from HF_HOME)")
    assert "never copied into runs" in section[4]


# --- a real run -----------------------------------------------------------------------------------


def test_runs_go_under_sumtune_home_record_their_process_and_hold_no_base_weights(tmp_path, monkeypatch):
    from sumtune.train import train

    monkeypatch.setenv("SUMTUNE_HOME", str(tmp_path))
    data = [f"data.{key}_file={SAMPLE / f'ko_{split}.csv'}" for key, split in (("train", "train"), ("eval", "dev"))]
    cfg = load_config(CONFIGS / "tiny_bart.yaml", [*data, "training.max_steps=2", "training.eval_strategy=no",
                                                   "training.save_strategy=no", "evaluation.max_examples=2",
                                                   "generation.max_new_tokens=8"])
    run = train(cfg).run
    assert run.model_dir.parent == tmp_path / "models"
    manifest = json.loads(run.run_json.read_text())
    assert (manifest["pid"], manifest["host"]) == (os.getpid(), socket.gethostname())
    [listed] = list_runs(tmp_path, "tiny_bart")
    adapter = run.model_dir / "adapter_model.safetensors"
    assert (listed.status, listed.backend, listed.score) == ("completed", "peft", manifest["metrics"]["score"])
    assert listed.size_bytes == adapter.stat().st_size  # a scratch run's base_model/ stays, and is not the adapter
    assert (run.scratch_base_dir / "model.safetensors").stat().st_size > listed.size_bytes

    # that init as a pretrained checkpoint: its weights are read where they are and never copied into the run
    pretrained = train(cfg.model_copy(update={"model": cfg.model.model_copy(update=dict(
        init="pretrained", checkpoint=str(run.scratch_base_dir), tokenizer=str(run.model_dir)))})).run
    files = sorted(path.name for path in pretrained.model_dir.iterdir())
    assert "base_model" not in files and [name for name in files if name.endswith((".safetensors", ".bin"))] == ["adapter_model.safetensors"]
    assert (pretrained.model_dir / "adapter_model.safetensors").stat().st_size < (run.scratch_base_dir / "model.safetensors").stat().st_size

    import sumtune  # by config stem: its root is SUMTUNE_HOME; the newest completed run unless a pin says otherwise

    monkeypatch.chdir(REPO)
    assert find_run_dir("tiny_bart") == pretrained.model_dir
    monkeypatch.setenv("SUMTUNE_MODEL_TINY_BART", str(run.model_dir))
    assert sumtune.load("tiny_bart").run == run.model_dir
