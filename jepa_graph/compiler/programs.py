"""The program table: every program a compiled model runs, declared once as data.

A :class:`Program` says what it returns (result key -> graph node), which nodes it cuts (each
becomes a placeholder: ``step`` takes the ``state`` where the encoder would run), which weighted
terms it sums, and the world model or level it belongs to. :func:`table` lists a graph's programs:

================== ==========================================================================
forward            every block output, plus ``energy`` (per sample) and ``loss`` (the objective)
energy             E(x, y, z) per sample: the objective's per-sample terms and latent penalties R(z)
loss               the training objective (a scalar): the weighted sum of all objective terms
encode             s = Enc(x) for the world model
step               s' = Pred(s, a, z): one world-model step
rollout            H steps of ``step``, batched: state (B, *S), a (B, H, *A), z (B, H, *Z)
                   -> ``states`` (B, H, *S); a world model with an action or a latent has one
cost               C(s) = sum_k w_k C_k(s, goal...): the planning cost of a state, per sample
act                a = Actor(s)
encode_L, step_L,  the same for each hierarchy level ``L``
rollout_L
================== ==========================================================================

Walks that need a program of their own declare it the same way (:func:`train_step`, the two
halves of a hoisted energy search in :mod:`jepa_graph.inference.latents`);
:meth:`~jepa_graph.compiler.model.CompiledModel.program` builds and caches each by name.
:func:`signature` reads a program's inputs off the graph without building it (placeholder name,
per-sample type, where it is declared): the input check (:mod:`jepa_graph.runtime.inputs`) reads
those. This module imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import Location
from ..core.tensors import TType
from .graph import SCALAR_KINDS, Graph, Term, WorldModel, fx_name, node_name  # noqa: F401 (fx_name, node_name: re-exported)


@dataclass(frozen=True)
class Arg:
    """One input of a program: its placeholder name, per-sample type and where it is declared.

    ``node`` is the graph node it stands for (the encoder, for a cut ``state``); ``steps``: a
    rollout takes one value per step, (B, H, *shape)."""

    name: str
    ttype: TType | None
    loc: Location | None
    node: str
    steps: bool = False

    def __str__(self) -> str:  # [B, 4], [B, H, 2], [B, 3] (long)
        t = self.ttype
        if t is None:
            return "[B, ...]"
        dims = ["B"] + (["H"] if self.steps else []) + [str(d) for d in t.shape]
        return "[" + ", ".join(dims) + "]" + ("" if t.dtype == "float" else f" ({t.dtype})")


@dataclass(frozen=True)
class Program:
    """A program, as data. ``outputs``: result key -> graph node; ``cut``: graph node ->
    placeholder; ``terms``: (result key, terms, "sum" per sample | "loss" scalar); ``level``: the
    world model (or level) an encode/step/rollout program runs; ``unroll``: a rollout's step
    program, repeated over H; ``title``: the generated module's class name."""

    name: str
    outputs: tuple[tuple[str, str], ...] = ()
    cut: tuple[tuple[str, str], ...] = ()
    terms: tuple[tuple[str, tuple[Term, ...], str], ...] = ()
    level: WorldModel | None = None
    unroll: str | None = None
    title: str = "Program"


def declare(name: str, outputs: dict[str, str], cut: dict[str, str] | None = None,
            terms: dict[str, tuple[list[Term], str]] | None = None, **kw) -> Program:
    """A :class:`Program` from plain dicts, e.g. ``declare("encode", {"state": "enc"})``."""
    return Program(name, tuple(outputs.items()), tuple((cut or {}).items()),
                   tuple((k, tuple(ts), mode) for k, (ts, mode) in (terms or {}).items()), **kw)


def energy_terms(g: Graph) -> list[Term]:
    """The objective's per-sample terms: E(x, y, z) without batch-level regularisers."""
    out = []
    for t in g.objective:
        n = g.nodes[t.node]
        if t.latent_reg or (n.kind in SCALAR_KINDS and n.ttype is not None and n.ttype.batched):
            out.append(t)
    return out


def table(g: Graph) -> dict[str, Program]:
    """The programs of ``g`` by name, in the order ``program_names()`` lists them."""
    calls = [n for n in g.nodes.values() if n.op == "call"]
    energy = energy_terms(g)
    wm = g.world_model
    out: list[Program] = []
    forward_terms = {}
    if energy:
        forward_terms["energy"] = (energy, "sum")
    if g.objective:
        forward_terms["loss"] = (g.objective, "loss")
    out.append(declare("forward", {n.name: n.name for n in calls}, terms=forward_terms, title="Forward"))
    if energy:
        out.append(declare("energy", {}, terms={"energy": (energy, "sum")}, title="Energy"))
    if g.objective:
        out.append(declare("loss", {}, terms={"loss": (g.objective, "loss")}, title="Loss"))
    if wm is not None:
        out += world_model_programs(wm)
    if g.costs:
        cut = {wm.predictor: "state", wm.encoder: "state"} if wm else {}
        out.append(declare("cost", {t.name: t.node for t in g.costs}, cut=cut,
                           terms={"cost": (g.costs, "sum")}, title="Cost"))
    actors = [n for n in calls if n.kind == "actor"]
    if actors:
        outs = {"action": actors[0].name, **{n.name: n.name for n in actors[1:]}}
        out.append(declare("act", outs, cut={wm.encoder: "state"} if wm else {}, title="Act"))
    for lv in g.levels:
        out += world_model_programs(lv)
    return {p.name: p for p in out}


def world_model_programs(wm: WorldModel) -> list[Program]:
    """``encode``, ``step`` and (with an action or latent to take per step) ``rollout`` of a world
    model; a level's carry its name: ``encode_high``."""
    suffix = f"_{wm.name}" if wm.name else ""
    state = {wm.encoder: "state"}
    out = [declare(f"encode{suffix}", {"state": wm.encoder}, level=wm, title="Encode"),
           declare(f"step{suffix}", {"state": wm.predictor}, cut=state, level=wm, title="Step")]
    if wm.steps:
        out.append(declare(f"rollout{suffix}", {"states": wm.predictor}, cut=state, level=wm,
                           unroll=f"step{suffix}", title="Rollout"))
    return out


def train_step(g: Graph, monitored: list[str]) -> Program:
    """What a training step runs: the objective (``loss``), each of its block terms
    (``term.<name>``) and the representations watched for collapse (``rep.<node>``)."""
    outputs = {f"term.{t.name}": t.node for t in g.objective if not t.latent_reg}
    outputs.update({f"rep.{n}": n for n in monitored})
    return declare("train_step", outputs, terms={"loss": (g.objective, "loss")}, title="TrainStep")


def signature(g: Graph, p: Program) -> tuple[Arg, ...]:
    """The inputs of ``p`` in placeholder order: the variables its outputs depend on and the
    placeholders of the nodes it cuts (what :class:`~jepa_graph.compiler.lower.Lowering` makes)."""
    cut = dict(p.cut)
    need = [n for _, n in p.outputs] + [t.node for _, ts, _ in p.terms for t in ts]
    keep = g.ancestors(need, cut=set(cut))
    steps = {fx_name(v) for v in p.level.steps} if p.unroll and p.level is not None else set()
    args: dict[str, Arg] = {}
    for n in g.topo():
        if n.name not in keep or not (n.name in cut or n.is_var):
            continue
        name = fx_name(cut.get(n.name, n.name))
        if name not in args:
            args[name] = Arg(name, n.ttype, n.loc, n.name, name in steps)
    return tuple(args.values())


def var_arg(g: Graph, name: str) -> Arg | None:
    """The :class:`Arg` of variable ``name`` (a placeholder name), outside any program; None if
    ``name`` is not a variable of ``g``."""
    n = g.nodes.get(node_name(name))
    return Arg(name, n.ttype, n.loc, n.name) if n is not None and n.is_var else None
