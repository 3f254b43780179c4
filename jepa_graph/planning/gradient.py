"""Gradient planning: Adam (or L-BFGS) through the unrolled world model, projected onto the bounds.

``gradient`` descends from several starts per environment at once: the warm start, each
proposal (an actor's plan), and ``restarts - 1`` draws from the prior (from the environment's
own stream). Every start of every environment is one row of one batched rollout per step
(:func:`jepa_graph.search.descend`, rows ``c * B + b``); each row moves on its own, and the
lowest-cost point any row visited is the plan.

``cem+gradient`` (``icem+gradient``, ``mppi+gradient``) refines a sampling planner's result: its
best candidate and its ``refine - 1`` next elites are the starts of a gradient descent; the plan
is the better of the two stages per environment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..core.errors import SpecError
from ..search.gradient import descend
from ..search.objective import Objective, Params, at_step, what
from .base import ACTION, Plan, Planner, check_positive, check_real
from .sampling import Sampler


class _Finite:
    """``f`` with non-finite values replaced by +inf: never the minimum, no gradient from them."""

    def __init__(self, f: Objective):
        self.f, self.what = f, what(f)

    @property
    def step(self):
        return getattr(self.f, "step", None)

    @step.setter
    def step(self, i: int) -> None:
        at_step(self.f, i)

    def __call__(self, params: Params) -> torch.Tensor:
        e = self.f(params)
        return torch.where(torch.isfinite(e.detach()), e, math.inf)


@dataclass(kw_only=True)
class Gradient(Planner):
    """Projected gradient descent on the plan cost from ``restarts`` (+ proposals) starts per environment."""

    name = "gradient"
    steps: int = 50  # optimiser steps
    lr: float = 0.1  # Adam's step size (L-BFGS: its first trial step)
    restarts: int = 4  # starts per environment: the warm start, then prior draws (proposals come on top)
    optimizer: str = "adam"  # "adam" | "lbfgs"

    def __post_init__(self):
        check_positive(self, "steps", "restarts")
        check_real(self, "lr")
        if self.optimizer not in ("adam", "lbfgs"):
            raise SpecError(f"gradient: `optimizer` must be 'adam' or 'lbfgs', got {self.optimizer!r}")

    def solve(self, cost: Objective, init: Params | None = None, proposals: Sequence[Params] = ()) -> Plan:
        start = self.start(init)
        starts = [start] + [{k: p.get(k, start[k]).to(self.device) for k in self.spaces} for p in proposals]
        draws = {k: self.streams.prior(s, self.restarts - 1) for k, s in self.spaces.items()}  # (R - 1, B, ...)
        starts += [{k: draws[k][r] for k in self.spaces} for r in range(self.restarts - 1)]
        params, value = self.descend_from(cost, starts)
        return self.result(params, value, {"steps": self.steps, "starts": len(starts)})

    def descend_from(self, cost: Objective, starts: list[Params]) -> tuple[Params, torch.Tensor]:
        """Descend from every start (B, *shape) per space at once; the best point per environment."""
        J, B = len(starts), self.n_envs
        x0 = {k: torch.cat([s[k] for s in starts]) for k in self.spaces}  # (J * B, ...): start j of env b at j*B + b
        f = _Finite(cost)
        trial = getattr(cost, "trial", None)
        best = descend(f, self.spaces, J * B, init=x0, steps=self.steps, lr=self.lr, optimizer=self.optimizer,
                       restarts=1, trial=_Finite(trial) if trial is not None else None, device=self.device)
        v = best.value.view(J, B)
        j = v.argmin(0)  # (B,) the best start of each environment
        rows = j * B + torch.arange(B, device=v.device)
        return {k: x[rows] for k, x in best.params.items()}, v.gather(0, j[None])[0]


@dataclass(kw_only=True)
class Refine(Planner):
    """A sampling planner, then gradient descent from its best candidates (see the module doc)."""

    sampler: Sampler
    gradient: Gradient = field(default_factory=lambda: Gradient(steps=20, lr=0.05, restarts=1))
    refine: int = 4  # starts of the descent per environment: the best candidate, then the next elites

    def __post_init__(self):
        self.name = f"{self.sampler.name}+gradient"
        check_positive(self, "refine")

    def configure(self, spaces, n_envs, *, seed=0, device=None) -> Refine:
        super().configure(spaces, n_envs, seed=seed, device=device)
        self.sampler.configure(spaces, n_envs, seed=self.streams)
        self.gradient.configure(spaces, n_envs, seed=self.streams)
        return self

    def solve(self, cost: Objective, init: Params | None = None, proposals: Sequence[Params] = ()) -> Plan:
        first = self.sampler.solve(cost, init, proposals)
        best = {ACTION: first.actions, **({} if first.latents is None else {"latent": first.latents})}
        elites = first.info["elites"]  # (E, B, ...) per space, lowest cost first
        n = min(self.refine - 1, len(elites[ACTION]))
        starts = [best] + [{k: v[j] for k, v in elites.items()} for j in range(n)]
        params, value = self.gradient.descend_from(cost, starts)
        better = value < first.cost  # (B,)
        out = {}
        for k, v in params.items():
            m = better.view(-1, *([1] * (v.dim() - 1)))
            out[k] = torch.where(m, v, best[k])
        info = {**first.info, "sampled_cost": first.cost, "refined": better, "steps": self.gradient.steps}
        return self.result(out, torch.where(better, value, first.cost), info)
