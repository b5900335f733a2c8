"""sumtune: config-driven fine-tuning for dialogue summarization."""

__version__ = "0.1.0"


def load(ref, device_map=None, dtype=None, max_memory=None, merge=False):
    """A trained run rebuilt as it was trained (``sumtune.trained.load``): ``.model``, ``.tokenizer``,
    ``.config``, ``.run``, ``.summarize(dialogues, **generation)``, ``.load_time_s``, ``.peak_memory_mb``.
    ``ref``: a run directory, a run id, a config path, or a config / run name (its newest completed run).
    ``device_map`` ("auto", "cpu", ...), ``dtype`` ("auto", "bf16", "fp16", "fp32", a torch dtype) and
    ``max_memory`` ({"cuda:0": "10GiB", "cpu": "30GiB"}) win over the run's config; ``merge=True`` folds
    a LoRA adapter into the base."""
    from .trained import load as load_trained

    return load_trained(ref, device_map=device_map, dtype=dtype, max_memory=max_memory, merge=merge)
