"""Baseline policies and a batched evaluation loop, for the tables a planner is compared against.

A policy is a callable ``policy(env) -> actions (N, *action)``: it reads what it needs from the
environment (the observation, or for a scripted expert the true state). Two are given:

===================== ==========================================================================
:class:`RandomPolicy` uniform actions in the action space's box, from its own seeded generator
:class:`Expert`       the environment's scripted expert (``env.expert()``): both Two Rooms envs
===================== ==========================================================================

:func:`evaluate` runs full episodes, ``num_envs`` at a time, and reports the success rate with
its Wilson 95% interval. Success is read when each episode ends (truncation, or termination for
an environment that terminates at its goal), so an agent that passes its goal and leaves fails.

Example::

    env = jg.envs.make("two_rooms_wall", n=100, variant="fixed")
    evaluate(env, Expert(), episodes=200, seed=1000)["success_rate"]        # 1.0
    evaluate(env, RandomPolicy(0), episodes=200, seed=1000)["ci95"]         # about (0.0, 0.03)
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .base import BatchedEnv

Policy = Callable[[BatchedEnv], torch.Tensor]


class RandomPolicy:
    """Actions drawn uniformly in the environment's action box ``[low, high]`` (``-1, 1`` where it
    is unbounded), from the policy's own generator. (``two_rooms_wall`` then clips each action's
    norm to 2.45 px, so the moves it makes are not uniform on the disc.)"""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __call__(self, env: BatchedEnv) -> torch.Tensor:
        space = env.action_space
        lo = -1.0 if space.low is None else space.low
        hi = 1.0 if space.high is None else space.high
        u = torch.rand(space.shape, generator=self.generator)
        return (lo + (hi - lo) * u).to(env.device, space.dtype)


class Expert:
    """The environment's scripted expert: ``env.expert()`` (straight to the goal, through the door
    when it is in the other room). Environments without one are refused."""

    def __call__(self, env: BatchedEnv) -> torch.Tensor:
        expert = getattr(env, "expert", None)
        if expert is None:
            raise TypeError(f"{type(env).__name__} has no scripted expert (an `expert()` method)")
        return expert()


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``n`` (95% with the default ``z``)."""
    if n <= 0:
        raise ValueError(f"a rate needs n >= 1 trials, got {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if successes == 0 else centre - half), (1.0 if successes == n else centre + half)


@torch.no_grad()
def evaluate(env: BatchedEnv, policy: Policy, episodes: int = 200, seed: int = 0,
             max_steps: int | None = None) -> dict[str, Any]:
    """Run ``episodes`` full episodes of ``policy`` in ``env``, ``env.num_envs`` at a time.

    The environment is reset with ``seed`` (and the policy reseeded, when it has ``reseed``), so
    the result is a pure function of ``seed``; later rounds continue the environment's stream.
    An episode ends at ``truncated`` or ``terminated``; ``max_steps`` (default ``env.max_steps``)
    bounds it. The environment must keep its agent in ``env.state`` and its goal in
    ``env.goal_state`` ((N, 2) positions), as both Two Rooms envs do.

    Returns a dict: ``episodes``, ``successes``, ``success_rate``, ``ci95`` (Wilson), and means
    over the episodes: ``mean_path_length`` (distance travelled), ``mean_final_distance`` (to the
    goal when the episode ended) and ``mean_steps``.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    limit = max_steps if max_steps is not None else getattr(env, "max_steps", None)
    if limit is None:
        raise ValueError(f"{type(env).__name__} never truncates its episodes: pass max_steps")
    if hasattr(policy, "reseed"):
        policy.reseed(seed)
    n = env.num_envs
    parts: dict[str, list[torch.Tensor]] = {"success": [], "path_length": [], "final_distance": [], "steps": []}
    for r in range(math.ceil(episodes / n)):
        env.reset(seed=seed if r == 0 else None)
        done = torch.zeros(n, dtype=torch.bool, device=env.device)
        success = done.clone()
        length = torch.zeros(n, device=env.device)
        final = torch.zeros(n, device=env.device)
        steps = torch.zeros(n, dtype=torch.long, device=env.device)
        for _ in range(limit):
            before = env.state.clone()
            _, _, terminated, truncated, _ = env.step(policy(env))
            live = ~done
            length += torch.where(live, (env.state - before).norm(dim=1), 0.0)
            steps += live.long()
            ended = live & (terminated | truncated | (steps >= limit))
            success = torch.where(ended, env.success(), success)
            final = torch.where(ended, (env.state - env.goal_state).norm(dim=1), final)
            done |= ended
            if bool(done.all()):
                break
        for key, v in zip(parts, (success, length, final, steps)):
            parts[key].append(v)
    out = {k: torch.cat(v)[:episodes] for k, v in parts.items()}
    k = int(out["success"].sum())
    return {"episodes": episodes, "successes": k, "success_rate": k / episodes, "ci95": wilson(k, episodes),
            **{f"mean_{key}": float(out[key].float().mean()) for key in ("path_length", "final_distance", "steps")}}
