"""Primitive block types, registered on import. One family per file."""
from . import mlp
from . import energies
from . import costs
from . import vision
from . import transformer
from . import regularizers
from . import ops
