"""sumtune: config-driven fine-tuning for dialogue summarization."""

__version__ = "0.1.0"
