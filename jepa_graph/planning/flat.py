"""``jg.plan``: Mode-2 planning of B environments at once, through a world model.

Example::

    model = jg.compile("specs/two_rooms.yaml")
    plan = jg.plan(model, obs, goal, method="cem", horizon=16, samples=256)   # obs, goal (B, 2)
    plan.actions, plan.cost                                                   # (B, 16, 2), (B,)
    plan = jg.plan(model, obs, goal, init=plan.shifted(1), weights={"reach": 2.0})  # warm start, re-weighed
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import torch

from ..core.errors import SpecError, did_you_mean
from ..search.spaces import Continuous, Discrete
from .base import ACTION, LATENT, Plan, Streams
from .methods import make_planner
from .objective import LATENT_POLICIES, NonFiniteCostError, PlanCost
from .world import spec_loc, world_of


def plan(model, obs, goal=None, method: str = "cem", horizon: int = 16, *, init=None,
         weights: Mapping[str, float] | None = None, discount: float = 1.0, terminal_only: bool = False,
         latent: str = "zero", actor: bool | str = "auto", context: Mapping[str, torch.Tensor] | None = None,
         seed: int | Sequence[int] | None = 0, on_nonfinite: str = "skip", **options: Any) -> Plan:
    """Plan action sequences for every environment (row) of ``obs`` through ``model``'s world model.

    Args:
        model: a compiled model with a ``world_model`` and ``costs`` (or a :class:`DynamicsModel`).
        obs: observations (B, ...) as the world model's encoder takes them (a dict for several inputs).
        goal: (B, ...) the goal input of the costs (e.g. ``goal_distance(pred, enc(goal))``), or None.
        method: "cem" | "icem" | "mppi" | "gradient", or "cem+gradient" (etc.): a sampler's result
            refined by gradient descent; or a configured :class:`Planner`.
        horizon: world-model steps planned ahead, H >= 1.
        init: warm start: actions (B, H, *A), or a dict with ``"action"`` (and ``"latent"``); e.g.
            the previous plan's :meth:`Plan.shifted`.
        weights: cost term -> weight, replacing the spec's ``costs:`` weights for this call (0 turns
            a term off); terms left out keep theirs.
        discount, terminal_only: the cost sums discount^t C(s_{t+1}) over the horizon, or
            (terminal_only) takes the last state's alone.
        latent: the world model's latent: "zero" (the prior's mode), "sample" (prior draws) or
            "optimise" (searched with the actions, its R(z) added to the cost).
        actor: "auto" (the spec's actor, rolled out through the world model, is a candidate when
            the spec has one and the plan has its inputs), True (must be), False (never).
        context: other inputs of the costs or the actor (B, ...) by name, e.g. ``memory``.
        seed: one int (environment b gets its own stream from it), one seed per environment, or None.
        on_nonfinite: "skip" (default: such candidates count as +inf, a warning names the block)
            or "raise" (:class:`NonFiniteCostError`).
        options: the method's hyperparameters, e.g. ``iterations``, ``samples``, ``elites``
            (sampling), ``temperature`` (mppi), ``beta``, ``keep`` (icem), ``steps``, ``lr``,
            ``restarts``, ``optimizer`` (gradient), ``refine`` (X+gradient).

    Every iteration evaluates all candidates of all environments in one rollout call on the
    model's device; a result for environment b does not depend on the others in the batch.

    Returns a :class:`Plan`: ``actions`` (B, H, *A), ``cost`` (B,), ``states`` (B, H, *S) predicted,
    ``terms`` per cost term (B,), ``info``.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise SpecError(f"horizon must be a whole number >= 1, got {horizon!r}",
                        hint="the number of world-model steps a plan looks ahead, e.g. horizon=16")
    if not (isinstance(discount, (int, float)) and math.isfinite(discount) and discount > 0):
        raise SpecError(f"discount must be a number > 0, got {discount!r}",
                        hint="e.g. discount=0.99; 1 weighs every step alike")
    if latent not in LATENT_POLICIES:
        raise SpecError(f"unknown latent policy `{latent}`",
                        hint=did_you_mean(str(latent), LATENT_POLICIES, "policies"))
    if actor not in ("auto", True, False):
        raise SpecError(f"actor must be 'auto', True or False, got {actor!r}")
    if on_nonfinite not in ("skip", "raise"):
        raise SpecError(f"on_nonfinite must be 'skip' or 'raise', got {on_nonfinite!r}")
    world = world_of(model)
    planner = make_planner(method, **options)
    t0 = time.perf_counter()
    with torch.no_grad():  # the gradient planners turn gradients on for the actions alone
        state = world.encode(obs)  # (B, *S): once per plan
        B = state.shape[0]
        ctx = world.context(goal, context, B)
        spaces = {ACTION: Continuous((horizon, *world.action.shape), world.action.lo, world.action.hi)}
        if latent == "optimise":
            spaces[LATENT] = _latent_space(world, horizon)
        streams = Streams.of(seed, B, state.device, state.dtype if state.is_floating_point() else torch.float32)
        planner.configure(spaces, B, seed=streams)
        cost = PlanCost(world, state, ctx, horizon, weights=_weights(world, weights), discount=discount,
                        terminal_only=terminal_only, latent=latent, streams=streams, on_nonfinite=on_nonfinite,
                        what=f"`{planner.name}` planning")
        start = _init(init, spaces, B, state.device)
        proposals = []
        if actor is not False:
            z = (start or {}).get(LATENT) if latent == "optimise" else None  # the actor's rollout: the start's
            z = cost.latents(1) if z is None else z  # latents, else the policy's (the prior's mode when optimised)
            p = world.propose(state, ctx, z, horizon, required=actor is True)
            if p is not None:
                proposals.append({ACTION: p})
        result = planner.solve(cost, start, proposals)
        if not bool(torch.isfinite(result.cost).all()):
            n = int((~torch.isfinite(result.cost)).sum())
            raise NonFiniteCostError(f"every candidate of {n} of {B} environment(s) had a non-finite plan cost: "
                                     f"{cost.first_nonfinite or 'see the warnings'}")
        rollouts, calls = cost.rollouts, cost.calls
        best = {ACTION: result.actions, **({} if result.latents is None else {LATENT: result.latents})}
        result.states, result.terms, _ = cost.parts(best)  # what the world model predicts along the plan
    result.info.update(horizon=horizon, rollouts=rollouts, evaluations=calls, nonfinite=cost.nonfinite,
                       weights=dict(cost.weights), latent=latent, proposals=len(proposals),
                       seconds=time.perf_counter() - t0)
    return result


def _weights(world, given: Mapping[str, float] | None) -> dict[str, float]:
    """The spec's cost weights with ``given`` replacing some (unknown terms and bad values are errors)."""
    w = dict(world.weights)
    for k, v in (given or {}).items():
        if k not in w:
            model = getattr(world, "model", None)
            raise SpecError(f"`{k}` is not a cost term of {world.name}",
                            spec_loc(model.spec, "costs") if model is not None else None,
                            did_you_mean(k, w, "cost terms"))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SpecError(f"the weight of `{k}` must be a finite number, got {v!r}")
        w[k] = float(v)
    return w


def _latent_space(world, horizon: int) -> Continuous:
    ls = world.latent
    if ls is None:
        raise SpecError(f"the world model of {world.name} has no latent to optimise",
                        hint="plan with latent=\"zero\" (the default)")
    if isinstance(ls.space, Discrete):
        raise SpecError(f"latent `{ls.name}` is discrete; planning optimises continuous latents", ls.loc,
                        "plan with latent=\"zero\" (its first value) or \"sample\"")
    return Continuous((horizon, *ls.space.shape), ls.space.lo, ls.space.hi)


def _init(init, spaces: dict[str, Continuous], B: int, device) -> dict[str, torch.Tensor] | None:
    """The warm start checked: (B, H, *A) actions, or a dict by space name."""
    if init is None:
        return None
    given = dict(init) if isinstance(init, Mapping) else {ACTION: init}
    out = {}
    for k, v in given.items():
        if k not in spaces:
            raise SpecError(f"`init` has no use for `{k}`", hint=did_you_mean(k, spaces, "spaces planned over"))
        if not isinstance(v, torch.Tensor):
            raise SpecError(f"`init[{k!r}]` should be a torch tensor, got {type(v).__name__}")
        want = (B, *spaces[k].shape)
        if tuple(v.shape) != want:
            raise SpecError(f"`init[{k!r}]` has shape {list(v.shape)}, expected {list(want)}",
                            hint="one sequence per environment, over the whole horizon: [B, H, ...]")
        if not bool(torch.isfinite(v).all()):
            raise SpecError(f"`init[{k!r}]` holds NaN or inf values", hint="a warm start must be finite")
        out[k] = v.detach().to(device)
    return out
