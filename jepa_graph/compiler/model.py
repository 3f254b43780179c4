"""The compiled model: one nn.Module holding every block's weights, and the programs of its
table (:mod:`.programs`), each lowered once (:mod:`.lower`) and cached by name.

Example::

    model = jg.compile("specs/two_rooms.yaml")
    out = model(x=x, x_next=x1, a=a, z=z)        # dict: every block output, "energy", "loss"
    s = model.encode(x=x)["state"]               # (B, state)
    s1 = model.step(state=s, a=a, z=z)["state"]  # one world-model step
    ss = model.rollout(state=s, a=a_seq, z=z_seq)["states"]  # (B, H, state): H steps at once
    model.update_ema(progress=0.3)               # EMA targets follow their momentum schedule
"""
from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.errors import BlockRuntimeError, Diagnostic, SpecError
from ..core.gc_pause import paused_gc
from .graph import Graph, module_key
from .lower import Lowering, Rollout
from .programs import Arg, Program, fx_name, node_name, signature, table
from ..runtime.inputs import InputError, input_problem
from ..runtime.locate import culprit
from .pipeline import check
from ..frontend.spec import Spec

log = logging.getLogger(__name__)


class CompiledModel(nn.Module):
    """A JEPA compiled from a spec. ``blocks`` holds one submodule per weight set."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.spec: Spec = graph.spec
        self.blocks = nn.ModuleDict()
        self.programs: dict[str, Program] = table(graph)  # the spec's programs, by name
        self._declared: dict[str, Program] = dict(self.programs)  # and those walks declare (training...)
        self._programs: dict[str, nn.Module] = {}  # the one cache of lowered programs
        self._signatures: dict[str, tuple[Arg, ...]] = {}
        self._fast: dict[str, tuple] = {}  # per program: the module, input aliases and what run() checks
        self._ema_items: list | None = None
        for n in graph.topo():
            if n.op != "call" or n.module in self.blocks:
                continue
            if n.ema_of:
                continue  # built after its source
            _check_key(self.blocks, n)
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
                _check_key(self.blocks, n)
                target = copy.deepcopy(self.blocks[graph.nodes[n.ema_of].module])  # starts equal to its source
                self.blocks[n.module] = target.requires_grad_(False)
        self._lower = Lowering(graph, self)

    # ------------------------------------------------------------------------------ programs
    def program_names(self) -> list[str]:
        """The programs this spec supports (its table: :func:`.programs.table`)."""
        return list(self.programs)

    def declaration(self, name: str | Program) -> Program:
        """The :class:`Program` behind ``name``; a Program is declared here (once per name)."""
        if isinstance(name, Program):
            known = self._declared.setdefault(name.name, name)
            if known != name:
                raise ValueError(f"program `{name.name}` is declared twice, differently")
            return known
        if name not in self._declared:
            raise SpecError(f"`{self.spec.name}` has no program `{name}`",
                            hint="programs here: " + ", ".join(self.program_names()))
        return self._declared[name]

    def program(self, name: str | Program) -> nn.Module:
        """The module of a program (lowered on first use, then cached): an fx GraphModule, or
        a :class:`~.lower.Rollout` of one. ``.code`` shows its source. ``name`` is a table entry
        or a :class:`Program` a walk declares (e.g. the training step)."""
        key = name if isinstance(name, str) else name.name
        prog = self._programs.get(key)
        if prog is None or not isinstance(name, str):
            p = self.declaration(name)
            if prog is None:
                prog = self._programs[key] = self._build(p)
                self._fast_check(key)
        return prog

    @paused_gc()  # lowering makes many objects, no garbage: see gc_pause
    def _build(self, p: Program) -> nn.Module:
        if p.unroll is not None:
            return Rollout(self.program(p.unroll), tuple(fx_name(v) for v in p.level.steps))
        return self._lower.build(p)

    def signature(self, name: str | Program) -> tuple[Arg, ...]:
        """A program's inputs as data (placeholder name, per-sample type, spec location), in order."""
        key = name if isinstance(name, str) else name.name
        if key not in self._signatures:
            self._signatures[key] = signature(self.graph, self.declaration(name))
        return self._signatures[key]

    def code(self, name: str = "forward") -> str:
        """Generated Python source of a program."""
        return self.program(name).code.strip() + "\n"

    # ------------------------------------------------------------------------------- calling
    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run program ``name`` on keyword inputs. Inputs that do not fit are an :class:`InputError`
        at their declaration; a block that fails is named with its spec line."""
        fast = self._fast.get(name)
        if fast is None:
            self.program(name)  # lowered once; what the loop below checks comes with it
            fast = self._fast[name]
        prog, alias, checks, accepted = fast
        if alias:  # an input named like a Python keyword (`lambda`) may be passed by its spec name
            inputs = {alias.get(k, k): v for k, v in inputs.items()}
        seen: list | None = []  # each input's shape and dtype: checked again only when they change
        for check in checks:
            v = inputs.get(check[0])
            if not isinstance(v, torch.Tensor):
                seen = None
                break
            seen += (v.shape, v.dtype)
        if seen is None or seen != accepted[0]:
            self._check_run_inputs(name, inputs, checks)
            accepted[0] = seen
        try:  # the generated code itself, without a second nn.Module call (~2% of a small step)
            return prog.forward(**inputs)
        except Exception as e:  # re-raised with the block's name and location; never swallowed
            raise self._locate(name, prog, inputs, e) from e

    def _check_run_inputs(self, name: str, inputs: dict, checks: tuple) -> None:
        """Per-sample shapes, dtypes and one batch size (mis-shaped inputs would broadcast silently);
        the located :class:`InputError` when they do not fit."""
        batch = None
        for key, lead, shape, dtype in checks:
            v = inputs.get(key)
            if not isinstance(v, torch.Tensor) or (s := v.shape)[lead:] != shape or len(s) < lead or \
                    (dtype is not None and v.dtype is not dtype) or (batch is not None and s[0] != batch):
                self.check_inputs(inputs, name)  # the located message; it raises
                break
            batch = s[0]

    def _fast_check(self, name: str) -> tuple:
        """(program, spec name -> placeholder where they differ, per input (key, leading dims,
        per-sample shape, dtype or None), and the shapes and dtypes last accepted): what :meth:`run`
        needs on every call, in one lookup."""
        w = self._weight()
        dtypes = {"float": w.dtype if w is not None else None, "long": torch.int64, "bool": torch.bool}
        sig = self.signature(name)
        checks = tuple((a.name, 2 if a.steps else 1, torch.Size(a.ttype.shape), dtypes.get(a.ttype.dtype))
                       for a in sig if a.ttype is not None)
        alias = {node_name(a.name): a.name for a in sig if node_name(a.name) != a.name and "/" not in node_name(a.name)}
        self._fast[name] = (self._programs[name], alias, checks, [None])  # [None]: no inputs accepted yet
        return self._fast[name]

    def _weight(self) -> torch.Tensor | None:
        """A floating parameter: the dtype and device float inputs must have (None: no weights)."""
        return next((p for p in self.parameters() if p.is_floating_point()), None)

    def input_problem(self, inputs: dict[str, Any], args: Any = "forward", *, device: bool = True,
                      unexpected: bool = False) -> Diagnostic | None:
        """The first way ``inputs`` do not fit ``args`` (a program, by name or declaration, or :class:`Arg` s),
        located at the input's declaration (:func:`jepa_graph.runtime.inputs.input_problem`)."""
        named = isinstance(args, (str, Program))
        name = args.name if isinstance(args, Program) else args
        return input_problem(self.signature(args) if named else args, inputs, weights=self._weight(),
                             device=device, owner=self.spec.name,
                             unexpected=f"program `{name}` of `{self.spec.name}`" if unexpected and named else None)

    def check_inputs(self, inputs: dict[str, Any], args: Any = "forward", *, device: bool = True) -> None:
        """Raise :class:`InputError` unless ``inputs`` fit program ``args`` exactly (no other keys)."""
        bad = self.input_problem(inputs, args, device=device, unexpected=isinstance(args, (str, Program)))
        if bad is not None:
            raise InputError(bad)

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

    def rollout(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """H world-model steps at once: ``state`` (B, *S), action/latent (B, H, ...) -> ``states`` (B, H, *S)."""
        return self.run("rollout", inputs)

    def cost(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.run("cost", inputs)

    def act(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.run("act", inputs)

    def input_names(self, name: str | Program = "forward") -> list[str]:
        """Placeholder names of a program, in order."""
        return [a.name for a in self.signature(name)]

    def example_inputs(self, batch: int = 4, name: str = "forward", device=None,
                       horizon: int = 3) -> dict[str, torch.Tensor]:
        """Random inputs of the right shapes for a program (long inputs are valid indices; a
        rollout's step inputs have ``horizon`` steps). The program is built here, so a
        ``torch.compile`` that follows traces the call alone."""
        self.program(name)
        g = self.graph
        w = self._weight()
        out = {}
        for a in self.signature(name):
            node, t = g.nodes[a.node], a.ttype
            lead = (batch, horizon) if a.steps else (batch,)
            if t.dtype == "long":
                hi = _index_range(g, node if node.is_var else None)
                v = torch.stack([torch.randperm(hi, device=device)[: t.shape[-1]] for _ in range(math.prod(lead))]) \
                    if len(t.shape) == 1 else torch.randint(0, hi, (*lead, *t.shape), device=device)
                out[a.name] = v.reshape(*lead, *t.shape)
            elif t.dtype == "bool":
                out[a.name] = torch.rand(*lead, *t.shape, device=device) > 0.5
            else:
                out[a.name] = torch.randn(*lead, *t.shape, device=device, dtype=w.dtype if w is not None else None)
                if node.op == "action" and node.decl.bounds:
                    lo, hi = node.decl.bounds
                    out[a.name] = out[a.name].clamp(lo, hi)
        return out

    def _locate(self, name: str, prog: nn.Module, inputs: dict, err: Exception) -> Exception:
        """``err`` from running program ``name``: bad inputs (the input check's message), else the
        block that raised it, with its spec line."""
        if isinstance(err, (BlockRuntimeError, SpecError)):
            return err
        bad = self.input_problem(inputs, name, unexpected=True)
        if bad is not None:
            return InputError(bad)
        where, whole = f"in program `{name}`", f"program `{name}` of `{self.spec.name}`"
        if isinstance(prog, Rollout):  # the step (then the block) that raised
            found = prog.failing_step(inputs)
            if found is None:
                return BlockRuntimeError(f"{whole} failed: {type(err).__name__}: {err}")
            prog, inputs = prog.step, found[1]
            where += f" at step {found[0] + 1}"
        return culprit(prog, inputs, err, where, whole, self.graph.nodes)

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
        out = super()._apply(fn, *args, **kwargs)
        for name in list(self._fast):  # .to(dtype) changes the dtype inputs must have; eagerly, not in a trace
            self._fast_check(name)
        return out

    # ---------------------------------------------------------------------------------- info
    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def summary(self) -> list[dict[str, Any]]:
        """One row per node: name, kind.type, output shape, parameter count (0 for shared)."""
        rows = []
        for n in self.graph.topo():
            owner = n.op == "call" and n.module == module_key(n.name)
            params = sum(p.numel() for p in self.blocks[n.module].parameters()) if owner else 0
            what = n.op if n.op != "call" else f"{n.kind}.{n.type}"
            rel = f"shares {n.share_of}" if n.share_of else f"ema of {n.ema_of}" if n.ema_of else ""
            rows.append({"name": n.name, "what": what, "shape": str(n.ttype), "params": params, "note": rel})
        return rows

    def _repr_svg_(self) -> str | None:
        """The architecture diagram, inline in Jupyter (None without graphviz's `dot`)."""
        from ..diagrams import repr_svg  # upward (pyproject's stated exception): only when a notebook shows it
        return repr_svg(self)


def _check_key(blocks: nn.ModuleDict, n) -> None:
    """A block whose name is an attribute of torch's ModuleDict (``keys``, ``forward``, ``train``,
    ...) cannot be stored under it: a located error instead of torch's KeyError."""
    if hasattr(blocks, n.module):
        raise SpecError(f"block name `{n.name}` is taken by torch (an attribute of nn.ModuleDict)", n.loc,
                        f"rename the block, e.g. `{n.name.rsplit('/', 1)[-1]}_block`")


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
