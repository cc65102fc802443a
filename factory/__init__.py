"""Build-from-source artifact factory for Python."""

__version__ = "0.1.0"
