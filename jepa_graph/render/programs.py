"""What a diagram needs from the compiled model: parameter counts and the nodes each program uses.

Both come from a real :class:`~jepa_graph.model.CompiledModel`, so the picture cannot drift from
what runs: a program's nodes are read off its lowered fx graph. When only a spec is given, the
model is built on the ``meta`` device (shapes without storage), which costs no memory.
"""
from __future__ import annotations

import logging

import torch

from ..graph import Graph
from ..lower import fx_name
from ..model import CompiledModel

log = logging.getLogger(__name__)


def meta_model(g: Graph) -> CompiledModel:
    """The compiled model of ``g`` with weights on the meta device (counts only, no storage)."""
    try:
        with torch.device("meta"):
            return CompiledModel(g)
    except (RuntimeError, NotImplementedError, TypeError) as e:  # a block that computes real values at init
        log.info("building on the meta device failed (%s); building on CPU for parameter counts", e)
        return CompiledModel(g)


def param_counts(model: CompiledModel) -> dict[str, int]:
    """Module name -> number of parameters (trainable or not, EMA copies included)."""
    return {name: sum(p.numel() for p in m.parameters()) for name, m in model.blocks.items()}


def program_nodes(model: CompiledModel, name: str) -> tuple[set[str], set[str]]:
    """(nodes the program computes or takes as placeholders, nodes it reads only as given inputs).

    The second set holds the nodes a program cuts (``step`` takes the state where the encoder
    would run): drawn as the program's inputs, not as work it does.
    """
    g = model.graph
    prog = model.program(name)
    by_fx = {fx_name(n.name): n.name for n in g.nodes.values() if n.is_var}
    used = set()
    for fn in prog.graph.nodes:
        if fn.op == "call_module" and "jepa_node" in fn.meta:
            used.add(fn.meta["jepa_node"])
        elif fn.op == "placeholder" and fn.target in by_fx:
            used.add(by_fx[fn.target])
    for n in reversed(g.topo()):  # a port is used when what consumes it is
        if n.op == "port" and any(c in used for c in g.consumers(n.name)):
            used.add(n.name)
    given = set()
    for n in g.nodes.values():
        if n.name in used:
            for r in n.inputs:
                if r.src not in used:
                    given.add(r.src)
    return used, given
