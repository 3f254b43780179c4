"""What a diagram needs from the compiled model: parameter counts and the nodes each program uses.

Both come from a real :class:`~jepa_graph.model.CompiledModel`, so the picture cannot drift from
what runs: a program's nodes are read off its lowered fx graph. When only a spec is given, the
model is built on the ``meta`` device (shapes without storage), which costs no memory.
"""
from __future__ import annotations

import logging

import torch

from ..compiler.graph import Graph
from ..compiler.lower import LATENT_PENALTIES
from ..compiler.programs import fx_name
from ..compiler.model import CompiledModel

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


def partial_param_counts(g: Graph) -> dict[str, int]:
    """Module name -> parameter count for the blocks of a graph that failed its checks.

    Only blocks whose parameters validated and whose inputs' shapes are known can be built (on
    the meta device); the others have no count, and their boxes show none."""
    out: dict[str, int] = {}
    for n in g.topo():
        if n.op != "call" or n.share_of or n.ema_of or n.block is None or n.params is None:
            continue
        if any(g.nodes[r.src].ttype is None for r in n.inputs):
            continue
        try:
            with torch.device("meta"):
                m = n.block.build(n.params, [g.nodes[r.src].ttype for r in n.inputs])
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as e:
            log.info("no parameter count for `%s`: building it failed (%s)", n.name, e)
            continue
        out[n.module] = sum(p.numel() for p in m.parameters())
    for n in g.nodes.values():  # an EMA copy has its source's parameters
        src = g.nodes.get(n.ema_of) if n.op == "call" and n.ema_of else None
        if src is not None and src.module in out:
            out[n.module] = out[src.module]
    return out


def program_nodes(model: CompiledModel, name: str) -> tuple[set[str], set[str]]:
    """(nodes the program computes or takes as placeholders, nodes it reads only as given inputs).

    The second set holds the nodes a program cuts (``step`` takes the state where the encoder
    would run): drawn as the program's inputs, not as work it does. A latent's capacity term
    that the program computes is named as its diagram item, ``z.l1``.
    """
    g = model.graph
    decl = model.declaration(name)
    prog = model.program(decl.unroll or name)  # a rollout computes what the step it repeats does
    by_fx = {fx_name(n.name): n.name for n in g.nodes.values() if n.is_var}
    penalty = {f: reg for reg, f in LATENT_PENALTIES.items()}
    used = set()
    for fn in prog.graph.nodes:
        if "jepa_node" in fn.meta:  # a block, called as its module or as its fused torch function
            used.add(fn.meta["jepa_node"])
        elif fn.op == "placeholder" and fn.target in by_fx:
            used.add(by_fx[fn.target])
        elif fn.op == "call_function" and fn.target in penalty and fn.args:
            z = fn.args[0]
            if isinstance(z, torch.fx.Node) and z.op == "placeholder" and z.target in by_fx:
                used.add(f"{by_fx[z.target]}.{penalty[fn.target]}")
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
