"""What every planner shares: the interface, the result, per-environment random streams.

A planner minimises a plan cost over action sequences for B environments at once::

    planner = CEM(samples=256, elites=32).configure({"action": Continuous((H, A), -1, 1)}, n_envs=B, seed=0)
    plan = planner.solve(cost, init={"action": warm})     # cost: {"action": (C * B, H, A)} -> (C * B,)
    plan.actions, plan.cost                               # (B, H, A), (B,)

The cost is a :class:`~jepa_graph.search.Objective`: candidates laid out ``c * B + b`` (candidate
``c`` of environment ``b``), one value per row, lower is better, +inf for a candidate that cannot
be used. Spaces are named :data:`ACTION` (the action sequence) and, when the world model's
latents are optimised too, :data:`LATENT`. Every random draw for environment ``b`` comes from its
own stream (:class:`Streams`), so a result does not depend on the batch around it: planning
environment ``b`` alone with its seed gives the same plan as planning it among others.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Sequence

import torch

from ..core.errors import SpecError
from ..search.objective import Objective, Params
from ..search.spaces import Continuous

ACTION, LATENT = "action", "latent"  # the spaces' names in a plan's candidates


@dataclass
class Plan:
    """The result of planning B environments.

    ``actions`` (B, H, *A), ``cost`` (B,) its plan cost (+inf where no candidate was finite);
    ``latents`` (B, H, *Z) when they were optimised; ``states`` (B, H, *S) the world model's
    prediction along the plan and ``terms`` each cost term's (unweighted) share (B,), filled in
    by :func:`jepa_graph.plan`; ``info``: method, iterations, candidate rollouts evaluated, the
    best cost after each iteration (``history``), non-finite candidates met, seconds."""

    actions: torch.Tensor
    cost: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    latents: torch.Tensor | None = None
    states: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] | None = None

    def shifted(self, k: int = 1) -> Params:
        """The warm start for the next replanning, ``k`` steps later: every sequence moved ``k``
        steps earlier, its last value repeated to fill the horizon."""
        def shift(x: torch.Tensor) -> torch.Tensor:
            k_ = min(k, x.shape[1] - 1)
            return torch.cat([x[:, k_:], x[:, -1:].expand(-1, k_, *x.shape[2:])], 1) if k_ > 0 else x.clone()
        out = {ACTION: shift(self.actions)}
        if self.latents is not None:
            out[LATENT] = shift(self.latents)
        return out


# ------------------------------------------------------------------------------------ streams
_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: nearby integers to unrelated 64-bit values."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def env_seeds(seed: int, n: int, offset: int = 0, step: int = 0) -> list[int]:
    """One seed per environment ``offset .. offset + n - 1`` of run ``seed`` at (replanning) ``step``:
    distinct for every (seed, environment, step), so planning an environment alone reproduces it."""
    return [_mix(_mix(_mix(int(seed)) ^ (offset + b)) ^ step) >> 1 for b in range(n)]


class Streams:
    """One :class:`torch.Generator` per environment: draws ``(n, B, *shape)`` whose slice ``[:, b]``
    comes from environment b's stream alone."""

    def __init__(self, seeds: Sequence[int], device=None, dtype: torch.dtype = torch.float32):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype  # of the draws: the model's
        self.gens = [torch.Generator(self.device).manual_seed(int(s)) for s in seeds]

    @classmethod
    def of(cls, seed: int | Sequence[int] | None, n: int, device=None, dtype: torch.dtype = torch.float32) -> Streams:
        """Streams for ``n`` environments: from one seed (:func:`env_seeds`), one seed each, or
        (None) fresh nondeterministic seeds."""
        if seed is None:
            seeds = [int(s) for s in torch.randint(0, 2 ** 62, (n,))]
        elif isinstance(seed, (int,)) and not isinstance(seed, bool):
            seeds = env_seeds(seed, n)
        else:
            seeds = [int(s) for s in seed]
            if len(seeds) != n:
                raise SpecError(f"`seed` gives {len(seeds)} seeds for {n} environments",
                                hint="give one int, or one seed per environment (row of obs)")
        return cls(seeds, device, dtype)

    def __len__(self) -> int:
        return len(self.gens)

    def randn(self, n: int, *shape: int) -> torch.Tensor:
        """(n, B, *shape) standard normal draws."""
        return torch.stack([torch.randn(n, *shape, generator=g, device=self.device, dtype=self.dtype)
                            for g in self.gens], 1)

    def rand(self, n: int, *shape: int) -> torch.Tensor:
        """(n, B, *shape) uniform draws in [0, 1)."""
        return torch.stack([torch.rand(n, *shape, generator=g, device=self.device, dtype=self.dtype)
                            for g in self.gens], 1)

    def prior(self, space: Continuous, n: int) -> torch.Tensor:
        """(n, B, *shape) draws from a continuous space's search prior: uniform on a box, else N(0, 1)
        projected onto the bounds it has."""
        if space.box:
            lo, hi = space.bounds(torch.empty(0, device=self.device, dtype=self.dtype))
            return lo + (hi - lo) * self.rand(n, *space.shape)
        return space.project(self.randn(n, *space.shape))


# ----------------------------------------------------------------------------------- planners
class Planner(ABC):
    """One planning method: ``configure`` once per problem size, then ``solve`` (see the module doc).

    Subclasses are dataclasses of their hyperparameters (``CEM(samples=256)``); ``name`` is the
    method's name in :func:`jepa_graph.plan`."""

    name: ClassVar[str] = ""
    spaces: dict[str, Continuous]
    n_envs: int
    streams: Streams

    def configure(self, spaces: dict[str, Continuous], n_envs: int, *, seed: int | Sequence[int] | Streams | None = 0,
                  device=None, dtype: torch.dtype = torch.float32) -> Planner:
        """Set the spaces searched (by name: :data:`ACTION`, maybe :data:`LATENT`), the number of
        environments B and the random streams (one seed, one per environment, or :class:`Streams`,
        whose device and dtype the candidates then take). Returns self."""
        if ACTION not in spaces:
            raise ValueError(f"a planner searches an `{ACTION}` space; got {sorted(spaces)}")
        for k, s in spaces.items():
            if not isinstance(s, Continuous):
                raise TypeError(f"space `{k}` is a {type(s).__name__}: planners search continuous spaces")
        if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be an int >= 1, got {n_envs!r}")
        self.spaces, self.n_envs = dict(spaces), n_envs
        self.streams = seed if isinstance(seed, Streams) else Streams.of(seed, n_envs, device, dtype)
        return self

    @abstractmethod
    def solve(self, cost: Objective, init: Params | None = None, proposals: Sequence[Params] = ()) -> Plan:
        """Minimise ``cost``. ``init``: the start (B, *shape) per space (default each prior's mode), e.g.
        the previous plan shifted; ``proposals``: extra candidates (B, *shape) per space evaluated
        among the others (an actor's plan)."""

    # helpers for subclasses
    @property
    def device(self) -> torch.device:
        return self.streams.device

    def start(self, init: Params | None) -> Params:
        """The start point (B, *shape) of every space, projected onto it."""
        init = init or {}
        dev, dt = self.device, self.streams.dtype
        return {k: s.project(init[k].to(dev, dt) if k in init else s.init(self.n_envs, dev).to(dt))
                for k, s in self.spaces.items()}

    def result(self, params: Params, value: torch.Tensor, info: dict[str, Any]) -> Plan:
        return Plan(params[ACTION], value, {**info, "method": self.name}, latents=params.get(LATENT))


def options_of(cls: type) -> list[str]:
    """The hyperparameters a planner class takes."""
    return [f.name for f in fields(cls) if f.init]


def check_positive(planner, *names: str) -> None:
    """A SpecError for a hyperparameter that must be a whole number >= 1."""
    for n in names:
        v = getattr(planner, n)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"{planner.name}: `{n}` must be a whole number >= 1, got {v!r}")


def check_real(planner, name: str, lo: float = 0.0, hi: float = math.inf, open_lo: bool = True) -> None:
    """A SpecError for a hyperparameter that must be a number in (lo, hi] (or [lo, hi])."""
    v = getattr(planner, name)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
        (v > lo if open_lo else v >= lo) and v <= hi
    if not ok:
        rng = f"{'(' if open_lo else '['}{lo}, {hi}]" if hi != math.inf else f"{'>' if open_lo else '>='} {lo}"
        raise SpecError(f"{planner.name}: `{name}` must be a number {rng}, got {v!r}")
