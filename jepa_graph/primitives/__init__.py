"""Primitive block types, registered on import. One family per file."""
from . import mlp, energies, costs  # noqa: F401
from . import vision, transformer, regularizers, ops  # noqa: F401
