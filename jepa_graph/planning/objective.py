"""The plan cost: what the planners minimise, from a world model and its costs.

For candidate action sequences ``a`` (C * B, H, *A), rows ``c * B + b``::

    s_0 = Enc(obs_b)                       encoded once per plan, tiled to the candidates
    s_1..s_H = rollout(s_0, a, z)          one batched rollout of every candidate
    J(a) = sum_t discount^t sum_k w_k C_k(s_{t+1}, a_t, z_t, goal_b)   (t = H - 1 alone: terminal_only)

The cost terms ``C_k`` and their default weights are the spec's ``costs:``; ``weights`` given at
call time replace them (the configurator) with nothing recompiled. All the steps' states go
through the cost program in one call of (T * C * B) rows. The latents ``z`` follow a policy:
``"zero"`` (the prior's mode), ``"sample"`` (prior draws, new at every evaluation) or
``"optimise"`` (searched with the actions; their R(z) is added to J).

A candidate whose cost is NaN or inf counts as +inf (never an elite, never the plan); the first
time it happens a warning names the block that produced it (``on_nonfinite="raise"``: a
:class:`NonFiniteCostError` instead).
"""
from __future__ import annotations

import logging
import math
from typing import Any

import torch

from ..core.errors import BlockRuntimeError
from ..search.objective import Params
from ..search.spaces import Continuous, Discrete
from .base import ACTION, LATENT, Streams

log = logging.getLogger(__name__)
LATENT_POLICIES = ("zero", "sample", "optimise")


class NonFiniteCostError(BlockRuntimeError):
    """The plan cost was NaN or inf; the message names the block that produced it."""


class PlanCost:
    """``f(params) -> (C * B,)``: the plan cost of candidates ``params[ACTION]`` (C * B, H, *A) (see the module doc).

    ``rollouts`` counts the candidate sequences evaluated, ``calls`` the evaluations, ``nonfinite``
    the candidates whose cost was not finite."""

    def __init__(self, world, state: torch.Tensor, ctx: dict[str, Any], horizon: int, *, weights: dict[str, float],
                 discount: float = 1.0, terminal_only: bool = False, latent: str = "zero",
                 streams: Streams | None = None, on_nonfinite: str = "skip", what: str = "planning"):
        self.world, self.state, self.H = world, state, horizon
        self.ctx = {k: v for k, v in ctx.items() if k != "__raw__"}
        self.B = state.shape[0]
        self.weights = {k: float(w) for k, w in weights.items() if w != 0}  # a term turned off is not even summed
        self.steps = [horizon - 1] if terminal_only else list(range(horizon))
        disc = [1.0] if terminal_only else [discount ** t for t in range(horizon)]
        self.discount = torch.tensor(disc, dtype=state.dtype, device=state.device)  # (T,)
        self.latent, self.streams, self.on_nonfinite, self.what = latent, streams, on_nonfinite, what
        self.step: int | None = None  # the planner's iteration, for messages
        self.rollouts = self.calls = self.nonfinite = 0
        self.first_nonfinite: str | None = None
        self._last_z: torch.Tensor | None = None
        self._tiles: dict[tuple[int, int], tuple[torch.Tensor, dict[str, Any]]] = {}

    # --------------------------------------------------------------------------- the latents
    def latents(self, C: int) -> torch.Tensor | None:
        """The world model's latents (C * B, H, *Z) for C candidates per environment, by the policy."""
        ls = self.world.latent
        if ls is None:
            return None
        B, H, dev = self.B, self.H, self.state.device
        if self.latent == "sample":
            space = ls.space
            if isinstance(space, Discrete):
                idx = (self.streams.rand(C, H, *space.shape) * space.k).long().clamp(max=space.k - 1)
                return space.one_hot(idx).flatten(0, 1)
            return self.streams.prior(Continuous((H, *space.shape), space.lo, space.hi), C).flatten(0, 1)
        z = ls.default(C * B * H, dev).to(self.state.dtype)  # the prior's mode
        return z.view(C * B, H, *z.shape[1:])

    def _tiled(self, C: int, T: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """The start states (C * B, *S) and the context (T * C * B, ...) rows, for C candidates and T steps."""
        key = (C, T)
        if key not in self._tiles:
            s = self.state.repeat(C, *([1] * (self.state.dim() - 1)))
            ctx = {k: v.repeat(T * C, *([1] * (v.dim() - 1))) if isinstance(v, torch.Tensor) else v
                   for k, v in self.ctx.items()}
            self._tiles = {key: (s, ctx)}  # one size at a time: a planner keeps its candidate count
        return self._tiles[key]

    # ------------------------------------------------------------------------------ the cost
    def parts(self, params: Params) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        """The predicted states (N, H, *S), each term's discounted sum over the costed steps (N,)
        (unweighted), and the latents' penalty (N,) when they are optimised (else None)."""
        a = params[ACTION]
        N = a.shape[0]
        C = N // self.B
        T = len(self.steps)
        s0, ctx = self._tiled(C, T)
        z = params.get(LATENT)
        if z is None:
            z = self.latents(C)
        self._last_z = z
        states = self.world.rollout(s0, a, z)  # (N, H, *S): one call for every candidate
        pick = self.steps if T < self.H else slice(None)
        st = states[:, pick].transpose(0, 1).reshape(T * N, *states.shape[2:])  # rows t * N + n
        at = a[:, pick].transpose(0, 1).reshape(T * N, *a.shape[2:])
        zt = None if z is None else z[:, pick].transpose(0, 1).reshape(T * N, *z.shape[2:])
        terms = self.world.terms(st, at, zt, ctx)  # each (T * N,)
        sums = {k: (v.view(T, N) * self.discount[:, None]).sum(0) for k, v in terms.items()}
        pen = None
        if LATENT in params and self.world.latent is not None and self.world.latent.regs:
            zz = params[LATENT]
            pen = self.world.latent.penalty(zz.reshape(N * self.H, *zz.shape[2:]), self.world.latent.regs)
            pen = pen.view(N, self.H).sum(1) if isinstance(pen, torch.Tensor) else None
        return states, sums, pen

    def __call__(self, params: Params, trial: bool = False) -> torch.Tensor:
        """(N,) plan costs; ``trial`` (a line search's trial point): a non-finite cost is +inf, silently."""
        _, sums, pen = self.parts(params)
        N = params[ACTION].shape[0]
        total = None
        for k, w in self.weights.items():
            v = sums[k] * w
            total = v if total is None else total + v
        if total is None:
            total = torch.zeros(N, device=self.state.device, dtype=self.state.dtype)
        if pen is not None:
            total = total + pen
        self.calls += 1
        self.rollouts += N
        bad = ~torch.isfinite(total.detach())
        if bool(bad.any()):
            if trial:
                return torch.where(bad, math.inf, total)
            self.nonfinite += int(bad.sum())
            if self.on_nonfinite == "raise" or self.first_nonfinite is None:
                msg = self._message(params, bad, total.detach())
                if self.on_nonfinite == "raise":
                    raise NonFiniteCostError(msg)
                self.first_nonfinite = msg
                log.warning("%s (those candidates count as +inf: never an elite nor the plan)", msg)
            total = torch.where(bad, math.inf, total)
        return total

    def trial(self, params: Params) -> torch.Tensor:
        """The cost at a line search's trial point: non-finite is +inf, neither raised nor logged."""
        return self(params, trial=True)

    def _message(self, params: Params, bad: torch.Tensor, total: torch.Tensor) -> str:
        rows = bad.nonzero().flatten()
        vals = total[rows]
        kind = "NaN" if bool(vals.isnan().all()) else "infinite" if bool(vals.isinf().all()) else "NaN or infinite"
        head = f"plan cost is {kind} for {len(rows)} of {total.numel()} candidate(s) during {self.what}" + \
               (f" (iteration {self.step})" if self.step is not None else "")
        sub = rows[:16]
        env = sub % self.B
        z = None if self._last_z is None else self._last_z[sub]  # the latents those candidates were costed with
        ctx = {k: v[env] if isinstance(v, torch.Tensor) else v for k, v in self.ctx.items()}
        why = self.world.explain(self.state[env], params[ACTION][sub].detach(), None if z is None else z.detach(),
                                 ctx, self.steps)
        loc, sep, rest = why.partition(": block ")
        if sep and ":" in loc:  # lead with the block's location, as every located message does
            return f"{loc}: {head}: block {rest}"
        return f"{head}: {why}"
