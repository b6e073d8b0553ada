"""annotation-platform: a multi-user annotation backend."""

__version__ = "0.1.0"
