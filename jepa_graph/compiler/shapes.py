"""Static shape inference: one walk over the graph in topological order.

Variables get their declared shapes (named dims resolved); each call node validates its
``with:`` against its block type's ``Params`` and asks the type's shape rule for its output. A
mismatch names the block, the input, what was expected and what arrived from where::

    specs/x.yaml:12:5: error: `pred` (predictor.mlp) expects [B, 32] on input 1, `enc` gives [B, 64]

After the walk, the uses of shapes are checked: cost terms give one number per sample, a
world model's predictor gives the encoder's state, an actor gives the world model's action.
"""
from __future__ import annotations

from pydantic import ValidationError

from ..core.errors import Diagnostic, SpecError, did_you_mean, in_jepa
from .graph import Graph, Node, field_of
from ..core.registry import get_block
from .sequence import UNROLL, PerStep, Unrolled, needs, per_step, step_types, unroll_ref
from ..core.tensors import MAX_SIZE, ShapeMismatch, TType


def resolve_shape(n: Node, shape: list, errors: list[Diagnostic]) -> tuple[int, ...] | None:
    out = []
    for i, d in enumerate(shape):
        if isinstance(d, str):
            if d not in n.dims:
                errors.append(Diagnostic(f"unknown dim `{d}` in the shape of `{n.name}`", n.at("shape", i),
                                         did_you_mean(d, n.dims, "dims") + " (declare it under `dims:`)"))
                return None
            d = n.dims[d]
        if d < 1:
            errors.append(Diagnostic(f"shape of `{n.name}` has a non-positive size {d}", n.at("shape", i),
                                     "sizes are positive integers"))
            return None
        if d > MAX_SIZE:  # a composite's `with:` can set a dim past the spec's own bound
            errors.append(Diagnostic(f"shape of `{n.name}` has size {d}; sizes go up to {MAX_SIZE:,}", n.at("shape", i),
                                     "no tensor that large can be built; use a smaller size"))
            return None
        out.append(d)
    return tuple(out)


def infer_shapes(g: Graph) -> None:
    """Fill ``node.ttype``, ``node.params`` and ``node.block`` for every node, or raise SpecError."""
    errors: list[Diagnostic] = []
    done: set[str] = set()
    for n in g.topo():
        if n.name in done:
            continue
        need = needs(g, n)  # an unrolled predictor reads its world model's types: those go first
        if need:
            before = g.ancestors(list(need))
            for m in g.topo():
                if m.name in before and m.name not in done:
                    done.add(m.name)
                    _node(g, m, errors)
        done.add(n.name)
        _node(g, n, errors)
    _check_terms(g, errors)
    _check_latents(g, errors)
    _check_world_models(g, errors)
    _check_actors(g, errors)
    if errors:
        raise SpecError(errors)


def _node(g: Graph, n: Node, errors: list[Diagnostic]) -> None:
    upstream_ok = all(g.nodes[r.src].ttype is not None for r in n.inputs)
    if not upstream_ok and n.op != "call":
        return  # an upstream error was already reported
    try:
        if n.is_var:
            shape = resolve_shape(n, n.decl.shape, errors)
            if shape is not None:
                n.ttype = TType(shape, field_of(n.decl, "dtype", "float"))
        elif n.op == "port":
            _port(g, n, errors)
        else:
            _call(g, n, errors, upstream_ok)
    except SpecError as e:
        errors.extend(e.diagnostics)


def _port(g: Graph, n: Node, errors: list[Diagnostic]) -> None:
    shape = resolve_shape(n, n.decl.shape, errors)
    if shape is None:
        return
    want = TType(shape, n.decl.dtype)
    if not n.inputs:
        errors.append(Diagnostic(f"composite input `{n.name}` is not bound", n.loc, "pass it in the block's `in:`"))
        return
    src = g.nodes[n.inputs[0].src]
    if src.ttype != want:
        errors.append(Diagnostic(f"composite input `{n.name}` expects {want}, `{src.name}` gives {src.ttype}",
                                 n.inputs[0].loc or n.loc, "set the composite's dims with `with:` to match",
                                 related=[(f"`{n.name}` declared", n.loc), (f"`{src.name}`", src.loc)]))
        return
    n.ttype = want


def _call(g: Graph, n: Node, errors: list[Diagnostic], upstream_ok: bool = True) -> None:
    rel = n.ema_of or n.share_of
    owner = g.nodes[rel] if rel else None
    # an EMA target or shared use takes its owner's type: a misspelt type is reported once, at the owner's `type:`
    if n.type == UNROLL and unroll_ref(n) is not None:  # the world model's step, unrolled (sequence.py)
        block = Unrolled(g, n)
    else:
        block = get_block(n.kind, n.type or "", (owner or n).at("type", key=False))
    if per_step(n):  # applied at every step: the type's rules see one step
        block = PerStep(block)
    n.block = block
    if owner is not None and owner.params is not None:
        n.params = owner.params
    else:
        try:
            ctx = {"dims": n.dims}
            n.params = block.Params.model_validate(n.raw_params, context=ctx)
        except ValidationError as e:
            where = owner or n
            for err in e.errors():
                key = err["loc"][0] if err["loc"] else None
                kind = err["type"]
                if kind == "extra_forbidden":
                    fields = list(block.Params.model_fields)
                    msg = f"`{where.name}` ({n.kind}.{n.type}) has no parameter `{key}`"
                    hint = did_you_mean(str(key), fields, "parameters")
                    loc = where.at("with", key, key=True)
                elif kind == "missing":
                    msg = f"`{where.name}` ({n.kind}.{n.type}) needs parameter `{key}`"
                    hint = f"add `with: {{{key}: ...}}`"
                    loc = where.at("with", key=True) if "params" in (where.decl.model_fields_set if where.decl else ()) else where.loc
                else:
                    why = err['msg'].removeprefix('Value error, ')
                    msg = f"`{where.name}` ({n.kind}.{n.type}) parameter `{key}`: {why[:1].lower() + why[1:]}"
                    hint = _NUMBER_HINTS.get(kind) or _param_hint(block)
                    if kind == "literal_error":  # `act: relux`: the allowed values are in the message already
                        choices = [c.strip(" '") for c in err.get("ctx", {}).get("expected", "").replace(" or ", ", ").split(",")]
                        hint = did_you_mean(str(err.get("input")), [c for c in choices if c], "values")
                    loc = where.at("with", *err["loc"]) if key is not None else where.at("with")
                errors.append(Diagnostic(msg, loc, hint))
            return
    if not upstream_ok:
        return  # type and parameters are checked; shapes wait for the upstream error to be fixed
    ins = [g.nodes[r.src].ttype for r in n.inputs]
    lo, hi = block.arity
    if len(ins) < lo or (hi is not None and len(ins) > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        names = f" ({', '.join(block.input_names)})" if block.input_names else ""
        errors.append(Diagnostic(f"`{n.name}` ({n.kind}.{n.type}) takes {want} input(s){names}, got {len(ins)}",
                                 n.at("in", key=True), f"list {want} reference(s) in `in:`"
                                 + (f", in this order: {', '.join(block.input_names)}" if block.input_names else "")))
        return
    if owner is not None and owner.ttype is not None:
        owner_ins, mine, each = _one_step(g, owner), ins, ""
        if per_step(n):  # applied at each step: one step of our inputs meets the owner's inputs
            try:
                mine, each = step_types(ins)[1], " at each step"
            except ShapeMismatch:
                mine = owner_ins  # not sequences: the shape rule below says so
        for i, (a, b) in enumerate(zip(owner_ins, mine)):
            if a != b:
                rel = "is an EMA copy of" if n.ema_of else "shares the weights of"
                src = g.nodes[n.inputs[i].src]
                errors.append(Diagnostic(f"`{n.name}` {rel} `{owner.name}`, which takes {a} on input {i}; "
                                         f"`{src.name}` gives {b}{each}", n.inputs[i].loc or n.loc,
                                         "shared weights need inputs of the same shape",
                                         related=[(f"`{owner.name}`", owner.loc)]))
                return
    try:
        n.ttype = block.infer(n.params, ins)
    except ShapeMismatch as e:
        if e.index is not None and e.index < len(n.inputs):
            src = g.nodes[n.inputs[e.index].src]
            msg = f"`{n.name}` ({n.kind}.{n.type}) {e.message}, `{src.name}` gives {src.ttype}"
            loc = n.inputs[e.index].loc or n.loc
            related = [(f"`{src.name}`", src.loc)]
        else:
            msg, loc, related = f"`{n.name}` ({n.kind}.{n.type}) {e.message}", n.loc, []
        errors.append(Diagnostic(msg, loc, e.hint or "check the dims of both ends of this edge", related=related))


def _one_step(g: Graph, n: Node) -> list[TType]:
    """The input types ``n``'s weights were built for: one step of them if it runs at each step."""
    ins = [g.nodes[r.src].ttype for r in n.inputs]
    if per_step(n):
        try:
            return step_types(ins)[1]
        except ShapeMismatch:  # reported at `n` itself
            return ins
    return ins


_NUMBER_HINTS = {  # registry._check_number's errors
    "not_a_number": "write a number (or a dim name for a size); `true`/`false` are yes/no values",
    "size_too_big": "no tensor that large can be built; use a smaller size",
}


def _param_hint(block) -> str:
    fields = block.Params.model_fields
    return "parameters of " + f"{block.kind}.{block.name}: " + ", ".join(
        f"{k}" + ("" if f.is_required() else f"={f.default!r}") for k, f in fields.items())


def _check_terms(g: Graph, errors: list[Diagnostic]) -> None:
    for t in g.costs:
        n = g.nodes[t.node]
        if n.ttype is not None and (n.ttype.shape != () or not n.ttype.batched):
            errors.append(Diagnostic(f"cost term `{t.name}` must give one number per sample, gives {n.ttype}", n.loc,
                                     "planning ranks candidates by per-sample costs"))


def _check_latents(g: Graph, errors: list[Diagnostic]) -> None:
    """A discrete(K) latent is fed to the graph as a one-hot [K]; a latent's encoder gives its shape."""
    for n in g.nodes.values():
        if n.op != "latent" or n.ttype is None:
            continue
        k = getattr(n.decl.domain, "discrete", None)
        if k is None and n.decl.inference.method == "enumerate":
            errors.append(Diagnostic(f"latent `{n.name}` is not discrete, so `enumerate` has no values to try",
                                     n.at("inference", "method"), "use `method: gradient`, `cem` or `sample`, "
                                     "or make it discrete: `domain: {discrete: K}`"))
        if k is not None and n.ttype.shape != (k,):
            form = f"`latent {n.name} : [{k}] discrete({k})`" if in_jepa(n.loc) else f"`shape: [{k}]`"
            errors.append(Diagnostic(f"latent `{n.name}` is discrete({k}) but has shape {n.ttype}", n.at("shape"),
                                     f"a discrete latent is a one-hot vector: write {form}"))
        enc = g.nodes.get(n.decl.encoder or "")
        if enc is not None and enc.ttype is not None and enc.ttype.shape != n.ttype.shape:
            what = "logits [B, K] for" if k is not None else "the shape of"
            errors.append(Diagnostic(f"latent `{n.name}` is {n.ttype}, but its encoder `{enc.name}` gives {enc.ttype}",
                                     n.at("encoder", key=False), f"the encoder must give {what} `{n.name}`: "
                                     f"set its `out` to {n.ttype.shape[-1] if n.ttype.shape else 1}",
                                     related=[(f"`{enc.name}`", enc.loc)]))


def _check_world_models(g: Graph, errors: list[Diagnostic]) -> None:
    """``step`` feeds the predictor's output back in as the next state: it must have the state's type."""
    spec, src = g.spec, g.spec.source
    for wm in ([g.world_model] if g.world_model else []) + g.levels:
        if wm is g.world_model:
            what, path, decl = "world_model", ("world_model",), spec.world_model
        else:
            what, path, decl = wm.what, ("levels", wm.index), spec.levels[wm.index]
        enc, pred = g.nodes[wm.encoder], g.nodes[wm.predictor]
        if enc.ttype is None or pred.ttype is None or enc.ttype == pred.ttype:
            continue
        width = f" (its `out`: {enc.ttype.shape[-1]})" if len(enc.ttype.shape) == 1 else ""
        errors.append(Diagnostic(
            f"{what}: predictor `{decl.predictor}` gives {pred.ttype}, but the state from encoder `{decl.encoder}` "
            f"is {enc.ttype}", src.at(path + ("predictor",)) if src else pred.loc,
            f"`step` feeds the prediction back as the next state: make `{decl.predictor}` give {enc.ttype}{width}",
            related=[(f"`{decl.predictor}`", pred.loc), (f"`{decl.encoder}`", enc.loc)]))


def _check_actors(g: Graph, errors: list[Diagnostic]) -> None:
    """An actor proposes the world model's action: the action's shape, inside the action's bounds."""
    name = g.world_model.action if g.world_model else None
    act = g.nodes[name] if name else None
    if act is None or act.ttype is None:
        return
    for n in g.nodes.values():
        if n.op != "call" or n.kind != "actor" or n.ttype is None:
            continue
        related = [(f"`{act.name}`", act.loc)]
        if n.ttype != act.ttype:
            width = f"set its `out` to {act.ttype.shape[0]}" if len(act.ttype.shape) == 1 else f"make it give {act.ttype}"
            errors.append(Diagnostic(f"actor `{n.name}` gives {n.ttype}, but the world model's action `{act.name}` is "
                                     f"{act.ttype}", n.at("with", "out"), f"the actor proposes `{act.name}`: {width}",
                                     related=related))
            continue
        bounds, want = getattr(n.params, "bounds", None), act.decl.bounds  # None: unbounded
        if want is None or (bounds is not None and tuple(bounds) == tuple(want)):
            continue
        gives = "is unbounded" if bounds is None else f"gives actions in [{bounds[0]:g}, {bounds[1]:g}]"
        errors.append(Diagnostic(f"actor `{n.name}` {gives}, but action `{act.name}` is bounded to "
                                 f"[{want[0]:g}, {want[1]:g}]", n.at("with", "bounds"),
                                 f"give the actor `{act.name}`'s bounds: `bounds: [{want[0]:g}, {want[1]:g}]`", related=related))
