"""The package's version (the one ``pyproject.toml`` gives), where runs and entries record it."""

__version__ = "0.1.0"
