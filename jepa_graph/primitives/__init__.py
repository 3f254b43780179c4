"""Primitive block types, registered on import. One family per file: its shape rules here (no
torch, so checking a spec imports none), its torch modules in ``layers/`` (imported by ``build``)."""
from . import mlp
from . import energies
from . import costs
from . import vision
from . import transformer
from . import regularizers
from . import ops
from . import sequence
