"""Primitive block types, registered on import. One family per file."""
from . import mlp, energies, costs  # noqa: F401
