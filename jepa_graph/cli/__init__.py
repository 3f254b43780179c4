"""The ``jepa-graph`` command line: one module per command, ``main`` ties them together."""
from .main import main

__all__ = ["main"]
