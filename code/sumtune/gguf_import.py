"""A GGUF file as a checkpoint: dequantized once into a plain safetensors directory, with the tokenizer
the model was trained with.

    sumtune import-gguf ~/models/SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2-dense

``model.checkpoint`` may name a ``.gguf`` file (or a directory with ``model.gguf_file``) or a fetched
GGUF (``fetched:NAME``). The first load imports it into ``$SUMTUNE_CHECKPOINTS/gguf/{sha256[:16]}``;
every later load — training, predict, ``sumtune.load``, compare, export — reads that directory and
dequantizes nothing again. The weights keep the quantisation's rounding (the directory's
``sumtune_gguf.json`` and every run.json say which quantisation).

transformers reads the GGUF's tensors (``GgufConfig(dequantize=True)``: a dense model, not one marked
quantized, which ``save_pretrained`` and the Trainer would refuse). Its tokenizer conversion is not
used: it builds Gemma's SentencePiece-BPE vocabulary as a Unigram model and gets SmolLM2's EOS wrong;
``gguf_tokenizer`` rebuilds the tokenizer from the metadata instead.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .checkpoints import (FETCHED_PREFIX, FetchError, cache_root, fetched_checkpoint, fetched_name, file_sha256,
                          get_fetchable)
from .records import write_json_atomic

log = logging.getLogger("sumtune")

IMPORT_FACTS = "sumtune_gguf.json"  # in an imported directory, written last: marks a complete import
# GGUF ``general.architecture`` -> the ``model_type`` of the transformers config it becomes
MODEL_TYPE_OF_GGUF = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3": "gemma3_text", "gpt2": "gpt2"}
LICENCE_FILES = ("LICENSE", "GEMMA_TERMS.html", "NOTICE.md")  # copied from beside the GGUF when there


class GgufError(ValueError):
    """A GGUF file that cannot be imported: unreadable, truncated, or of an architecture sumtune does not train."""


@dataclass(frozen=True)
class GgufFacts:
    path: Path
    architecture: str  # general.architecture
    model_type: str  # of the transformers config it becomes
    quantization: str  # the most common tensor type, e.g. Q4_1, Q4_K
    tensor_types: dict[str, int]

    def as_dict(self) -> dict:
        return {"gguf_file": str(self.path), "gguf_architecture": self.architecture, "model_type": self.model_type,
                "quantization": self.quantization, "tensor_types": self.tensor_types}


def read_facts(path: str | Path) -> GgufFacts:
    """The GGUF's architecture and quantisation, from its header alone (no tensor is read). gguf's reader
    parses every string of the vocabulary (seconds for Gemma's 262,144), so what it found is kept in the
    cache's ``gguf/facts.json`` by path, size and modification time: ``validate`` stays instant."""
    path = Path(path)
    if not path.is_file():
        raise GgufError(f"{path}: no such GGUF file")
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known_file = cache_root() / "gguf" / "facts.json"
    known = json.loads(known_file.read_text(encoding="utf-8")) if known_file.is_file() else {}
    if key in known:
        found = known[key]
        return GgufFacts(path, found["architecture"], found["model_type"], found["quantization"], found["tensor_types"])
    facts = _read_header(path)
    known[key] = {"architecture": facts.architecture, "model_type": facts.model_type,
                  "quantization": facts.quantization, "tensor_types": facts.tensor_types}
    known_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(known_file, known)
    return facts


def _read_header(path: Path) -> GgufFacts:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        architecture = str(reader.fields["general.architecture"].contents())
        tensors = [tensor.tensor_type.name for tensor in reader.tensors]
        file_type = reader.fields["general.file_type"].contents() if "general.file_type" in reader.fields else None
    except Exception as exc:  # the gguf reader raises ValueError, KeyError, IndexError... on a bad file
        raise GgufError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}); it may be truncated or "
                        "not a GGUF at all. Fix: fetch or copy it again and compare its sha256") from None
    if architecture not in MODEL_TYPE_OF_GGUF:
        raise GgufError(f"{path}: GGUF architecture '{architecture}' is not one sumtune imports; supported: "
                        f"{', '.join(sorted(MODEL_TYPE_OF_GGUF))}")
    counts: dict[str, int] = {}
    for name in tensors:
        counts[name] = counts.get(name, 0) + 1
    quantization = quantization_name(file_type, counts)
    return GgufFacts(path, architecture, MODEL_TYPE_OF_GGUF[architecture], quantization, counts)


def quantization_name(file_type: Optional[int], tensor_types: dict[str, int]) -> str:
    """The file's own word (``general.file_type``: Q4_K_M mixes Q4_K, Q5_0, Q6_K... tensors), else the most
    common quantized tensor type."""
    from gguf import LlamaFileType

    try:
        return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):
        quantized = {name: n for name, n in tensor_types.items() if name not in ("F32", "F16", "BF16")}
        return max(quantized or tensor_types, key=(quantized or tensor_types).get)


def gguf_source(checkpoint: Optional[str], gguf_file: Optional[str] = None) -> Optional[Path]:
    """The GGUF file a ``model.checkpoint`` (and ``model.gguf_file``) names, or None for any other checkpoint."""
    if checkpoint is None:
        return None
    name = fetched_name(checkpoint)
    if name is not None:
        return fetched_or_fail(name) if get_fetchable(name).is_gguf else None
    if gguf_file:
        return Path(checkpoint) / gguf_file
    return Path(checkpoint) if checkpoint.endswith(".gguf") else None


def local_checkpoint(checkpoint: Optional[str], gguf_file: Optional[str] = None) -> Optional[str]:
    """What ``from_pretrained`` loads for ``model.checkpoint``: the imported directory of a GGUF, the
    fetched directory of a ``fetched:`` name, else the checkpoint as written (hub id or directory)."""
    if checkpoint is None:
        return None
    source = gguf_source(checkpoint, gguf_file)
    if source is not None:
        return str(import_gguf(source))
    name = fetched_name(checkpoint)
    return str(fetched_or_fail(name)) if name is not None else checkpoint


def fetched_or_fail(name: str) -> Path:
    found = fetched_checkpoint(name)
    if found is None:
        raise FetchError(f"checkpoint '{FETCHED_PREFIX}{name}' is not fetched yet (cache: {cache_root()}). "
                         f"Fix: run `sumtune fetch {name}` (or scripts/fetch_checkpoints.sh)")
    return found


def imported_dir(sha256: str) -> Path:
    return cache_root() / "gguf" / sha256[:16]


def import_gguf(path: str | Path, out: Optional[Path] = None) -> Path:
    """The dense safetensors directory of the GGUF at ``path`` (in the cache unless ``out``), made once."""
    facts = read_facts(path)
    sha256 = remembered_sha256(facts.path)
    target = Path(out) if out is not None else imported_dir(sha256)
    done = target / IMPORT_FACTS
    if done.is_file() and json.loads(done.read_text(encoding="utf-8")).get("sha256") == sha256:
        return target
    if out is not None and target.exists() and any(target.iterdir()):
        raise GgufError(f"{target} exists and is not empty: choose a new --out directory")
    log.info("importing %s (%s, %s): dequantizing into %s", facts.path.name, facts.architecture, facts.quantization, target)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model = dequantized_model(facts)
    model.save_pretrained(staging)
    from .gguf_tokenizer import tokenizer_from_gguf

    tokenizer_from_gguf(facts.path).save_pretrained(staging)
    for name in LICENCE_FILES:
        if (facts.path.parent / name).is_file():
            shutil.copy2(facts.path.parent / name, staging / name)
    record = {"source": str(facts.path), "sha256": sha256, **facts.as_dict(),
              "note": "dequantized from GGUF: the weights keep the quantisation's rounding"}
    (staging / IMPORT_FACTS).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    log.info("imported %s into %s", facts.path.name, target)
    return target


def remembered_sha256(path: Path) -> str:
    """The file's sha256, hashed once per process while its size and modification time stay the same
    (a run resolves its checkpoint several times)."""
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def dequantized_model(facts: GgufFacts):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(facts.path.parent), gguf_file=facts.path.name, dtype=torch.float32,
        quantization_config=transformers.GgufConfig(dequantize=True))
    return model


def import_facts(directory: str | Path) -> Optional[dict]:
    """The record of an imported GGUF directory, None for any other directory."""
    path = Path(directory) / IMPORT_FACTS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
