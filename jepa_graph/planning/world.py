"""What planning needs of a world model, from a compiled spec or from plain functions.

A world offers: ``action`` (the per-step :class:`~jepa_graph.search.Continuous` space, bounds
from the spec), ``latent`` (a :class:`~jepa_graph.inference.latents.LatentSpace` or None),
``weights`` (each cost term's default weight), and

============================= ================================================================
``encode(obs)``               observations (B, ...) -> states (B, *S), checked
``context(goal, extra, B)``   the cost's other inputs (the goal...), checked, what does not
                              depend on the state computed once: a dict of (B, ...) tensors
``rollout(state, a, z)``      (N, *S), (N, H, *A), (N, H, *Z) or None -> (N, H, *S)
``terms(s, a, z, ctx)``       states (M, *S), actions (M, *A), latents and context of M rows
                              -> each cost term (M,), unweighted
``propose(state, ctx, z, H)`` an actor's plan (B, H, *A) by rolling the actor out, or None
``explain(...)``              why some candidates' cost is not finite: the block, located
============================= ================================================================

:class:`SpecWorld` runs a compiled model's programs (``encode``, ``rollout``, ``step``, ``act``
and the ``cost`` program split in two: the goal's encoding, which does not depend on the state,
runs once per plan on B rows; the terms run on every candidate's states). :class:`DynamicsModel`
wraps functions: the true dynamics of an environment, or any model outside a spec.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Mapping

import torch

from ..compiler.lower import LATENT_PENALTIES
from ..compiler.graph import fx_name
from ..compiler.programs import Arg, declare
from ..core.errors import Location, SpecError, did_you_mean, in_jepa
from ..inference.latents import LatentSpace, latent_spaces, located
from ..runtime.inputs import InputError
from ..runtime.locate import first_nonfinite_block
from ..search.spaces import Continuous

_WORLDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its SpecWorld, built once


def world_of(model) -> Any:
    """The world planning uses for ``model``: a compiled model's :class:`SpecWorld` (built once per
    model), or ``model`` itself when it is a world already (a :class:`DynamicsModel`)."""
    if hasattr(model, "rollout") and hasattr(model, "terms") and hasattr(model, "encode") and hasattr(model, "action"):
        return model
    if not hasattr(model, "graph") or not hasattr(model, "spec"):
        raise TypeError(f"jg.plan takes a compiled model (jg.compile) or a DynamicsModel, got {type(model).__name__}")
    w = _WORLDS.get(model)
    if w is None:
        w = _WORLDS[model] = SpecWorld(model)
    return w


def spec_loc(spec, *path: str) -> Location | None:
    """Where the spec writes ``path`` (the nearest enclosing section it writes), else its name."""
    src = getattr(spec, "source", None)
    if src is None:
        return None
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in src.values:
            return src.values[tuple(path[:n])]
    return src.values.get(("name",))


class SpecWorld:
    """A compiled model as planning sees it (see the module doc)."""

    def __init__(self, model):
        g, spec = model.graph, model.spec
        wm = g.world_model
        jepa = in_jepa(spec_loc(spec))
        if wm is None:
            example = "`world_model encoder=enc, predictor=pred, action=a`" if jepa else \
                "`world_model: {encoder: enc, predictor: pred, action: a}`"
            raise SpecError(f"`{spec.name}` has no world model to plan with", spec_loc(spec, "world_model"),
                            f"add the blocks planning unrolls: {example}")
        if wm.action is None:
            raise SpecError(f"the world model of `{spec.name}` has no action to plan", spec_loc(spec, "world_model"),
                            "name the action its predictor takes: " +
                            ("`world_model ..., action=a`" if jepa else "`world_model: {..., action: a}`"))
        if not g.costs:
            raise SpecError(f"`{spec.name}` has no `costs` for planning to minimise", spec_loc(spec, "world_model"),
                            "name cost or critic blocks on the predicted state, with weights: " +
                            ("`costs reach`, with `reach = cost.goal_distance(pred, enc(goal))`" if jepa else
                             "`costs: {reach: 1.0}`, with `reach: {kind: cost, type: goal_distance, in: [pred, g]}`"))
        self._model = weakref.ref(model)  # the cache of worlds is keyed by the model: no reference back to it
        self.graph, self.wm = g, wm
        an = g.nodes[wm.action]
        lo, hi = an.decl.bounds if an.decl.bounds is not None else (None, None)
        self.action = Continuous(tuple(an.ttype.shape), lo, hi)
        self.action_arg = fx_name(wm.action)
        self.latent: LatentSpace | None = latent_spaces(model)[wm.latent] if wm.latent else None
        self.latent_arg = fx_name(wm.latent) if wm.latent else None
        self.weights = {t.name: float(t.weight) for t in g.costs}
        self.locs = {t.name: g.nodes[t.node].loc for t in g.costs}
        self.encode_args = list(model.signature("encode"))
        per_step = {"state", self.action_arg, self.latent_arg}
        self.context_args: list[Arg] = [a for a in model.signature("cost") if a.name not in per_step]
        self._split_cost()

    @property
    def model(self):
        return self._model()

    @property
    def name(self) -> str:
        return f"`{self.model.spec.name}`"

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    # ------------------------------------------------------------------------- the cost, split
    def _split_cost(self) -> None:
        """The cost program as two: ``plan_context`` (the nodes that do not depend on the state, the
        action or the latent and feed ones that do: the goal's encoding), run once per plan; and
        ``plan_terms`` (every cost term from the state, the step's action and latent, and those)."""
        g, wm = self.graph, self.wm
        cut = {wm.predictor: "state", wm.encoder: "state"}
        heads = [t.node for t in g.costs if not t.latent_reg]
        keep = g.ancestors(heads, cut=set(cut))
        per_step = {n for n in (wm.action, wm.latent) if n}
        dep: set[str] = set()
        for n in g.topo():
            if n.name in keep and (n.name in cut or n.name in per_step or any(r.src in dep for r in n.inputs)):
                dep.add(n.name)
        hoist = [n.name for n in g.topo() if n.name in keep and n.name not in dep and n.op == "call"
                 and any(c in dep for c in g.consumers(n.name))]
        self.prefix = self.model.program(declare("plan_context", {n: n for n in hoist}, title="PlanContext")) \
            if hoist else None
        self.hoisted = {n: fx_name(f"pre__{n}") for n in hoist}
        self.suffix = self.model.program(declare(
            "plan_terms", {t.name: t.node for t in g.costs if not t.latent_reg},
            cut={**cut, **{n: f"pre__{n}" for n in hoist}}, title="PlanTerms"))
        self.suffix_args = [n.target for n in self.suffix.graph.nodes if n.op == "placeholder"]

    # --------------------------------------------------------------------------------- inputs
    def encode(self, obs) -> torch.Tensor:
        """``obs`` (B, ...) (or a dict by input name) -> states (B, *S); located errors for inputs
        that do not fit the encoder or hold NaN or inf."""
        names = [a.name for a in self.encode_args]
        if isinstance(obs, Mapping):
            inputs = dict(obs)
        elif len(names) == 1:
            inputs = {names[0]: obs}
        else:
            raise SpecError(f"the encoder of {self.name} reads {len(names)} inputs ({', '.join(names)})",
                            self.encode_args[0].loc, "pass obs as a dict by input name")
        inputs = {k: _to(v, self.device) for k, v in inputs.items()}
        self.model.check_inputs(inputs, "encode")
        self._finite(inputs, self.encode_args, "observation")
        return self.model.run("encode", inputs)["state"]

    def context(self, goal, extra: Mapping[str, Any] | None, B: int) -> dict[str, torch.Tensor]:
        """The cost's inputs besides the state and the step's action and latent, checked; the goal
        goes to the one such input (or the one named ``goal``); ``extra`` gives the others."""
        args = self.context_args
        given = {k: _to(v, self.device) for k, v in (extra or {}).items()}
        if goal is not None:
            if isinstance(goal, Mapping):
                given.update({k: _to(v, self.device) for k, v in goal.items()})
            else:
                target = self._goal_arg()
                if target is None:
                    terms = ", ".join(f"`{t}`" for t in self.weights)
                    loc = next(iter(self.locs.values()))
                    example = "reach = cost.goal_distance(pred, enc(goal))" if in_jepa(loc) else \
                        "`reach: {kind: cost, type: goal_distance, in: [pred, g]}` with `g` the goal encoded"
                    raise SpecError(f"the costs of {self.name} ({terms}) take no goal", loc,
                                    f"plan without a goal, or add a cost that reads one, e.g. {example}")
                given[target.name] = _to(goal, self.device)
        actor = [a for a in self.model.signature("act") if a.name != "state"] if "act" in self.model.programs else []
        for k in given:
            if all(k != a.name for a in args + actor):
                raise SpecError(f"neither the costs nor the actor of {self.name} take an input `{k}`",
                                hint=did_you_mean(k, {a.name for a in args + actor},
                                                  "inputs of the costs and the actor"))
        missing = [a for a in args if a.name not in given]
        if missing:
            a = missing[0]
            how = "pass goal=..." if a is self._goal_arg() else f"pass context={{'{a.name}': ...}}"
            raise SpecError(f"the costs of {self.name} need input `{a.name}` {a}", a.loc,
                            f"{how} with one row per environment ({B})")
        extra_args = [a for a in actor if a.name in given and all(a.name != b.name for b in args)]
        bad = self.model.input_problem(given, args + extra_args)
        if bad is not None:
            raise InputError(bad)
        for a in args:
            if given[a.name].shape[0] != B:
                raise SpecError(f"input `{a.name}` has {given[a.name].shape[0]} rows for {B} environments", a.loc,
                                "one row per environment: the same batch size as the observations")
        self._finite(given, args + extra_args, "input")
        ctx = {k: v for k, v in given.items() if k in self.suffix_args}
        if self.prefix is not None:
            feed = {n.target: given[n.target] for n in self.prefix.graph.nodes if n.op == "placeholder"}
            try:
                pre = self.prefix(**feed)
            except Exception as e:  # named and located, as model calls are
                raise located(self.model, self.prefix, feed, "the plan's context", e) from e
            ctx.update({self.hoisted[n]: v for n, v in pre.items()})
        ctx["__raw__"] = given  # the actor reads the raw inputs
        return ctx

    @property
    def takes_goal(self) -> bool:
        """Whether the costs read a goal input."""
        return self._goal_arg() is not None

    def _goal_arg(self) -> Arg | None:
        args = self.context_args
        if len(args) == 1:
            return args[0]
        return next((a for a in args if a.name == "goal"), None)

    def _finite(self, inputs: dict[str, torch.Tensor], args: list[Arg], what: str) -> None:
        for a in args:
            v = inputs.get(a.name)
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise SpecError(f"{what} `{a.name}` holds NaN or inf values ({name_rows(v)})", a.loc,
                                "planning needs finite observations and goals: check the environment or the data")

    # ------------------------------------------------------------------------------- programs
    def rollout(self, state: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        feed = {"state": state, self.action_arg: a}
        if self.latent_arg is not None:
            feed[self.latent_arg] = z
        return self.model.run("rollout", feed)["states"]

    def step(self, state: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        feed = {"state": state, self.action_arg: a}
        if self.latent_arg is not None:
            feed[self.latent_arg] = z
        return self.model.run("step", feed)["state"]

    def terms(self, s: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None, ctx: dict[str, torch.Tensor]
              ) -> dict[str, torch.Tensor]:
        feed = self._terms_feed(s, a, z, ctx)
        try:
            out = self.suffix(**feed)
        except Exception as e:  # named and located, as model calls are
            raise located(self.model, self.suffix, feed, "the plan cost", e) from e
        for t in self.graph.costs:  # a latent's R(z) listed among the costs
            if t.latent_reg:
                coef = self.graph.nodes[t.node].decl.regularizer[t.latent_reg]
                out[t.name] = coef * LATENT_PENALTIES[t.latent_reg](z)
        return out

    def _terms_feed(self, s, a, z, ctx) -> dict[str, torch.Tensor]:
        given = {"state": s, self.action_arg: a, **ctx}
        if self.latent_arg is not None:
            given[self.latent_arg] = z
        return {k: given[k] for k in self.suffix_args}

    def propose(self, state: torch.Tensor, ctx: dict[str, Any], z: torch.Tensor | None, H: int,
                required: bool = False) -> torch.Tensor | None:
        """The actor's plan (B, H, *A): a_t = Actor(s_t), s_{t+1} = step(s_t, a_t, z_t); None when the
        spec has no actor, or (unless ``required``) the actor needs inputs the plan was not given."""
        if "act" not in self.model.programs:
            if required:
                raise SpecError(f"{self.name} has no actor to propose plans", spec_loc(self.model.spec, "blocks"),
                                "add a `kind: actor` block, or plan with actor=False")
            return None
        raw = ctx.get("__raw__", {})
        need = [a for a in self.model.signature("act") if a.name != "state"]
        missing = [a for a in need if a.name not in raw]
        if missing:
            if required:
                a = missing[0]
                raise SpecError(f"the actor of {self.name} needs input `{a.name}` {a}", a.loc,
                                f"pass context={{'{a.name}': ...}}")
            return None
        feed = {a.name: raw[a.name] for a in need}
        acts = []
        for t in range(H):
            a = self.action.project(self.model.run("act", {"state": state, **feed})["action"])
            acts.append(a)
            state = self.step(state, a, None if z is None else z[:, t])
        return torch.stack(acts, 1)

    # ---------------------------------------------------------------------------- diagnostics
    @torch.no_grad()
    def explain(self, state: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None, ctx: dict[str, torch.Tensor],
                steps: list[int]) -> str:
        """Why the cost of these candidates (rows of ``state`` (n, *S), ``a`` (n, H, *A), ``z``,
        ``ctx`` (n rows)) is not finite: the first block, in rollout order, whose output is."""
        g = self.graph
        if not bool(torch.isfinite(a).all()) or (z is not None and not bool(torch.isfinite(z).all())):
            return "the candidate actions themselves are NaN or inf: the planner diverged (lower `lr`)"
        step = self.model.program("step")
        s, states = state, []
        for t in range(a.shape[1]):
            feed = {"state": s, self.action_arg: a[:, t]}
            if self.latent_arg is not None:
                feed[self.latent_arg] = z[:, t]
            feed = {n.target: feed[n.target] for n in step.graph.nodes if n.op == "placeholder"}
            bad = first_nonfinite_block(step, feed)
            if bad is not None and bad in g.nodes and g.nodes[bad].op == "call":
                n = g.nodes[bad]
                return f"{n.loc}: block `{n.name}` ({n.kind}.{n.type}) gives non-finite values at rollout step {t + 1}"
            s = step.forward(**feed)["state"]
            states.append(s)
        for t in steps:
            feed = self._terms_feed(states[t], a[:, t], None if z is None else z[:, t], ctx)
            bad = first_nonfinite_block(self.suffix, feed)
            if bad is not None and bad in g.nodes and g.nodes[bad].op == "call":
                n = g.nodes[bad]
                return f"{n.loc}: block `{n.name}` ({n.kind}.{n.type}) gives non-finite values at step {t + 1}"
        return "every block is finite: the weighted sum of the cost terms overflows (lower the weights)"


class DynamicsModel:
    """A world model given as functions (the true dynamics of an environment, or any model outside
    a spec), for :func:`jepa_graph.plan` and :func:`jepa_graph.control`.

    Args:
        step: ``step(state (N, *S), action (N, *A)) -> (N, *S)``, batched.
        cost: ``cost(state (N, *S), action (N, *A), goal (N, ...) or None) -> (N,)``, or a dict of
            such terms by name (weighted by ``weights``, default 1 each).
        action: the per-step action space (shape and bounds), e.g. ``Continuous((2,), -1.0, 1.0)``.
        encode: observations -> states (default: the observation is the state).

    Example (Two Rooms' true dynamics)::

        rooms = TwoRooms()
        world = DynamicsModel(rooms.step, lambda s, a, g: (s - g).pow(2).sum(1), Continuous((2,), -1.0, 1.0))
        plan = jg.plan(world, obs, goal, method="cem", horizon=20)
    """

    latent = None
    latent_arg = None
    takes_goal = True

    def __init__(self, step: Callable, cost: Callable | Mapping[str, Callable], action: Continuous, *,
                 encode: Callable | None = None, weights: Mapping[str, float] | None = None, name: str = "dynamics"):
        self._step, self._encode, self.action, self.name = step, encode, action, name
        self.costs = dict(cost) if isinstance(cost, Mapping) else {"cost": cost}
        self.weights = {k: 1.0 for k in self.costs}
        self.weights.update(weights or {})
        self.device = torch.device("cpu")

    def encode(self, obs) -> torch.Tensor:
        obs = torch.as_tensor(obs)
        if obs.is_floating_point() and not bool(torch.isfinite(obs).all()):
            raise SpecError(f"observation holds NaN or inf values ({name_rows(obs)})",
                            hint="planning needs finite observations: check the environment")
        self.device = obs.device
        return self._encode(obs) if self._encode is not None else obs

    def context(self, goal, extra, B: int) -> dict[str, Any]:
        if goal is not None:
            goal = torch.as_tensor(goal, device=self.device)
            if goal.shape[0] != B:
                raise SpecError(f"goal has {goal.shape[0]} rows for {B} environments", hint="one goal per environment")
            if goal.is_floating_point() and not bool(torch.isfinite(goal).all()):
                raise SpecError(f"goal holds NaN or inf values ({name_rows(goal)})", hint="check the goals")
        return {"goal": goal, **(extra or {})}

    def step(self, state, a, z=None):
        return self._step(state, a)

    def rollout(self, state, a, z=None):
        out = []
        for t in range(a.shape[1]):
            state = self._step(state, a[:, t])
            out.append(state)
        return torch.stack(out, 1)

    def terms(self, s, a, z, ctx) -> dict[str, torch.Tensor]:
        return {k: f(s, a, ctx.get("goal")) for k, f in self.costs.items()}

    def propose(self, state, ctx, z, H, required=False):
        if required:
            raise SpecError(f"the {self.name} world model has no actor to propose plans", hint="plan with actor=False")
        return None

    def explain(self, state, a, z, ctx, steps) -> str:
        if not bool(torch.isfinite(a).all()):
            return "the candidate actions themselves are NaN or inf: the planner diverged (lower `lr`)"
        return f"the {self.name} world model's step or cost gives NaN or inf"


def name_rows(v: torch.Tensor) -> str:
    bad = ~torch.isfinite(v)
    rows = int(bad.flatten(1).any(1).sum()) if v.dim() > 1 else int(bad.sum())
    return f"{rows} of {v.shape[0]} rows"


def _to(v, device) -> Any:
    return v.to(device) if isinstance(v, torch.Tensor) else v

