"""The seed command forms (`python code/trainer.py --mode single|multi_model --models NAME`) with short
model names, `--debug` smoke-test runs that are never taken for a name's newest run, and experiment
tracking (`training.report_to`) with the run id as the tracker's run name."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import transformers
import yaml

from sumtune import artifacts
from sumtune.cli import main
from sumtune.config import ConfigError, load_config
from sumtune.trained import find_run_dir, latest_completed_run

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
MODEL_CONFIGS = REPO / "config" / "model_configs"
TINY_BART = MODEL_CONFIGS / "tiny_bart.yaml"
ML_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


def seed_trainer():
    """code/trainer.py as a module (code/ is not a package)."""
    spec = importlib.util.spec_from_file_location("seed_trainer", REPO / "code" / "trainer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trainer_calls(monkeypatch, *argv: str) -> list:
    """The train_configs calls that `python code/trainer.py ARGV` makes (nothing is trained)."""
    trainer = seed_trainer()
    calls = []
    monkeypatch.setattr(trainer, "train_configs", lambda *args, **kwargs: calls.append((args, kwargs)) or 0)
    monkeypatch.setattr(sys, "argv", ["trainer.py", *argv])
    assert trainer.main() == 0
    return calls


def here(root: Path) -> list[str]:
    """Overrides that make a shipped config independent of the working directory, writing under root."""
    return [f"output.root={root}", f"data.train_file={SAMPLE / 'ko_train.csv'}", f"data.eval_file={SAMPLE / 'ko_dev.csv'}",
            f"data.test_file={SAMPLE / 'ko_test.csv'}"]


# --------------------------------------------------------------------------------------------------
# Short model names


def test_short_names_and_config_stems_pick_their_configs_in_both_modes(monkeypatch):
    [(args, kwargs)] = trainer_calls(monkeypatch, "--mode", "single", "--models", "kobart")
    assert args[0] == [MODEL_CONFIGS / "kobart_unsloth.yaml"] and kwargs == {"resume": False, "debug": False}

    [(args, kwargs)] = trainer_calls(monkeypatch, "--mode", "multi_model", "--models", "kobart", "llama-3.2-korean-3b",
                                     "qwen3-4b", "exaone", "tiny_bart", "kogpt2")
    assert [p.stem for p in args[0]] == ["kobart_unsloth", "llama_3.2_korean_3b", "qwen3_4b", "exaone_3.5_2.4b",
                                         "tiny_bart", "kogpt2"]
    assert all(p.is_file() for p in args[0]) and kwargs == {"sweep": True, "debug": False}

    [(args, kwargs)] = trainer_calls(monkeypatch, "--models", "mt5", "--debug", "--set", "training.max_steps=3")
    assert args == ([MODEL_CONFIGS / "mt5_base.yaml"], ["training.max_steps=3"]) and kwargs["debug"] is True


def test_every_short_name_names_a_shipped_config_and_hides_none():
    aliases = yaml.safe_load((REPO / "config" / "model_aliases.yaml").read_text(encoding="utf-8"))
    stems = {p.stem for p in MODEL_CONFIGS.glob("*.yaml")}
    assert {"kobart", "llama-3.2-korean-3b", "qwen3-4b", "exaone", "mt5", "t5", "flan-t5", "bart"} <= set(aliases)
    assert all(isinstance(stem, str) and stem in stems for stem in aliases.values()), aliases
    assert not set(aliases) & stems  # a stem always means its own config: no alias can point it elsewhere


def test_an_unknown_name_exits_2_listing_the_known_ones_before_any_ml_library_loads():
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = ['trainer.py', '--mode', 'multi_model', '--models', 'kobart', 'kobrat', 'gpt5']\n"
        "try:\n"
        f"    runpy.run_path({str(REPO / 'code' / 'trainer.py')!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        f"    print(json.dumps([exc.code, sorted(m for m in {ML_LIBRARIES!r} if m in sys.modules)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [2, []], done.stderr
    assert "unknown model name(s): 'kobrat' (did you mean 'kobart'?), 'gpt5'" in done.stderr
    for known in ("kobart (kobart_unsloth)", "qwen3-4b (qwen3_4b)", "flan-t5 (flan_t5_base)", "tiny_llama", "kogpt2"):
        assert known in done.stderr


@pytest.mark.parametrize("argv", [
    ["--mode", "single", "--models", "kobart", "qwen3-4b"],  # two models in single mode
    ["--mode", "single"],  # neither --config nor --models
    ["--config", str(TINY_BART), "--models", "kobart"],  # both
    ["--mode", "multi_model"],  # no --models
    ["--mode", "multi_model", "--config", str(TINY_BART), "--models", "kobart"],  # --config would be ignored
])
def test_a_command_that_does_not_name_its_models_plainly_is_refused(monkeypatch, capsys, argv):
    trainer = seed_trainer()
    monkeypatch.setattr(trainer, "train_configs", lambda *args, **kwargs: pytest.fail("must not train"))
    monkeypatch.setattr(sys, "argv", ["trainer.py", *argv])
    with pytest.raises(SystemExit) as exc:
        trainer.main()
    assert exc.value.code == 2 and "--models NAME" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# --debug


def test_debug_makes_every_shipped_config_a_marked_smoke_test():
    for path in sorted(MODEL_CONFIGS.glob("*.yaml")):  # the real-model ones stop early, with checkpoints saved
        cfg = load_config(path, check_files=False, debug=True)
        assert cfg.debug and cfg.name == f"{path.stem}-debug", path
        t = cfg.training
        assert (t.max_steps, t.save_strategy, t.eval_strategy, t.early_stopping_patience) == (2, "no", "no", None), path
        assert (cfg.data.max_train_samples, cfg.data.max_eval_samples) == (16, 2), path
        if cfg.task == "summarization":  # a classification config has no generation or evaluation keys to set
            assert cfg.evaluation.max_examples == 2 and cfg.generation.max_new_tokens <= 16, path
    assert load_config(TINY_BART, check_files=False).name == "tiny_bart"  # without --debug: untouched


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_train_and_sweep_take_debug_and_a_set_after_it_wins(tmp_path, monkeypatch, command):
    import sumtune.train

    seen = []

    def fake_train(cfg, resume=False):
        seen.append(cfg)
        raise RuntimeError("stop here")

    monkeypatch.setattr(sumtune.train, "train", fake_train)
    overrides = [arg for item in [*here(tmp_path), "training.max_steps=5"] for arg in ("--set", item)]
    extra = ["--no-report"] if command == "sweep" else []
    assert main([command, str(TINY_BART), "--debug", *overrides, *extra]) == 1
    [cfg] = seen
    assert cfg.debug and cfg.name == "tiny_bart-debug" and cfg.training.max_steps == 5
    assert cfg.training.save_strategy == "no" and cfg.evaluation.max_examples == 2


def test_a_debug_run_trains_two_steps_is_marked_and_is_never_taken_as_the_newest_run(tmp_path, monkeypatch):
    root = tmp_path / "work"
    older = artifacts.new_run("tiny_bart", root, now=datetime(2020, 1, 1, 12, 0, 0))  # a real run, completed earlier
    older.update(name="tiny_bart", status="completed")
    monkeypatch.chdir(REPO)  # the shipped config's data paths are relative to the repository root

    trainer = seed_trainer()
    monkeypatch.setattr(sys, "argv", ["trainer.py", "--mode", "single", "--models", "tiny_bart", "--debug",
                                      "--set", f"output.root={root}"])
    assert trainer.main() == 0

    [debug] = artifacts.find_runs("tiny_bart-debug", root)
    assert debug.run_id.startswith("tiny_bart-debug_")
    manifest = artifacts.load_manifest(debug)
    assert (manifest["status"], manifest["debug"], manifest["train_steps"]) == ("completed", True, 2)
    assert debug.checkpoints() == [] and not any(debug.checkpoint_dir.glob("**/*.safetensors"))  # no checkpoints
    assert manifest["metrics"]["n_examples"] == 2
    saved = yaml.safe_load((debug.model_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["debug"] is True and saved["data"]["max_train_samples"] == 16

    # predict NAME / sumtune.load(NAME) take the older real run, though the debug run is newer and completed
    assert latest_completed_run("tiny_bart", root).run_id == older.run_id
    config = tmp_path / "tiny_bart.yaml"
    config.write_text(f"_base_: {TINY_BART}\nname: tiny_bart\noutput: {{root: {root}}}\n", encoding="utf-8")
    assert find_run_dir(config) == older.model_dir

    # --resume never takes it either, even with a complete checkpoint and left unfinished
    checkpoint = debug.checkpoint_dir / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / artifacts.TRAINER_STATE).write_text(json.dumps({"global_step": 1}), encoding="utf-8")
    (checkpoint / "adapter_model.safetensors").write_bytes(b"weights")
    debug.manifest = manifest
    debug.update(status="failed")
    with pytest.raises(FileNotFoundError, match="no run of 'tiny_bart' with a checkpoint"):
        artifacts.run_to_resume("tiny_bart", root)
    assert artifacts.run_to_resume("tiny_bart-debug", root).run_id == debug.run_id  # only `--debug --resume` does


# --------------------------------------------------------------------------------------------------
# Experiment tracking


def test_report_to_takes_none_one_tracker_or_a_list_and_refuses_others(tmp_path):
    def report_to(value):
        return load_config(TINY_BART, [*here(tmp_path), f"training.report_to={value}"], check_files=False).training.report_to

    assert report_to("none") == [] and load_config(TINY_BART, check_files=False).training.report_to == []
    assert report_to("tensorboard") == ["tensorboard"]
    assert report_to("[tensorboard, wandb]") == ["tensorboard", "wandb"]
    with pytest.raises(ConfigError, match=r"training\.report_to\.0: Input should be 'tensorboard' or 'wandb'"):
        report_to("mlflow")


def test_a_tracker_that_is_not_installed_is_refused_naming_the_extra_before_any_run(tmp_path, monkeypatch, capsys):
    import sumtune.train

    monkeypatch.setitem(sys.modules, "wandb", None)  # find_spec("wandb") is None now, installed or not
    monkeypatch.setattr(sumtune.train, "train", lambda *args, **kwargs: pytest.fail("must not start a run"))
    overrides = [arg for item in [*here(tmp_path), "training.report_to=[tensorboard, wandb]"] for arg in ("--set", item)]
    assert main(["train", str(TINY_BART), *overrides]) == 2
    err = capsys.readouterr().err
    assert "training.report_to: 'wandb' is not installed here: pip install 'sumtune[wandb]'" in err
    assert not (tmp_path / "models").exists()
    assert main(["validate", str(TINY_BART), *overrides]) == 2
    assert "pip install 'sumtune[wandb]'" in capsys.readouterr().err


class RecordArgs(transformers.TrainerCallback):
    """Keeps the TrainingArguments the Trainer ran with."""

    args = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.args = args


def test_the_trainer_gets_the_run_id_as_its_run_name_and_no_tracker_by_default(tmp_path):
    from sumtune.train import train

    recorder = RecordArgs()
    result = train(load_config(TINY_BART, here(tmp_path), debug=True), callbacks=[recorder])
    assert recorder.args.run_name == result.run.run_id and result.run.run_id.startswith("tiny_bart-debug_")
    assert recorder.args.report_to == []
    assert not (tmp_path / "logs" / "tensorboard").exists()


def _tensorboard_writer_importable() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs the tensorboard package)
        return True
    except ImportError:
        try:
            import tensorboardX  # noqa: F401  (what HF's TensorBoardCallback falls back to)
            return True
        except ImportError:
            return False


@pytest.mark.skipif(not _tensorboard_writer_importable(),
                    reason="neither tensorboard nor tensorboardX is installed here (pip install 'sumtune[tensorboard]')")
def test_tensorboard_event_files_go_into_the_runs_own_directory(tmp_path, monkeypatch):
    from sumtune.train import train

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "elsewhere"))
    recorder = RecordArgs()
    cfg = load_config(TINY_BART, [*here(tmp_path), "training.report_to=tensorboard"], debug=True)
    run = train(cfg, callbacks=[recorder]).run
    assert run.tensorboard_dir == tmp_path / "logs" / "tensorboard" / run.run_id
    assert list(run.tensorboard_dir.glob("events.out.tfevents.*")), list(tmp_path.rglob("*"))
    assert recorder.args.report_to == ["tensorboard"] and recorder.args.run_name == run.run_id
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "elsewhere")  # restored after the Trainer was built
    assert not (tmp_path / "elsewhere").exists()
