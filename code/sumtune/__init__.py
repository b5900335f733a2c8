"""sumtune: config-driven fine-tuning for dialogue summarization."""

__version__ = "0.1.0"


def load(ref):
    """A trained run rebuilt as it was trained (``sumtune.trained.load``): ``.model``, ``.tokenizer``,
    ``.config``, ``.run``, ``.summarize(dialogues, **generation)``. ``ref``: a run directory, a config
    path, or a config name (its newest completed run)."""
    from .trained import load as load_trained

    return load_trained(ref)
