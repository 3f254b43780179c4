"""Sequences in a spec: blocks applied at every step, and the world model unrolled over actions.

Two block fields (checked here, lowered in :mod:`.lower`), for training world models over
windows of ``H`` steps (a source yields ``x_seq`` [H+1, obs] and ``a_seq`` [H, act]):

``each_step: true``
    The block runs at every step of its inputs' leading (time) dim, which is folded into the
    batch: ``[B, T, *in]`` -> ``[B * T, *in]`` -> the block -> ``[B, T, *out]``. Its shape rule sees
    one step (``[*in]``), so a typed block is built for one step, and ``share: enc`` /
    ``ema_of: enc`` apply ``enc``'s weights (or its momentum copy) to every step. A regulariser
    sees the ``B * T`` rows as one batch (VICReg over every state of a window); a per-sample
    number (an energy, a cost) is averaged over the steps.

``unroll: pred`` (predictors)
    The world model's step program (``state -> pred``, everything between its encoder and its
    predictor) run ``H`` times, sharing its weights: ``in: [states, a_seq(, z_seq)]`` with one
    sequence per step variable of the world model (its action, then its latent), each
    ``[H, ...]``, gives the predicted states ``[H, *S]``, row ``t`` the state after step t + 1.
    ``with: {mode: unrolled}`` (the default) starts from ``states`` (the state ``[*S]``, or step 0
    of a sequence ``[T, *S]``) and feeds each prediction back; ``mode: teacher`` takes step t from
    the true state ``states[t]`` (a sequence of at least H states). ``pred`` must be the predictor
    of ``world_model`` or of a level; its step program may read the state, the action and the
    latent only.

This module imports no torch: checking a spec stays torch-free.
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..core.errors import Diagnostic, article, did_you_mean, in_jepa
from ..core.registry import BlockType
from ..core.tensors import SCALAR, ShapeMismatch, TType
from ..frontend.spec import UnrollParams
from .graph import Graph, Node, WorldModel, field_of

UNROLL = "unroll"  # the type name unrolled predictors show under (messages, summaries, diagrams)


def per_step(n: Node) -> bool:
    """Whether ``n`` is a block applied at every step of its inputs (``each_step: true``)."""
    return n.op == "call" and bool(field_of(n.decl, "each_step", False))


def unroll_ref(n: Node) -> str | None:
    """The predictor an unrolled predictor names (``unroll: pred``), as written; None otherwise."""
    return field_of(n.decl, "unroll") if n.op == "call" else None


def _resolve(g: Graph, n: Node, ref: str) -> Node | None:
    """The node ``ref`` names where ``n`` is written: a block of its scope, or a composite's output."""
    pre = f"{n.scope}/" if n.scope else ""
    head, _, tail = ref.partition(".")
    if tail:
        name = g.composites.get(pre + head, {}).get("outputs", {}).get(tail)
        return g.nodes.get(name) if name else None
    return g.nodes.get(pre + ref)


def unrolled(g: Graph, n: Node) -> WorldModel | None:
    """The world model (or level) whose predictor the unrolled predictor ``n`` runs."""
    ref = unroll_ref(n)
    target = _resolve(g, n, ref) if ref else None
    if target is None:
        return None
    return next((wm for wm in _world_models(g) if wm.predictor == target.name), None)


def _world_models(g: Graph) -> list[WorldModel]:
    return ([g.world_model] if g.world_model else []) + list(g.levels)


def step_program(g: Graph, wm: WorldModel) -> list[Node]:
    """The nodes a world-model step computes, in order: the predictor's ancestors back to the
    encoder (whose output is the state), variables and the encoder left out."""
    keep = g.ancestors([wm.predictor], cut={wm.encoder})
    return [m for m in g.topo() if m.name in keep and m.name != wm.encoder and not m.is_var]


def needs(g: Graph, n: Node) -> tuple[str, ...]:
    """Nodes whose types an unrolled predictor's shape rule reads besides its inputs."""
    wm = unrolled(g, n) if n.type == UNROLL else None
    return (wm.encoder, wm.predictor) if wm is not None else ()


# ------------------------------------------------------------------------------------- checks
def check_sequences(g: Graph, at, errors: list[Diagnostic]) -> None:
    """Unrolled predictors name a world model's predictor, take one sequence per step variable,
    and run a step program that reads nothing else; nothing copies an unrolled predictor."""
    for n in g.nodes.values():
        rel = n.share_of or n.ema_of
        if rel and unroll_ref(g.nodes[rel]) is not None:
            verb = "shares" if n.share_of else "is an EMA target of"
            errors.append(Diagnostic(f"`{n.name}` {verb} `{rel}`, an unrolled predictor, which has no weights of "
                                     "its own", n.at("share" if n.share_of else "ema_of", key=False),
                                     f"name the predictor `{rel}` unrolls instead "
                                     f"(`unroll: {unroll_ref(g.nodes[rel])}` for another unrolled use)"))
        ref = unroll_ref(n)
        if ref is not None:
            _check_unroll(g, n, ref, errors)


def _check_unroll(g: Graph, n: Node, ref: str, errors: list[Diagnostic]) -> None:
    n.type = UNROLL
    jepa = in_jepa(n.loc)
    try:
        n.params = UnrollParams.model_validate(n.raw_params)
    except ValidationError as e:
        err = e.errors()[0]
        key = err["loc"][0] if err["loc"] else "with"
        usage = "write `mode=unrolled` or `mode=teacher`" if jepa else "write `mode: unrolled` or `mode: teacher`"
        msg = (f"unrolled predictor `{n.name}` has no parameter `{key}`" if err["type"] == "extra_forbidden" else
               f"unrolled predictor `{n.name}`: bad `{key}`: {err['msg'][:1].lower() + err['msg'][1:]}")
        hint = did_you_mean(str(key), list(UnrollParams.model_fields), "parameters") \
            if err["type"] == "extra_forbidden" else usage
        errors.append(Diagnostic(msg, n.at("with", *err["loc"][:1], key=err["type"] == "extra_forbidden"), hint))
        return
    target, wms = _resolve(g, n, ref), _world_models(g)
    preds = [wm.predictor for wm in wms]
    where = n.at("unroll", key=False)
    if target is None or target.name not in preds:
        got = (f"`{ref}` is not defined" if target is None else
               f"`{ref}` is {article(target.kind if target.op == 'call' else target.op)}"
               + (" that no world model steps with" if target.kind == "predictor" else ""))
        hint = (did_you_mean(ref, [p.rsplit("/", 1)[-1] for p in preds], "world-model predictors") if preds else
                "declare the world model it steps: `world_model: {encoder: enc, predictor: pred, action: a}`")
        errors.append(Diagnostic(f"`{n.name}` unrolls `{ref}`, but it must name the predictor of the world model "
                                 f"or of a level; {got}", where, hint))
        return
    wm = next(w for w in wms if w.predictor == target.name)
    if n.name in g.ancestors([wm.predictor, wm.encoder]):
        errors.append(Diagnostic(f"cycle: `{n.name}` unrolls `{target.name}`, which depends on `{n.name}`", where,
                                 f"the step program (encoder `{wm.encoder}` to predictor `{wm.predictor}`) cannot "
                                 "read its own unrolling"))
        return
    want = 1 + len(wm.steps)
    if len(n.inputs) != want:
        seqs = ", ".join(f"`{v}` sequence [H, ...]" for v in wm.steps)
        order = ", ".join(["states"] + [f"{v}_seq" for v in wm.steps])
        errors.append(Diagnostic(f"`{n.name}` unrolls `{target.name}` ({wm.what}) and takes {want} input(s): the "
                                 f"states, then one {seqs or 'sequence per step variable'}; got {len(n.inputs)}",
                                 n.at("in", key=True), f"write `in: [{order}]`" if not jepa else f"write `({order})`"))
        return
    other = [m for m in g.ancestors([wm.predictor], cut={wm.encoder}) if g.nodes[m].is_var and m not in wm.steps]
    if other:
        m = g.nodes[other[0]]
        errors.append(Diagnostic(f"`{n.name}` unrolls `{target.name}`, whose step reads {m.op} `{m.name}`; an unrolled "
                                 "step is fed the state, the action and the latent only", where,
                                 f"feed `{m.name}` through the world model's encoder, or declare it the world "
                                 "model's action or latent", related=[(f"`{m.name}`", m.loc)]))
        return
    inner = [m for m in step_program(g, wm) if unroll_ref(m) is not None]
    if inner:
        errors.append(Diagnostic(f"`{n.name}` unrolls `{target.name}`, whose step program holds the unrolled "
                                 f"predictor `{inner[0].name}`", where, "unroll a one-step predictor"))


def used_by_sequences(g: Graph) -> list[str]:
    """Blocks whose weights an each-step or unrolled block applies: used even if nothing reads them."""
    out = []
    for n in g.nodes.values():
        if per_step(n) and n.share_of:
            out.append(n.share_of)
        wm = unrolled(g, n) if unroll_ref(n) is not None else None
        if wm is not None:
            out += [wm.encoder, wm.predictor]
    return out


# -------------------------------------------------------------------------------------- shapes
def step_types(ins: list[TType]) -> tuple[int, list[TType]]:
    """(T, each input's type at one step) for inputs ``[B, T, ...]`` that agree on T."""
    steps = None
    for i, t in enumerate(ins):
        if not t.batched or not t.shape:
            raise ShapeMismatch(f"is applied at each step, so it needs a sequence [B, T, ...] on input {i}", i,
                                "[B, T, ...]", "`each_step: true` folds the leading (time) dim of every input "
                                "into the batch: give each input one")
        if steps is None:
            steps = t.shape[0]
        elif t.shape[0] != steps:
            raise ShapeMismatch(f"is applied at each of the {steps} steps of input 0, but input {i}", i,
                                f"[B, {steps}, ...]", "every input needs the same number of steps")
    return steps or 0, [t.with_shape(*t.shape[1:]) for t in ins]


class PerStep(BlockType):
    """A block type applied at every step: its shape rule and builder see one step."""

    def __init__(self, inner: BlockType):
        self.inner = inner
        self.kind, self.name, self.Params = inner.kind, inner.name, inner.Params
        self.arity, self.input_names = inner.arity, inner.input_names

    def infer(self, p: Any, ins: list[TType]) -> TType:
        steps, one = step_types(ins)
        out = self.inner.infer(p, one)
        if not out.batched:
            return out  # a regulariser: one number for the B * T rows
        if out.shape == ():
            return SCALAR  # a per-sample number at each step, averaged over the steps
        return out.with_shape(steps, *out.shape)

    def build(self, p: Any, ins: list[TType]) -> Any:
        return self.inner.build(p, step_types(ins)[1])

    def index_bound(self, p: Any, ins: list[TType], index: int) -> int | None:
        return self.inner.index_bound(p, step_types(ins)[1], index)


class Unrolled(BlockType):
    """The world model's step, unrolled over action sequences (the weights are its predictor's)."""

    kind, name, Params = "predictor", UNROLL, UnrollParams
    arity = (2, None)

    def __init__(self, g: Graph, n: Node):
        self.g, self.n = g, n
        self.wm = unrolled(g, n)
        self.input_names = ("states",) + tuple(f"{v}_seq" for v in self.wm.steps) if self.wm else ("states",)

    def infer(self, p: UnrollParams, ins: list[TType]) -> TType:
        g, wm = self.g, self.wm
        state = g.nodes[wm.encoder].ttype
        if state is None or g.nodes[wm.predictor].ttype != state:
            raise ShapeMismatch("cannot be typed until its world model's step is", None,
                                hint=f"fix predictor `{wm.predictor}` first: it must give the state")
        horizon = None
        for i, (var, t) in enumerate(zip(wm.steps, ins[1:]), 1):
            one = g.nodes[var].ttype
            if one is None:
                raise ShapeMismatch(f"cannot check input {i} until `{var}` has a type", i)
            if not t.batched or t.dtype != one.dtype or len(t.shape) != len(one.shape) + 1 or t.shape[1:] != one.shape:
                want = "[" + ", ".join(["B", "H", *map(str, one.shape)]) + "]"
                raise ShapeMismatch(f"takes one `{var}` {one} per step on input {i}, so {want}", i, want,
                                    f"a sequence of the world model's `{var}`")
            if horizon is not None and t.shape[0] != horizon:
                raise ShapeMismatch(f"unrolls {horizon} steps (input 1), but input {i}", i, f"[B, {horizon}, ...]",
                                    "every step sequence needs the same length H")
            horizon = t.shape[0]
        s, seq = ins[0], None
        dims = "[" + ", ".join(["B", "T", *map(str, state.shape)]) + "]"
        if s.batched and s.dtype == state.dtype and len(s.shape) == len(state.shape) + 1 and s.shape[1:] == state.shape:
            seq = s.shape[0]
        elif s != state:
            raise ShapeMismatch(f"starts from the state {state} (or a sequence of states {dims}) on input 0", 0,
                                f"{state} or {dims}", f"the world model's state is what encoder `{wm.encoder}` gives")
        if p.mode == "teacher" and (seq is None or seq < horizon):
            raise ShapeMismatch(f"is teacher-forced: step t starts from the true state t, so it needs at least the "
                                f"{horizon} states [B, {horizon}, ...] on input 0", 0, dims,
                                "pass the encoded sequence (e.g. the encoder applied at each step of x_seq)")
        return state.with_shape(horizon, *state.shape)

    def build(self, p: Any, ins: list[TType]) -> Any:
        from ..primitives.layers.sequence import Unrolled as Module  # torch: only when a model is built
        return Module(self.n.decl.unroll, p.mode)

