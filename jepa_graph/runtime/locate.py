"""Find the culprit block: the first whose output (or gradient) is non-finite, or that raises.

The failing program is re-run node by node with an fx Interpreter on the failing batch; the
first block node (a ``call_module``, or the ``call_function`` of a fused energy) that raises, or
whose floating output holds a NaN or inf, names the culprit. Lowered nodes carry their graph name
in ``node.meta["jepa_node"]``. :func:`culprit` is the one message every caller (model calls,
training, energy minimisation) re-raises a block's failure with.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.fx as fx

from ..core.errors import BlockRuntimeError


def _finite(v) -> bool:
    if isinstance(v, torch.Tensor):
        return not v.is_floating_point() or bool(torch.isfinite(v).all())
    if isinstance(v, (tuple, list)):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return True


@torch.no_grad()
def first_nonfinite_block(prog: fx.GraphModule, inputs: dict[str, torch.Tensor], graph=None) -> str | None:
    """Graph name of the first block whose output is non-finite on ``inputs`` (None: none is)."""
    found: list[str] = []

    class Finder(fx.Interpreter):
        def run_node(self, n: fx.Node):
            out = super().run_node(n)
            if not found and "jepa_node" in n.meta and not _finite(out):  # a block: module or fused function
                found.append(n.meta["jepa_node"])
            return out

    args = [inputs[n.target] for n in prog.graph.nodes if n.op == "placeholder"]
    Finder(prog).run(*args)
    if not found:  # a non-finite input is the culprit when no block is
        bad = [k for k, v in inputs.items() if not _finite(v)]
        return bad[0] if bad else None
    return found[0]


def nonfinite_grad_block(model: torch.nn.Module, graph) -> str | None:
    """The first block (in graph order) with a non-finite parameter gradient."""
    bad = {name.split(".")[1] for name, p in model.named_parameters()
           if name.startswith("blocks.") and p.grad is not None and not _finite(p.grad)}
    for n in graph.topo():
        if n.op == "call" and n.module in bad:
            return n.name
    return None


def failing_block(prog: fx.GraphModule, inputs: dict) -> str | None:
    """Graph name of the first block that raises when ``prog`` is re-run node by node on ``inputs``
    (None: none does). Callers have caught the failure already; this only finds where it was."""
    found: list[str] = []

    class Finder(fx.Interpreter):
        def run_node(self, n: fx.Node):
            try:
                return super().run_node(n)
            except Exception:
                if not found and "jepa_node" in n.meta:
                    found.append(n.meta["jepa_node"])
                raise

    names = [n.target for n in prog.graph.nodes if n.op == "placeholder"]
    if any(k not in inputs for k in names):  # the call failed on its arguments, not in a block
        return None
    args = [inputs[k] for k in names]
    try:
        with torch.no_grad():
            Finder(prog).run(*args)
    except Exception:  # the same failure again; we only wanted to know where
        pass
    return found[0] if found else None


def culprit(prog: fx.GraphModule, inputs: dict, err: Exception, where: str, whole: str,
            nodes: Mapping[str, Any], suffix: str = "") -> BlockRuntimeError:
    """``err``, raised running ``prog`` on ``inputs``, as the BlockRuntimeError that names the first
    block raising it: ``{loc}: block `b` (kind.type) failed {where}: {Type}: {err}{suffix}``, or
    ``{whole} failed: ...`` when no block does. ``nodes``: graph name -> node (``name``, ``kind``,
    ``type``, ``loc``); ``where`` says when (``in program `step```, ``at training step 3``)."""
    failing = failing_block(prog, inputs)
    n = nodes.get(failing) if failing is not None else None
    if n is None:
        return BlockRuntimeError(f"{whole} failed: {type(err).__name__}: {err}{suffix}")
    return BlockRuntimeError(f"{n.loc}: block `{n.name}` ({n.kind}.{n.type}) failed {where}: "
                             f"{type(err).__name__}: {err}{suffix}")
