"""Config loading and validation: every problem reported at once as ``file: key.path: message``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from sumtune.architectures import ARCHITECTURES
from sumtune.config import ConfigError, RunConfig, load_config, validate_files


def write_yaml(directory: Path, name: str, content) -> Path:
    """Write a config (a dict dumped as YAML, or raw YAML text) to ``directory/name.yaml``."""
    path = directory / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def good_config(train_file: Path, **sections) -> dict:
    """A minimal valid config (offline tiny BART) with ``sections`` merged in one level deep."""
    cfg = {
        "model": {"architecture": "bart", "init": "scratch"},
        "data": {"train_file": str(train_file)},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def problems_of(path: Path, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    assert info.value.problems, "ConfigError without problems"
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def the_problem(problems: list[str], path: Path, key: str) -> str:
    """The one line about ``key`` in ``path``, checking the ``file: key.path: message`` form."""
    prefix = f"{path}: {key}: "
    matching = [line for line in problems if line.startswith(prefix)]
    assert len(matching) == 1, f"expected one line starting {prefix!r} in {problems}"
    message = matching[0][len(prefix):]
    assert message.strip(), f"empty message in {matching[0]!r}"
    return message


# --------------------------------------------------------------------------------------------------
# Unknown keys and choices, with did-you-mean


def test_unknown_top_level_key_suggests_the_nearest(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, traning={"learning_rate": 1e-4}))
    message = the_problem(problems_of(path), path, "traning")
    assert "unknown key" in message
    assert "did you mean 'training'?" in message
    valid = message.split("Valid keys here:")[1]
    for key in ("model", "data", "training", "qlora", "generation"):
        assert key in valid


def test_unknown_nested_key_suggests_the_nearest_in_its_section(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, training={"learnig_rate": 1e-4}))
    message = the_problem(problems_of(path), path, "training.learnig_rate")
    assert "did you mean 'learning_rate'?" in message
    valid = message.split("Valid keys here:")[1]
    assert "num_train_epochs" in valid and "lora_rank" not in valid  # the training section's keys only


@pytest.mark.parametrize("typo, suggestion", [("lama", "llama"), ("bartt", "bart"), ("flan_t5", "flan-t5")])
def test_unknown_architecture_suggests_and_lists_valid_ones(tmp_path, sample_csv, typo, suggestion):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, model={"architecture": typo}))
    message = the_problem(problems_of(path), path, "model.architecture")
    assert f"unknown architecture '{typo}'" in message
    assert f"Did you mean '{suggestion}'?" in message
    valid = message.split("Valid:")[1]
    for family in ARCHITECTURES:
        assert family in valid


def test_unknown_architecture_without_a_near_match_still_lists_valid_ones(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, model={"architecture": "zzzzzz"}))
    message = the_problem(problems_of(path), path, "model.architecture")
    assert "Did you mean" not in message
    assert all(family in message for family in ARCHITECTURES)


def test_unknown_size_preset(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, model={"size": "tinny"}))
    message = the_problem(problems_of(path), path, "model.size")
    assert "Did you mean 'tiny'?" in message


# --------------------------------------------------------------------------------------------------
# Types, bounds and choices


def test_wrong_type_names_the_value(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, training={"num_train_epochs": "three"}))
    message = the_problem(problems_of(path), path, "training.num_train_epochs")
    assert "valid number" in message
    assert "'three'" in message


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("qlora", "lora_rank", 0, "greater than 0"),
        ("qlora", "lora_dropout", 1.5, "less than 1"),
        ("training", "learning_rate", -1e-4, "greater than 0"),
        ("generation", "num_beams", 0, "greater than 0"),
    ],
)
def test_out_of_range_values(tmp_path, sample_csv, section, key, value, expected):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, **{section: {key: value}}))
    message = the_problem(problems_of(path), path, f"{section}.{key}")
    assert expected in message
    assert f"(got {value!r})" in message


def test_bad_literal_choice_lists_the_allowed_ones(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, training={"precision": "fp8"}))
    message = the_problem(problems_of(path), path, "training.precision")
    assert "'fp8'" in message
    for choice in ("auto", "fp32", "bf16", "fp16"):
        assert f"'{choice}'" in message


def test_bad_run_name(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, name="my run/1"))
    message = the_problem(problems_of(path), path, "name")
    assert "'my run/1'" in message


# --------------------------------------------------------------------------------------------------
# Required keys and cross-field rules


def test_missing_architecture(tmp_path, sample_csv):
    cfg = good_config(sample_csv)
    del cfg["model"]["architecture"]
    path = write_yaml(tmp_path, "run", cfg)
    assert the_problem(problems_of(path), path, "model.architecture") == "required key is missing"


def test_missing_data_section(tmp_path, sample_csv):
    cfg = good_config(sample_csv)
    del cfg["data"]
    path = write_yaml(tmp_path, "run", cfg)
    assert the_problem(problems_of(path), path, "data") == "required key is missing"


def test_pretrained_needs_a_checkpoint(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, model={"init": "pretrained"}))
    message = the_problem(problems_of(path), path, "model.checkpoint")
    assert "required when model.init is 'pretrained'" in message
    assert "scratch" in message  # the other way out
    fixed = write_yaml(tmp_path, "fixed", good_config(sample_csv, model={"init": "pretrained", "checkpoint": "facebook/bart-base"}))
    assert load_config(fixed).model.checkpoint == "facebook/bart-base"  # validating never loads the checkpoint


def test_prompt_template_needs_the_dialogue_field(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, preprocessing={"prompt_template": "Summarise: {text}\n"}))
    message = the_problem(problems_of(path), path, "preprocessing.prompt_template")
    assert "{dialogue}" in message


def test_early_stopping_needs_evaluation(tmp_path, sample_csv):
    # a bare YAML `no` is read as false; the schema must still treat it as the strategy 'no'
    text = yaml.safe_dump(good_config(sample_csv)) + "training:\n  eval_strategy: no\n  save_strategy: no\n  early_stopping_patience: 2\n"
    path = write_yaml(tmp_path, "run", text)
    problems = problems_of(path)
    assert len(problems) == 1
    message = the_problem(problems, path, "training.early_stopping_patience")
    assert "eval_strategy 'steps' or 'epoch'" in message


def test_early_stopping_with_mismatched_strategies_reports_both_rules(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(
        sample_csv, training={"eval_strategy": "no", "save_strategy": "epoch", "early_stopping_patience": 2}))
    problems = problems_of(path)
    assert len(problems) == 2
    assert all(line.startswith(f"{path}: training.early_stopping_patience: ") for line in problems)
    assert any("save_strategy equal to eval_strategy" in line for line in problems)


def test_steps_strategy_needs_steps(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, training={"eval_strategy": "steps", "save_strategy": "steps"}))
    problems = problems_of(path)
    assert "'steps'" in the_problem(problems, path, "training.eval_steps")
    assert "'steps'" in the_problem(problems, path, "training.save_steps")


def test_load_in_4bit_needs_lora(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, qlora={"load_in_4bit": True, "use_qlora": False}))
    message = the_problem(problems_of(path), path, "qlora.load_in_4bit")
    assert "qlora.use_qlora: true" in message


def test_full_backend_conflicts_with_lora(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, backend="full", qlora={"use_qlora": True}))
    message = the_problem(problems_of(path), path, "backend")
    assert "'full'" in message and "qlora.use_qlora: false" in message
    fixed = write_yaml(tmp_path, "fixed", good_config(sample_csv, backend="full", qlora={"use_qlora": False}))
    assert load_config(fixed).backend == "full"


def test_peft_backend_needs_lora(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, backend="peft", qlora={"use_qlora": False}))
    assert "qlora.use_qlora: true" in the_problem(problems_of(path), path, "backend")


# --------------------------------------------------------------------------------------------------
# Data files


def test_missing_data_file_names_the_path(tmp_path, sample_csv):
    missing = tmp_path / "nowhere" / "dev.csv"
    path = write_yaml(tmp_path, "run", good_config(sample_csv, data={"eval_file": str(missing)}))
    message = the_problem(problems_of(path), path, "data.eval_file")
    assert "file not found" in message
    assert str(missing) in message


def test_csv_without_the_summary_column_lists_its_columns(tmp_path):
    data = tmp_path / "no_summary.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["fname", "dialogue", "topic"], ["a", "#Person1#: hi", "greeting"]])
    path = write_yaml(tmp_path, "run", good_config(data))
    message = the_problem(problems_of(path), path, "data.train_file")
    assert "no column 'summary'" in message
    assert "it has fname, dialogue, topic" in message
    assert "data.summary_column" in message  # how to fix it
    fixed = write_yaml(tmp_path, "fixed", good_config(data, data={"summary_column": "topic"}))
    assert load_config(fixed).data.summary_column == "topic"


def test_test_file_needs_no_summary_column(tmp_path, sample_csv):
    test = tmp_path / "test.csv"
    test.write_text("fname,dialogue\nt1,#Person1#: hello\n", encoding="utf-8")
    path = write_yaml(tmp_path, "run", good_config(sample_csv, data={"test_file": str(test)}))
    assert load_config(path).data.test_file == test


def test_relative_data_paths_resolve_from_the_current_directory(tmp_path, sample_csv, monkeypatch):
    path = write_yaml(tmp_path / "configs", "run", good_config(Path(sample_csv.name)))
    monkeypatch.chdir(tmp_path)
    assert load_config(path).data.train_file == Path(sample_csv.name)
    monkeypatch.chdir(tmp_path / "configs")
    message = the_problem(problems_of(path), path, "data.train_file")
    assert "file not found" in message and str(tmp_path / "configs") in message


# --------------------------------------------------------------------------------------------------
# Files that are not configs


def test_invalid_yaml(tmp_path):
    path = write_yaml(tmp_path, "broken", "model: [architecture: bart\ndata: {}\n")
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: invalid YAML")
    assert "line" in problems[0]


def test_top_level_must_be_a_mapping(tmp_path):
    path = write_yaml(tmp_path, "list", "- a\n- b\n")
    assert problems_of(path) == [f"{path}: the top level must be a mapping of keys, not list"]


def test_missing_config_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert problems_of(path) == [f"{path}: file not found"]


# --------------------------------------------------------------------------------------------------
# _base_ inheritance, names and --set overrides


def test_base_inheritance_overrides_one_nested_key_and_keeps_the_rest(tmp_path, sample_csv, monkeypatch):
    base = good_config(sample_csv, training={"learning_rate": 1e-4, "num_train_epochs": 7, "seed": 3},
                       generation={"num_beams": 2})
    write_yaml(tmp_path / "base", "common", base)
    child = write_yaml(tmp_path / "models", "child", {"_base_": "../base/common.yaml", "training": {"learning_rate": 2e-3}})
    monkeypatch.chdir(tmp_path / "base")  # _base_ resolves from the child file, not the current directory
    cfg = load_config(child)
    assert cfg.training.learning_rate == pytest.approx(2e-3)
    assert cfg.training.num_train_epochs == 7
    assert cfg.training.seed == 3
    assert cfg.generation.num_beams == 2
    assert cfg.model.architecture == "bart" and cfg.model.init == "scratch"
    assert cfg.name == "child"  # the child's stem, not the base's


def test_base_chain_of_three(tmp_path, sample_csv):
    write_yaml(tmp_path, "a", good_config(sample_csv, training={"seed": 1, "warmup_ratio": 0.1}))
    write_yaml(tmp_path, "b", {"_base_": "a.yaml", "training": {"seed": 2}, "model": {"architecture": "t5"}})
    c = write_yaml(tmp_path, "c", {"_base_": "b.yaml", "training": {"warmup_ratio": 0.2}})
    cfg = load_config(c)
    assert (cfg.training.seed, cfg.training.warmup_ratio, cfg.model.architecture) == (2, 0.2, "t5")


def test_circular_base_is_reported(tmp_path, sample_csv):
    first = write_yaml(tmp_path, "first", {"_base_": "second.yaml", **good_config(sample_csv)})
    write_yaml(tmp_path, "second", {"_base_": "first.yaml"})
    problems = problems_of(first)
    assert len(problems) == 1
    assert "_base_: circular inheritance" in problems[0]
    assert "first.yaml" in problems[0] and "second.yaml" in problems[0]


def test_missing_base_names_the_base_file(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", {"_base_": "gone.yaml", **good_config(sample_csv)})
    assert problems_of(path) == [f"{tmp_path / 'gone.yaml'}: file not found"]


def test_name_defaults_to_the_file_stem_and_an_explicit_name_wins(tmp_path, sample_csv):
    assert load_config(write_yaml(tmp_path, "my_run.v2", good_config(sample_csv))).name == "my_run.v2"
    assert load_config(write_yaml(tmp_path, "other", good_config(sample_csv, name="chosen"))).name == "chosen"


def test_a_derived_config_is_named_by_its_own_stem_not_its_bases_name(tmp_path, sample_csv):
    """Two configs on one named base must not share a run name: --resume and predict find runs by name."""
    write_yaml(tmp_path, "base", good_config(sample_csv, name="base_run"))
    write_yaml(tmp_path, "middle", {"_base_": "base.yaml", "training": {"seed": 2}})
    first = write_yaml(tmp_path, "lr_high", {"_base_": "base.yaml", "training": {"learning_rate": 1e-3}})
    second = write_yaml(tmp_path, "lr_low", {"_base_": "middle.yaml", "training": {"learning_rate": 1e-5}})
    assert (load_config(first).name, load_config(second).name) == ("lr_high", "lr_low")
    assert load_config(second).training.seed == 2  # everything else is still inherited
    named = write_yaml(tmp_path, "named", {"_base_": "base.yaml", "name": "mine"})
    assert load_config(named).name == "mine"  # a name written in the file itself wins
    assert load_config(first, ["name=from_cli"]).name == "from_cli"  # and --set wins over both


def test_set_overrides_are_typed(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv, training={"learning_rate": 5e-5}))
    cfg = load_config(path, [
        "training.learning_rate=1e-3",
        "qlora.target_modules=[q,v]",
        "training.num_train_epochs=2",
        "training.gradient_checkpointing=true",
        "data.max_train_samples=5",
        "generation.num_beams=1",
    ])
    assert isinstance(cfg.training.learning_rate, float) and cfg.training.learning_rate == pytest.approx(1e-3)
    assert cfg.qlora.target_modules == ["q", "v"]
    assert cfg.training.num_train_epochs == 2.0
    assert cfg.training.gradient_checkpointing is True
    assert cfg.data.max_train_samples == 5
    assert cfg.generation.num_beams == 1
    assert load_config(path).training.learning_rate == pytest.approx(5e-5)  # the file itself is untouched


def test_set_overrides_win_over_base_and_file(tmp_path, sample_csv):
    write_yaml(tmp_path, "base", good_config(sample_csv, training={"seed": 1}))
    child = write_yaml(tmp_path, "child", {"_base_": "base.yaml", "training": {"seed": 2}})
    assert load_config(child, ["training.seed=3"]).training.seed == 3


def test_set_results_are_validated_again(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv))
    problems = problems_of(path, ["training.learnig_rate=1e-3", "qlora.lora_rank=0"])
    assert "did you mean 'learning_rate'?" in the_problem(problems, path, "training.learnig_rate")
    assert "greater than 0" in the_problem(problems, path, "qlora.lora_rank")


def test_set_without_equals_is_an_error(tmp_path, sample_csv):
    path = write_yaml(tmp_path, "run", good_config(sample_csv))
    problems = problems_of(path, ["training.learning_rate"])
    assert len(problems) == 1
    assert problems[0].startswith("--set training.learning_rate:")
    assert "key.path=value" in problems[0]


# --------------------------------------------------------------------------------------------------
# All problems at once


def test_every_problem_in_a_file_is_reported_at_once(tmp_path, sample_csv):
    cfg = good_config(
        sample_csv,
        model={"architecture": "lama"},
        training={"learnig_rate": 1e-4, "precision": "fp8", "num_train_epochs": "three"},
        qlora={"lora_rank": 0, "lora_dropout": 1.5},
        generation={"num_beams": 0},
    )
    cfg["traning"] = {}
    path = write_yaml(tmp_path, "many", cfg)
    problems = problems_of(path)
    expected_keys = [
        "traning", "model.architecture", "training.learnig_rate", "training.precision",
        "training.num_train_epochs", "qlora.lora_rank", "qlora.lora_dropout", "generation.num_beams",
    ]
    assert len(problems) == len(expected_keys), problems
    for key in expected_keys:
        the_problem(problems, path, key)


def test_validate_files_reports_every_file_by_name(tmp_path, sample_csv):
    good = write_yaml(tmp_path, "good", good_config(sample_csv))
    first = write_yaml(tmp_path, "first", good_config(sample_csv, training={"precision": "fp8"}))
    second = write_yaml(tmp_path, "second", good_config(sample_csv, qlora={"lora_rank": 0}, generation={"num_beams": 0}))
    assert validate_files([good]) == []
    problems = validate_files([first, good, second])
    assert len(problems) == 3
    the_problem(problems, first, "training.precision")
    the_problem(problems, second, "qlora.lora_rank")
    the_problem(problems, second, "generation.num_beams")
    assert not any(line.startswith(f"{good}:") for line in problems)


def test_validate_files_applies_overrides_to_every_file(tmp_path, sample_csv):
    paths = [write_yaml(tmp_path, name, good_config(sample_csv)) for name in ("one", "two")]
    problems = validate_files(paths, ["training.precision=fp8"])
    assert [line.split(": ")[0] for line in problems] == [str(p) for p in paths]


def test_merged_config_round_trips_through_yaml(tmp_path, sample_csv):
    write_yaml(tmp_path, "base", good_config(sample_csv, training={"seed": 5}))
    child = write_yaml(tmp_path, "child", {"_base_": "base.yaml", "qlora": {"target_modules": ["q_proj"]}})
    cfg = load_config(child, ["training.learning_rate=2e-4"])
    again = load_config(write_yaml(tmp_path, "dumped", cfg.to_yaml()))
    assert again == cfg
    assert isinstance(again, RunConfig)
