"""The compiled model: one nn.Module holding every block's weights, and the programs lowered
from the graph (see :mod:`jepa_graph.lower`).

Example::

    model = jg.compile("specs/two_rooms.yaml")
    out = model(x=x, x_next=x1, a=a, z=z)        # dict: every block output, "energy", "loss"
    s = model.encode(x=x)["state"]               # (B, state)
    s1 = model.step(state=s, a=a, z=z)["state"]  # one world-model step
    model.update_ema(progress=0.3)               # EMA targets follow their momentum schedule
"""
from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from ..core.errors import BlockRuntimeError, SpecError
from ..core.gc_pause import paused_gc
from .graph import Graph
from .lower import Lowering, energy_terms
from ..runtime.locate import failing_block
from .pipeline import check
from ..frontend.spec import Spec

log = logging.getLogger(__name__)
_DTYPES = {"float": torch.float32, "long": torch.long, "bool": torch.bool}


class CompiledModel(nn.Module):
    """A JEPA compiled from a spec. ``blocks`` holds one submodule per weight set."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.spec: Spec = graph.spec
        self.blocks = nn.ModuleDict()
        self._programs: dict[str, fx.GraphModule] = {}
        self._signatures: dict[str, list] = {}
        self._ema_items: list | None = None
        for n in graph.topo():
            if n.op != "call" or n.module in self.blocks:
                continue
            if n.ema_of:
                continue  # built after its source
            try:
                self.blocks[n.module] = n.block.build(n.params, [graph.nodes[r.src].ttype for r in n.inputs])
            except (RuntimeError, MemoryError, TypeError, OverflowError) as e:  # sizes torch cannot build
                err = _build_error(n, e)
                if err is None:
                    raise
                raise err from e
            if n.frozen:
                self.blocks[n.module].requires_grad_(False)
        for n in graph.nodes.values():
            if n.op == "call" and n.ema_of and n.module not in self.blocks:
                target = copy.deepcopy(self.blocks[graph.nodes[n.ema_of].module])  # starts equal to its source
                self.blocks[n.module] = target.requires_grad_(False)
        self._lower = Lowering(graph, self)

    # ------------------------------------------------------------------------------ programs
    def program_names(self) -> list[str]:
        """The programs this spec supports."""
        g = self.graph
        names = ["forward"]
        if energy_terms(g):
            names.append("energy")
        if g.objective:
            names.append("loss")
        if g.world_model:
            names += ["encode", "step"]
        if g.costs:
            names.append("cost")
        if any(n.kind == "actor" for n in g.nodes.values()):
            names.append("act")
        for lv in g.levels:
            names += [f"encode_{lv['name']}", f"step_{lv['name']}"]
        return names

    def program(self, name: str) -> fx.GraphModule:
        """The fx GraphModule of a program (built on first use). ``.code`` shows its source."""
        if name not in self._programs:
            if name not in self.program_names():
                raise SpecError(f"`{self.spec.name}` has no program `{name}`",
                                hint="programs here: " + ", ".join(self.program_names()))
            self._programs[name] = self._build(name)
            self._signatures[name] = [  # (placeholder, per-sample shape) of each variable input
                (p, n.ttype.shape) for p in self.input_names(name)
                if (n := self.graph.nodes.get(p.replace("__", "/"))) is not None and n.is_var and n.ttype is not None]
        return self._programs[name]

    @paused_gc()  # lowering makes many objects, no garbage: see gc_pause
    def _build(self, name: str) -> fx.GraphModule:
        g, low = self.graph, self._lower
        calls = [n for n in g.nodes.values() if n.op == "call"]
        if name == "forward":
            terms = {}
            if energy_terms(g):
                terms["energy"] = (energy_terms(g), "sum")
            if g.objective:
                terms["loss"] = (g.objective, "loss")
            return low.program({n.name: n.name for n in calls}, terms=terms, name="Forward")
        if name == "energy":
            return low.program({}, terms={"energy": (energy_terms(g), "sum")}, name="Energy")
        if name == "loss":
            return low.program({}, terms={"loss": (g.objective, "loss")}, name="Loss")
        if name == "cost":
            cut = {}
            if g.world_model:
                cut = {g.world_model["predictor"]: "state", g.world_model["encoder"]: "state"}
            terms = {"cost": (g.costs, "sum")}
            return low.program({t.name: t.node for t in g.costs}, cut=cut, terms=terms, name="Cost")
        if name == "act":
            actors = [n for n in calls if n.kind == "actor"]
            cut = {g.world_model["encoder"]: "state"} if g.world_model else {}
            outs = {"action": actors[0].name}
            outs.update({n.name: n.name for n in actors[1:]})
            return low.program(outs, cut=cut, name="Act")
        level = name.partition("_")[2]
        wm = g.world_model if not level else next(lv for lv in g.levels if lv["name"] == level)
        if name.startswith("encode"):
            return low.program({"state": wm["encoder"]}, name="Encode")
        if name.startswith("step"):
            return low.program({"state": wm["predictor"]}, cut={wm["encoder"]: "state"}, name="Step")
        raise SpecError(f"unknown program `{name}`")

    def code(self, name: str = "forward") -> str:
        """Generated Python source of a program."""
        return self.program(name).code.strip() + "\n"

    # ------------------------------------------------------------------------------- calling
    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run program ``name`` on keyword inputs; failures name the block and its spec line."""
        prog = self.program(name)
        batch = None
        for key, shape in self._signatures[name]:  # mis-shaped inputs would broadcast silently
            v = inputs.get(key)
            if v is None or not isinstance(v, torch.Tensor) or v.dim() == 0 or v.shape[1:] != shape or \
                    (batch is not None and v.shape[0] != batch):
                raise self._locate(name, prog, inputs, ValueError("bad input")) from None
            batch = v.shape[0]
        try:  # the generated code itself, without a second nn.Module call (~2% of a small step)
            return prog.forward(**inputs)
        except Exception as e:  # re-raised with the block's name and location; never swallowed
            raise self._locate(name, prog, inputs, e) from e

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """All named outputs: every block's tensor, ``energy`` (B,) and ``loss`` (scalar)."""
        return self.run("forward", inputs)

    def energy(self, **inputs: torch.Tensor) -> torch.Tensor:
        """E(x, y, z) per sample, shape (B,)."""
        return self.run("energy", inputs)["energy"]

    def loss(self, **inputs: torch.Tensor) -> torch.Tensor:
        """The training objective (scalar)."""
        return self.run("loss", inputs)["loss"]

    def encode(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.run("encode", inputs)

    def step(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.run("step", inputs)

    def cost(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.run("cost", inputs)

    def act(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.run("act", inputs)

    def input_names(self, name: str = "forward") -> list[str]:
        """Placeholder names of a program, in order."""
        return [n.target for n in self.program(name).graph.nodes if n.op == "placeholder"]

    def example_inputs(self, batch: int = 4, name: str = "forward", device=None) -> dict[str, torch.Tensor]:
        """Random inputs of the right shapes for a program (long inputs are valid indices)."""
        g = self.graph
        out = {}
        for p in self.input_names(name):
            node = g.nodes.get(p.replace("__", "/"))
            if node is None:  # a cut placeholder such as "state"
                level = name.partition("_")[2]  # step_<level> takes that level's state
                wm = next((lv for lv in g.levels if lv["name"] == level), None) or g.world_model or {}
                src = g.nodes[wm.get("encoder") or next(iter(g.nodes))]
                t = src.ttype
            else:
                t = node.ttype
            if t.dtype == "long":
                hi = _index_range(g, node)
                out[p] = torch.stack([torch.randperm(hi, device=device)[: t.shape[-1]] for _ in range(batch)]) \
                    if len(t.shape) == 1 else torch.randint(0, hi, (batch, *t.shape), device=device)
            elif t.dtype == "bool":
                out[p] = torch.rand(batch, *t.shape, device=device) > 0.5
            else:
                out[p] = torch.randn(batch, *t.shape, device=device)
                if node is not None and node.op == "action" and node.decl.bounds:
                    lo, hi = node.decl.bounds
                    out[p] = out[p].clamp(lo, hi)
        return out

    def _locate(self, name: str, prog: fx.GraphModule, inputs: dict, err: Exception) -> Exception:
        if isinstance(err, BlockRuntimeError):
            return err
        want = self.input_names(name)
        missing = [w for w in want if w not in inputs]
        extra = [k for k in inputs if k not in want]
        if missing or extra:
            msg = f"program `{name}` of `{self.spec.name}` takes inputs ({', '.join(want)})"
            if missing:
                msg += f"; missing: {', '.join(missing)}"
            if extra:
                msg += f"; unexpected: {', '.join(extra)}"
            return BlockRuntimeError(msg)
        batches = {}
        for p in want:
            node = self.graph.nodes.get(p.replace("__", "/"))
            v = inputs[p]
            if not isinstance(v, torch.Tensor):
                return BlockRuntimeError(f"input `{p}` of program `{name}` must be a torch.Tensor, got {type(v).__name__}")
            if v.dim() == 0:
                return BlockRuntimeError(f"input `{p}` of program `{name}` has no batch dim (a batch of one is `{p}[None]`)")
            if node is not None and node.ttype is not None and tuple(v.shape[1:]) != node.ttype.shape:
                unbatched = f" (no batch dim? a batch of one is `{p}[None]`)" if tuple(v.shape) == node.ttype.shape else ""
                return BlockRuntimeError(f"{node.loc}: input `{p}` should be {node.ttype}, got {list(v.shape)}{unbatched}")
            batches[p] = v.shape[0] if v.dim() else None
        if len(set(batches.values())) > 1:  # every input carries the same batch B
            return BlockRuntimeError(f"program `{name}` of `{self.spec.name}`: inputs have different batch sizes ("
                                     + ", ".join(f"`{k}`: {b}" for k, b in batches.items()) + ")")
        failing = failing_block(prog, inputs)
        if failing is not None:
            n = self.graph.nodes[failing]
            return BlockRuntimeError(f"{n.loc}: block `{n.name}` ({n.kind}.{n.type}) failed in program `{name}`: "
                                     f"{type(err).__name__}: {err}")
        return BlockRuntimeError(f"program `{name}` of `{self.spec.name}` failed: {type(err).__name__}: {err}")

    # ---------------------------------------------------------------------------------- EMA
    def ema_pairs(self) -> list[tuple[str, str, Any]]:
        """(target module, source module, EmaParams) for every EMA target."""
        g = self.graph
        seen, out = set(), []
        for n in g.nodes.values():
            if n.op == "call" and n.ema_of and n.module not in seen:
                seen.add(n.module)
                out.append((n.module, g.nodes[n.ema_of].module, n.ema))
        return out

    @torch.no_grad()
    def update_ema(self, progress: float) -> dict[str, float]:
        """target <- m * target + (1 - m) * source, m from each target's schedule at ``progress``
        (fraction of training done, 0..1). Returns the momentum used per target."""
        if self._ema_items is None:  # gathered once: walking modules each step costs as much as the update
            b = self.blocks
            self._ema_items = [(tgt, ema, list(b[tgt].parameters()), list(b[src].parameters()),
                                list(b[tgt].buffers()), list(b[src].buffers())) for tgt, src, ema in self.ema_pairs()]
        used = {}
        for tgt, ema, tp, sp, tb, sb in self._ema_items:
            m = ema_momentum(ema.schedule, *ema.range(), progress)
            torch._foreach_lerp_(tp, sp, 1.0 - m)
            for bt, bs in zip(tb, sb):  # running statistics follow the source exactly
                bt.copy_(bs)
            used[tgt] = m
        return used

    def _apply(self, fn, *args, **kwargs):
        self._ema_items = None  # .to()/.cuda() may replace tensors; gather them again
        return super()._apply(fn, *args, **kwargs)

    # ---------------------------------------------------------------------------------- info
    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def summary(self) -> list[dict[str, Any]]:
        """One row per node: name, kind.type, output shape, parameter count (0 for shared)."""
        rows = []
        for n in self.graph.topo():
            owner = n.op == "call" and n.module == n.name.replace("/", "__")
            params = sum(p.numel() for p in self.blocks[n.module].parameters()) if owner else 0
            what = n.op if n.op != "call" else f"{n.kind}.{n.type}"
            rel = f"shares {n.share_of}" if n.share_of else f"ema of {n.ema_of}" if n.ema_of else ""
            rows.append({"name": n.name, "what": what, "shape": str(n.ttype), "params": params, "note": rel})
        return rows

    def _repr_svg_(self) -> str | None:
        """The architecture diagram, inline in Jupyter (None without graphviz's `dot`)."""
        from ..diagrams import repr_svg
        return repr_svg(self)


def _build_error(n, e: Exception) -> SpecError | None:
    """A block that failed to build, named and located: memory it cannot get (`hidden: [1000000000]`),
    or sizes whose product overflows torch's int64 (TypeError "Overflow when unpacking long long").
    None for any other TypeError: a bug in the block's code, which goes up unchanged."""
    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    overflow = "overflow" in f"{type(e).__name__} {why}".lower()
    if isinstance(e, TypeError) and not overflow:
        return None
    if overflow:
        return SpecError(f"`{n.name}` ({n.kind}.{n.type}) is too big to build: {why}", n.loc,
                         "its sizes (or their product, the flattened input) overflow torch; reduce them")
    return SpecError(f"`{n.name}` ({n.kind}.{n.type}) could not be built: {why}", n.loc,
                     "its sizes ask for more memory than this machine has; reduce them"
                     if "alloc" in why.lower() else "check its `with:` parameters")


def ema_momentum(schedule: str, m0: float, m1: float, progress: float) -> float:
    """Momentum at ``progress`` in [0, 1]: linear (I-JEPA) or cosine (BYOL) from m0 to m1."""
    t = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return m0
    if schedule == "cosine":
        return m1 - (m1 - m0) * (math.cos(math.pi * t) + 1) / 2
    return m0 + (m1 - m0) * t


def _index_range(g: Graph, node) -> int:
    """Upper bound for random index inputs: the token count of the blocks that take them."""
    bounds = _index_bounds(g, node) if node is not None else []
    if bounds:
        return min(bounds)
    for succ in g.consumers(node.name) if node is not None else []:
        for r in g.nodes[succ].inputs:
            t = g.nodes[r.src].ttype
            if t is not None and t.dtype == "float" and len(t.shape) >= 1:
                return t.shape[0] if len(t.shape) == 2 else t.shape[-1]
    return node.ttype.shape[-1] if node is not None else 1


def _index_bounds(g: Graph, node) -> list[int]:
    """What the blocks taking index input ``node`` accept (``BlockType.index_bound``), through ports."""
    out = []
    for succ in g.consumers(node.name):
        n = g.nodes[succ]
        if n.op == "port":
            out += _index_bounds(g, n)
        elif n.block is not None:
            ins = [g.nodes[r.src].ttype for r in n.inputs]
            out += [b for i, r in enumerate(n.inputs) if r.src == node.name
                    for b in [n.block.index_bound(n.params, ins, i)] if b is not None]
    return out


@paused_gc()  # compile time stays linear in the spec size: see gc_pause
def compile(spec: Spec | str | Path, search_path: list[str] | None = None, device: str | torch.device | None = None,
            seed: int | None = None) -> CompiledModel:
    """Validate ``spec`` (a :class:`Spec` or a path), infer shapes, and build the model.

    Raises :class:`SpecError` with located diagnostics. Warnings (unused blocks) are logged
    and kept in ``model.graph.warnings``.

    Example::

        model = jg.compile("specs/seed_world_model.yaml")
        out = model(**model.example_inputs(8))
    """
    graph = check(spec, search_path)
    if seed is not None:
        torch.manual_seed(seed)
    model = CompiledModel(graph)
    return model.to(device) if device is not None else model
