"""Graph checks that need no shapes: relations, wiring rules, cycles, and how blocks are used.

Every message names both ends of the offending edge and points at the edge in the file.
"""
from __future__ import annotations

import math

from pydantic import ValidationError

from ..core.errors import Diagnostic, article, did_you_mean, in_jepa
from ..frontend.spec import EmaParams
from .graph import SCALAR_KINDS, Graph, Level, Node, Term, WorldModel
from .sequence import check_sequences, used_by_sequences

_REPRESENTATION_KINDS = ("encoder", "predictor", "op", "actor", "port", "input")
_NO_ACTION_OR_LATENT = ("encoder", "actor", "critic")  # s = Enc(x) sees observations only


def _what(n: Node) -> str:
    return {"input": "input", "latent": "latent", "action": "action", "port": "composite input"}.get(
        n.op, f"{n.kind}")


RESERVED = ("energy", "loss", "state", "action", "cost")  # keys of program results


def check_graph(g: Graph, errors: list[Diagnostic]) -> None:
    for n in g.nodes.values():
        if not n.scope and n.name in RESERVED:
            errors.append(Diagnostic(f"`{n.name}` is a reserved name (programs return it)", n.loc,
                                     f"rename it (e.g. `{n.name}_term`); reserved: {', '.join(RESERVED)}"))
    _relations(g, errors)
    _wiring(g, errors)
    if errors:
        return
    _cycles(g, errors)
    if errors:
        return
    _usage(g, errors)


def _relations(g: Graph, errors: list[Diagnostic]) -> None:
    for n in g.nodes.values():
        if n.share_of:
            owner = g.nodes[n.share_of]
            seen = {n.name}
            while owner.share_of and owner.name not in seen:
                seen.add(owner.name)
                owner = g.nodes[owner.share_of]
            if owner.name in seen:
                errors.append(Diagnostic(f"`{n.name}` shares weights in a loop", n.at("share", key=False),
                                         "one block must own the weights: give it a `type:` instead of `share:`"))
                continue
            if owner.kind != n.kind:
                errors.append(Diagnostic(f"`{n.name}` ({n.kind}) shares `{owner.name}`, which is {article(owner.kind)}",
                                         n.at("share", key=False),
                                         "a block can only share the weights of a block of the same kind",
                                         related=[("shared block", owner.loc)]))
                continue
            if n.raw_params:
                errors.append(Diagnostic(f"`{n.name}` shares `{owner.name}` and cannot set its own `with:`", n.at("with", key=True),
                                         f"parameters come from `{owner.name}`; remove `with:`"))
            n.share_of, n.module, n.type, n.raw_params, n.dims = owner.name, owner.module, owner.type, owner.raw_params, owner.dims
        if n.ema_of:
            src = g.nodes[n.ema_of]
            while src.share_of:
                src = g.nodes[src.share_of]
            if src.ema_of:
                errors.append(Diagnostic(f"`{n.name}` is an EMA target of `{src.name}`, which is itself an EMA target",
                                         n.at("ema_of", key=False), f"take the EMA of `{src.ema_of}` directly"))
                continue
            if src.kind not in ("encoder", "predictor") or src.kind != n.kind:
                errors.append(Diagnostic(f"EMA target `{n.name}` ({n.kind}) copies `{src.name}`, {article(src.kind)}",
                                         n.at("ema_of", key=False),
                                         "an EMA target must copy a block of its own kind: an encoder or a predictor",
                                         related=[("copied block", src.loc)]))
                continue
            if n.type is not None and n.type != src.type:
                errors.append(Diagnostic(f"EMA target `{n.name}` has type `{n.type}` but copies `{src.name}` of type `{src.type}`",
                                         n.at("type", key=False), "remove `type:`; an EMA target has its source's architecture"))
                continue
            jepa = in_jepa(n.loc)  # hints in the spec's own syntax
            try:
                n.ema = EmaParams.model_validate(n.raw_params)
            except ValidationError as e:
                err = e.errors()[0]
                key = err["loc"][0] if err["loc"] else "with"
                usage = ("use `momentum=0.996` or `momentum=0.996..1.0`, `schedule=linear|cosine|constant`" if jepa else
                         "use `momentum: 0.996` or `momentum: [0.996, 1.0]`, `schedule: linear|cosine|constant`")
                if err["type"] == "extra_forbidden":
                    errors.append(Diagnostic(f"EMA target `{n.name}` has no parameter `{key}`", n.at("with", key, key=True),
                                             did_you_mean(str(key), list(EmaParams.model_fields), "parameters")))
                    continue
                errors.append(Diagnostic(f"EMA target `{n.name}`: bad `{key}`: {err['msg'][:1].lower() + err['msg'][1:]}",
                                         n.at("with", *err["loc"][:1], key=False),
                                         did_you_mean(str(err.get("input")), ("linear", "cosine", "constant"), "schedules")
                                         if key == "schedule" else usage))
                continue
            bad = _momentum_error(n, jepa)
            if bad is not None:
                errors.append(bad)
                continue
            n.ema_of, n.type, n.raw_params, n.dims = src.name, src.type, src.raw_params, src.dims


def _momentum_error(n: Node, jepa: bool) -> Diagnostic | None:
    """An EMA momentum is a fraction: each end in [0, 1], and a schedule that does not decrease."""
    m = n.ema.momentum
    ends = [(m, ())] if isinstance(m, float) else [(v, (i,)) for i, v in enumerate(m)]
    form = (lambda lo, hi: f"`momentum={lo}..{hi}`") if jepa else (lambda lo, hi: f"`momentum: [{lo}, {hi}]`")
    one = "`momentum=0.996`" if jepa else "`momentum: 0.996`"
    for v, sub in ends:
        if not 0.0 <= v <= 1.0:  # NaN fails too
            return Diagnostic(f"EMA target `{n.name}`: momentum {v} is outside [0, 1]", n.at("with", "momentum", *sub),
                              f"the target keeps this fraction of its weights each step: use e.g. {one} "
                              f"or {form(0.996, 1.0)}")
    lo, hi = n.ema.range()
    if lo > hi:
        return Diagnostic(f"EMA target `{n.name}`: momentum goes down from {lo} to {hi}", n.at("with", "momentum", 0),
                          f"the schedule runs from start to end and the target should settle: write {form(hi, lo)}")
    return None


def _wiring(g: Graph, errors: list[Diagnostic]) -> None:
    for n in g.nodes.values():
        if n.op not in ("call", "port"):
            continue
        if n.op == "port" and not n.inputs:
            continue
        for i, r in enumerate(n.inputs):
            if r is None:
                continue
            src = g.nodes[r.src]
            if not (src.kind in SCALAR_KINDS or src.op in ("action", "latent") or src.kind == "actor"):
                continue  # an edge none of the rules below refuses (most of them)
            edge = f"`{src.name}` ({_what(src)}) -> `{n.name}` ({_what(n)}) input {i}"
            if src.kind in SCALAR_KINDS:
                errors.append(Diagnostic(f"{edge}: {article(src.kind)} gives one number per sample and cannot feed another block",
                                         r.loc or n.loc, "energies, costs, critics and regularisers are terms of the "
                                         "objective or the planning cost; list them there", related=[(f"`{src.name}`", src.loc)]))
            elif n.kind in _NO_ACTION_OR_LATENT and src.op in ("action", "latent"):
                errors.append(Diagnostic(f"{edge}: {article(n.kind)} sees observations and states, not {src.op}s",
                                         r.loc or n.loc, f"wire `{src.name}` into a predictor instead",
                                         related=[(f"`{src.name}`", src.loc)]))
            elif n.kind == "encoder" and src.kind == "actor":  # an actor's output is an action, as above
                errors.append(Diagnostic(f"{edge}: an encoder sees observations, not the actions an actor proposes",
                                         r.loc or n.loc, f"wire `{src.name}` into a predictor (or a cost) instead",
                                         related=[(f"`{src.name}`", src.loc)]))
            elif n.kind == "energy" and src.op in ("action", "latent"):
                errors.append(Diagnostic(f"{edge}: an energy compares two representations, not a {src.op}",
                                         r.loc or n.loc, "compare a prediction with a target representation"))
        if n.kind == "energy" and len(n.inputs) != 2:
            errors.append(Diagnostic(f"energy `{n.name}` compares two representations, got {len(n.inputs)} input(s)",
                                     n.at("in", key=False), "write `in: [prediction, target]`"))
        n.inputs = [r for r in n.inputs if r is not None]


def _cycles(g: Graph, errors: list[Diagnostic]) -> None:
    names = g.cycle()  # [a, b, ..., a]; the order walks use is derived with it, once
    if names is None:
        return
    first = g.nodes[names[1]]
    ref = next((r for r in first.inputs if r.src == names[0]), None)
    errors.append(Diagnostic("cycle: " + " -> ".join(f"`{x}`" for x in names), (ref.loc if ref else None) or first.loc,
                             "a JEPA graph is acyclic; unroll recurrence through the world model "
                             "(step) instead of wiring a block into its own input"))


def _term(g: Graph, key: str, weight: float, where: str, allowed: tuple[str, ...], loc, errors) -> Term | None:
    if not math.isfinite(weight):  # `.nan` / `.inf` parse as floats, and would poison every step
        errors.append(Diagnostic(f"{where} term `{key}` has weight {weight}", loc, "a weight is a finite number, e.g. 1.0"))
        return None
    head, _, tail = key.partition(".")
    latent = g.nodes.get(head) if tail else None  # a lookup, not a scan: objectives may have many terms
    if latent is not None and not latent.scope and latent.op == "latent":
        regs = latent.decl.regularizer
        if tail not in regs:
            declare = (f"declare it on `{head}`: `latent {head} : [...] ~ {tail}(w)`" if in_jepa(loc) else
                       f"declare `regularizer: {{{tail}: w}}` on `{head}`")
            errors.append(Diagnostic(f"{where} term `{key}`: latent `{head}` has no `{tail}` regulariser", loc,
                                     declare if tail in ("l1", "l2", "kl") else did_you_mean(tail, regs, "regularisers")))
            return None
        return Term(key, weight, head, latent_reg=tail)
    name = key
    if tail and head in g.composites:  # `lvl.E`: an exported output of composite `lvl`
        outs = g.composites[head].get("outputs", {})
        if tail not in outs:
            errors.append(Diagnostic(f"{where} term `{key}`: composite `{head}` has no output `{tail}`", loc,
                                     did_you_mean(tail, outs, "outputs")))
            return None
        name = outs[tail]
    node = g.nodes.get(name)
    if node is None:
        cands = [n for n, v in g.nodes.items() if not v.scope and v.kind in allowed]
        cands += [f"{c}.{o}" for c, info in g.composites.items() if "/" not in c
                  for o, m in info.get("outputs", {}).items() if g.nodes[m].kind in allowed]
        errors.append(Diagnostic(f"{where} term `{key}` is not a block", loc,
                                 did_you_mean(key, cands, f"{'/'.join(allowed)} blocks")))
        return None
    if node.kind not in allowed:
        kinds = ", ".join(allowed[:-1]) + " or " + allowed[-1] if len(allowed) > 1 else allowed[0]
        errors.append(Diagnostic(f"{where} term `{key}` is {article(_what(node))}, not {article(kinds)}", loc,
                                 f"{where} terms are scalar blocks ({', '.join(allowed)})", related=[(f"`{key}`", node.loc)]))
        return None
    return Term(key, weight, node.name)


def _usage(g: Graph, errors: list[Diagnostic]) -> None:
    spec, src = g.spec, g.spec.source
    at = (lambda *p, key=True: src.at(p, key=key)) if src else (lambda *p, key=True: None)
    for key, w in spec.objective.items():
        t = _term(g, key, w, "objective", ("energy", "regularizer", "cost", "critic"), at("objective", key), errors)
        if t:
            g.objective.append(t)
    for key, w in spec.costs.items():
        t = _term(g, key, w, "cost", ("cost", "critic"), at("costs", key), errors)
        if t:
            g.costs.append(t)
    wms = ([("world_model", spec.world_model, ("world_model",))] if spec.world_model else []) + \
          [(f"level `{lv.name}`", lv, ("levels", i)) for i, lv in enumerate(spec.levels)]
    first: dict[str, int] = {}
    for i, lv in enumerate(spec.levels):  # a level's programs are encode_<name>, step_<name>
        if lv.name in first:
            errors.append(Diagnostic(f"two levels are named `{lv.name}`", at("levels", i, "name", key=False),
                                     "give each level its own name", related=[("first", at("levels", first[lv.name], "name", key=False))]))
        first.setdefault(lv.name, i)
    for what, wm, path in wms:
        resolved = _world_model(g, what, wm, path, at, errors)
        if resolved is None:
            continue
        if path[0] == "world_model":
            g.world_model = WorldModel(**resolved, stride=wm.stride)
        else:
            g.levels.append(Level(**resolved, stride=wm.stride, name=wm.name, index=path[1], subgoal=wm.subgoal,
                                  below=spec.levels[path[1] - 1].name if path[1] else None))
    if len(g.levels) == len(spec.levels):  # each level resolved: how they stack
        _levels(g, at, errors)
    check_sequences(g, at, errors)  # unrolled predictors name a world model's predictor (sequence.py)
    _latent_encoders(g, errors)
    _unused(g)


def _latent_encoders(g: Graph, errors: list[Diagnostic]) -> None:
    """A latent's ``encoder:`` (amortised inference) names a block that predicts it without using it."""
    for n in g.nodes.values():
        enc = getattr(n.decl, "encoder", None) if n.op == "latent" else None
        if enc is None:
            continue
        node, loc = g.nodes.get(enc), n.at("encoder", key=False)
        if node is None or node.op != "call" or node.kind not in ("encoder", "predictor"):
            cands = [m.name for m in g.nodes.values() if m.kind in ("encoder", "predictor") and not m.scope]
            got = f"`{enc}` is a {_what(node)}" if node else f"`{enc}` is not a block"
            errors.append(Diagnostic(f"latent `{n.name}`: `encoder:` must name an encoder or predictor block; {got}",
                                     loc, did_you_mean(enc, cands, "encoder/predictor blocks")))
        elif n.name in g.ancestors([node.name]):
            errors.append(Diagnostic(f"latent `{n.name}`: its encoder `{enc}` depends on `{n.name}` itself", loc,
                                     f"the encoder predicts `{n.name}` from the observations (x, y); do not wire "
                                     f"`{n.name}` into it", related=[(f"`{enc}`", node.loc)]))


def _world_model(g: Graph, what: str, wm, path, at, errors) -> dict | None:
    """The graph names of a world model's (or level's) encoder, predictor, action and latent."""
    need = {"encoder": ("call", "encoder"), "predictor": ("call", "predictor"),
            "action": ("action", "action"), "latent": ("latent", "latent")}
    out: dict[str, str | None] = {}
    ok = True
    for field, (op, kind) in need.items():
        ref = getattr(wm, field)
        if ref is None:
            out[field] = None
            continue
        head, _, tail = ref.partition(".")  # `low.state`: an exported output of composite `low`
        node = g.nodes.get(g.composites[head].get("outputs", {}).get(tail, "") if tail and head in g.composites else ref)
        if node is None or node.op != op or node.kind != kind:
            cands = [n.name for n in g.nodes.values() if n.op == op and n.kind == kind and not n.scope]
            cands += [f"{c}.{o}" for c, info in g.composites.items() if "/" not in c
                      for o, m in info.get("outputs", {}).items() if g.nodes[m].op == op and g.nodes[m].kind == kind]
            got = f", but `{ref}` is {article(_what(node))}" if node else \
                f", but `{ref}` is a composite block: name one of its outputs" if ref in g.composites else \
                f", but `{ref}` is not defined"
            errors.append(Diagnostic(f"{what}.{field} must name {article(kind)}{got}",
                                     at(*path, field, key=False), did_you_mean(ref, cands, f"{kind}s")))
            ok = False
            continue
        out[field] = node.name
    if not ok:
        return None
    anc = g.ancestors([out["predictor"]])
    if out["encoder"] not in anc:
        errors.append(Diagnostic(f"{what}: predictor `{out['predictor']}` does not depend on encoder `{out['encoder']}`",
                                 at(*path, "predictor", key=False), "the predictor must take the encoder's state as input"))
        return None
    for field in ("action", "latent"):
        if out[field] and out[field] not in anc:
            errors.append(Diagnostic(f"{what}: predictor `{out['predictor']}` does not take {field} `{out[field]}`",
                                     at(*path, field, key=False), f"wire `{out[field]}` into `{out['predictor']}`"))
            return None
    return out


def _levels(g: Graph, at, errors: list[Diagnostic]) -> None:
    """How levels stack: level k+1 steps over whole steps of level k (its stride is a multiple of
    level k's) and encodes level k's states alone, so its ``subgoal`` distance can compare
    Enc_{k+1}(a level-k state) with what level k+1 planned. The world model, when it unrolls a
    level (the same encoder and predictor), has that level's stride. The lowest level has no
    level below to give a subgoal to: a ``subgoal`` written there is a warning."""
    spec, src = g.spec, g.spec.source
    for lv in g.levels:
        decl, path = spec.levels[lv.index], ("levels", lv.index)
        if lv.below is None:
            if src is not None and path + ("subgoal",) in src.values:
                g.warnings.append(Diagnostic(
                    f"level `{lv.name}` is the lowest level: its `subgoal` is not used", at(*path, "subgoal", key=False),
                    "a level's subgoal is the distance between its encoding of the states of the level below and "
                    "what it planned; remove it here", severity="warning"))
            continue
        below, bdecl = g.levels[lv.index - 1], spec.levels[lv.index - 1]
        if lv.stride % below.stride:  # also a shorter stride than the level below
            errors.append(Diagnostic(
                f"level `{lv.name}` has stride {lv.stride}, not a multiple of the stride {below.stride} of level "
                f"`{below.name}` below it", at(*path, "stride", key=False),
                f"one level-`{lv.name}` step spans whole level-`{below.name}` steps: use a multiple of {below.stride}, "
                f"e.g. {below.stride * max(2, -(-lv.stride // below.stride))}",
                related=[(f"level `{below.name}`'s stride", at("levels", below.index, "stride", key=False))]))
        reads = g.ancestors([lv.encoder], cut={below.encoder})
        if below.encoder not in reads:
            errors.append(Diagnostic(
                f"level `{lv.name}`: encoder `{decl.encoder}` does not read the states of level `{below.name}` "
                f"(encoder `{bdecl.encoder}`)", at(*path, "encoder", key=False),
                f"level k+1 encodes level k's states, so its subgoal can compare them: wire `{bdecl.encoder}` "
                f"into `{decl.encoder}`, or order `levels:` lowest first"))
            continue
        other = [n for n in reads if g.nodes[n].is_var]
        if other:
            errors.append(Diagnostic(
                f"level `{lv.name}`: encoder `{decl.encoder}` reads {_what(g.nodes[other[0]])} `{other[0]}` besides "
                f"the states of level `{below.name}`", at(*path, "encoder", key=False),
                f"its subgoal encodes a level-`{below.name}` state alone: feed `{decl.encoder}` from "
                f"`{bdecl.encoder}` only", related=[(f"`{other[0]}`", g.nodes[other[0]].loc)]))
    wm = g.world_model
    same = next((lv for lv in g.levels if wm and (lv.encoder, lv.predictor) == (wm.encoder, wm.predictor)), None)
    if same is not None and same.stride != wm.stride:
        errors.append(Diagnostic(
            f"world_model unrolls level `{same.name}` (the same encoder and predictor) with stride {wm.stride}, "
            f"but the level has stride {same.stride}", at("world_model", "stride", key=False),
            f"give them one stride: `stride: {same.stride}` on world_model" if not in_jepa(at("world_model"))
            else f"give them one stride: `stride={same.stride}` on the world_model line",
            related=[(f"level `{same.name}`'s stride", at("levels", same.index, "stride", key=False))]))


def _unused(g: Graph) -> None:
    sinks = [t.node for t in g.objective + g.costs]
    for wm in ([g.world_model] if g.world_model else []) + g.levels:
        sinks += [wm.encoder, wm.predictor, *wm.steps]
    sinks += list(g.outputs.values())
    sinks += [n.decl.encoder for n in g.nodes.values() if n.op == "latent" and n.decl.encoder in g.nodes]
    sinks += [n.name for n in g.nodes.values() if n.kind in ("actor", "critic", "cost")]
    sinks += used_by_sequences(g)  # weights applied at each step or unrolled
    used = g.ancestors(sinks) if sinks else set()
    used |= {n.ema_of for n in g.nodes.values() if n.ema_of and n.name in used}
    for n in g.nodes.values():
        if n.scope or n.name in used:
            continue
        if n.is_var and not g.consumers(n.name):
            g.warnings.append(Diagnostic(f"{n.op} `{n.name}` is not used by any block", n.loc,
                                         "remove it, or wire it into a block", severity="warning"))
        elif n.op == "call" and any(c not in used for c in g.consumers(n.name)):
            continue  # only the end of an unused chain is reported; its hint names the rest
        elif n.op == "call" and n.kind in SCALAR_KINDS:
            g.warnings.append(Diagnostic(f"{n.kind} `{n.name}` is not in the objective or the costs", n.loc,
                                         f"add `+ {n.name}` to the `objective` line" if in_jepa(n.loc)
                                         else f"add `{n.name}: 1.0` to `objective:`", severity="warning"))
        elif n.op == "call":
            feeders = [a for a in g.ancestors([n.name]) if a != n.name and a not in used and g.nodes[a].op == "call"]
            also = f" (and {', '.join(f'`{a}`' for a in sorted(feeders))}, which only feed{'s' if len(feeders) == 1 else ''} it)" if feeders else ""
            g.warnings.append(Diagnostic(f"block `{n.name}` does not contribute to the objective, costs or world model",
                                         n.loc, f"remove it{also}, or use its output", severity="warning"))
    g.warnings.sort(key=lambda d: (d.loc.file, d.loc.line, d.loc.col) if d.loc else ("", 0, 0))  # file order
