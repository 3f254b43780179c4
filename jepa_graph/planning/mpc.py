"""``jg.control``: receding-horizon control (MPC) of a batched environment, recorded.

Every ``replan_every`` steps the planner plans all environments at once from their current
observations (warm-started from the previous plan shifted by as many steps); the first
``replan_every`` actions are executed. ``mode="actor"`` acts with the spec's actor instead
(Mode-1). An episode ends at ``terminated`` or ``truncated`` (or after ``max_steps``); its success is
read then. Environments that finished keep being stepped with the others, unrecorded.

Example::

    env = jg.envs.make("two_rooms", n=16, seed=0)
    run = jg.control(model, env, planner="cem", replan_every=1, horizon=16)
    run.success_rate, run.plan_time_per_step, run.episode(0)["actions"].shape
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..core.errors import SpecError
from .base import Plan, env_seeds
from .flat import plan as plan_fn
from .world import world_of

# the attributes that fix an episode's walls where an environment draws them per episode (Two Rooms
# Wall's random variant): recorded so a run's plans can be replayed after the environment moved on
LAYOUT = ("wall_x", "door_y")


@dataclass
class Run:
    """What :func:`control` recorded, batched over the N environments (``max_steps`` at most).

    ``obs`` (T + 1, N, *obs), ``actions`` (T, N, *A), ``rewards`` (T, N), ``plan_cost`` (T, N): the
    predicted cost of the plan in force at each step; ``positions`` (T + 1, N, ...) the environment's
    true state where it exposes one (``env.state``), else None; ``lengths`` (N,) steps per episode;
    ``success`` (N,) at the episode's end; ``plan_time`` seconds of each replanning (all N at once);
    ``plans``: (step, actions (N, H, *A), predicted states (N, H, *S)) of every replanning when
    ``keep_plans``; ``frames``: the first frame of each episode (N, h, w, 3) when kept; ``goal``;
    ``layout``: what fixes each episode's walls where the environment draws them per episode
    (Two Rooms Wall's ``wall_x``, ``door_y`` (N,)), read at the reset, else empty."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    plan_cost: torch.Tensor
    lengths: torch.Tensor
    success: torch.Tensor
    plan_time: list[float] = field(default_factory=list)
    positions: torch.Tensor | None = None
    goal: torch.Tensor | None = None
    goal_positions: torch.Tensor | None = None
    plans: list[tuple[int, torch.Tensor, torch.Tensor | None]] = field(default_factory=list)
    frames: torch.Tensor | None = None
    layout: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def episodes(self) -> int:
        return int(self.lengths.numel())

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    @property
    def plan_time_per_step(self) -> float:
        """Seconds of planning per environment step (all environments together)."""
        steps = int(self.actions.shape[0])
        return sum(self.plan_time) / max(steps, 1)

    def path_length(self) -> torch.Tensor:
        """(N,) distance travelled in each episode (of ``positions``, else of the observations)."""
        p = self.positions if self.positions is not None else self.obs
        d = (p[1:] - p[:-1]).flatten(2).norm(dim=2)  # (T, N)
        live = torch.arange(d.shape[0], device=d.device)[:, None] < self.lengths[None].to(d.device)
        return (d * live).sum(0)

    def episode(self, i: int) -> dict[str, torch.Tensor]:
        """Episode ``i``'s records, cut to its length: ``obs`` (L + 1, ...), ``actions`` (L, ...), ..."""
        L = int(self.lengths[i])
        out = {"obs": self.obs[: L + 1, i], "actions": self.actions[:L, i], "rewards": self.rewards[:L, i],
               "plan_cost": self.plan_cost[:L, i], "success": self.success[i]}
        if self.positions is not None:
            out["positions"] = self.positions[: L + 1, i]
        return out


def control(model, env, planner: Any = "cem", *, replan_every: int = 1, horizon: int = 16, max_steps: int | None = None,
            mode: str = "plan", seed: int | None = 0, episode_offset: int = 0,
            goal: torch.Tensor | None = None, keep_plans: bool = False, keep_frames: bool = False,
            on_step: Callable[[int], None] | None = None, **plan_options: Any) -> Run:
    """Run one episode in each of ``env``'s N environments with receding-horizon planning.

    Args:
        model: a compiled model (world model and costs) or a :class:`DynamicsModel`.
        env: a :class:`~jepa_graph.envs.BatchedEnv`, reset here with ``seed``.
        planner: a method name ("cem", "icem", "mppi", "gradient", "cem+gradient", ...) or a Planner.
        replan_every: k: plan every k steps and execute the plan's first k actions (k <= horizon;
            the actor acts at every step).
        horizon: the plan's horizon H.
        max_steps: the most steps (default ``env.max_steps``).
        mode: "plan" (Mode-2) or "actor" (Mode-1: the spec's actor, no planning).
        seed: the environments' reset seed, and the root of every plan's random streams (each
            environment and replanning step its own, :func:`~.base.env_seeds`).
        episode_offset: the global index of this batch's first episode (for the streams: episode
            ``i`` plans alike whichever batch or rank runs it).
        goal: the goal (N, ...) (default ``env.goal`` when the costs read a goal).
        keep_plans, keep_frames: record every plan and predicted rollout / each episode's first frame.
        on_step: called with ``t`` after each environment step t = 0, 1, ... (all N environments
            stepped together): a progress hook, e.g. a bar's ``lambda t: bar.update(1)``.
        plan_options: for :func:`jepa_graph.plan` (``samples``, ``weights``, ``latent``, ...).

    Returns a :class:`Run`.
    """
    if isinstance(replan_every, bool) or not isinstance(replan_every, int) or not 1 <= replan_every:
        raise SpecError(f"replan_every must be a whole number >= 1, got {replan_every!r}",
                        hint="plan every k steps; 1 replans at every step")
    if isinstance(horizon, int) and not isinstance(horizon, bool) and replan_every > horizon >= 1:
        raise SpecError(f"replan_every ({replan_every}) is longer than the horizon ({horizon})",
                        hint="a plan holds `horizon` actions: replan at least that often")
    if mode not in ("plan", "actor"):
        raise SpecError(f"mode must be 'plan' or 'actor', got {mode!r}")
    limit = max_steps if max_steps is not None else getattr(env, "max_steps", None)
    if limit is None or isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SpecError(f"{type(env).__name__} never truncates its episodes: pass max_steps=N (>= 1)")
    world = world_of(model)
    N = env.num_envs
    obs, _ = env.reset(seed=seed)
    if goal is None and world.takes_goal:  # a world whose costs read no goal (a critic alone) gets none
        goal = env.goal
    frames = env.render() if keep_frames else None
    layout = {k: v.clone() for k in LAYOUT if torch.is_tensor(v := getattr(env, k, None))}
    track = getattr(env, "state", None) is not None
    obs_l, act_l, rew_l, cost_l, pos_l = [obs], [], [], [], [env.state.clone()] if track else []
    lengths = torch.zeros(N, dtype=torch.long, device=env.device)
    success = torch.zeros(N, dtype=torch.bool, device=env.device)
    done = torch.zeros(N, dtype=torch.bool, device=env.device)
    plan_time, plans, current, warm = [], [], None, None
    dev = world.device
    for t in range(limit):
        k = t % replan_every if mode == "plan" else 0
        if k == 0:
            tic = time.perf_counter()
            if mode == "actor":
                current = _act(world, obs.to(dev), None if goal is None else goal.to(dev), plan_options)
            else:
                seeds = None if seed is None else [env_seeds(seed, 1, episode_offset + b, step=t)[0] for b in range(N)]
                current = plan_fn(model, obs.to(dev), None if goal is None else goal.to(dev), planner, horizon,
                                  init=warm, seed=seeds, **plan_options)
                warm = current.shifted(replan_every)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            plan_time.append(time.perf_counter() - tic)
            if keep_plans:
                plans.append((t, current.actions.detach().cpu(),
                              None if current.states is None else current.states.detach().cpu()))
        a = current.actions[:, k].to(env.device)
        obs, reward, terminated, truncated, _ = env.step(a)
        live = ~done
        lengths += live.long()
        ended = live & (terminated | truncated | (lengths >= limit))
        success = torch.where(ended, env.success(), success)
        done |= ended
        obs_l.append(obs)
        act_l.append(a)
        rew_l.append(reward)
        cost_l.append(current.cost.to(env.device))
        if track:
            pos_l.append(env.state.clone())
        if on_step is not None:
            on_step(t)
        if bool(done.all()):
            break
    return Run(obs=torch.stack(obs_l), actions=torch.stack(act_l), rewards=torch.stack(rew_l),
               plan_cost=torch.stack(cost_l), lengths=lengths, success=success, plan_time=plan_time,
               positions=torch.stack(pos_l) if track else None, goal=goal,
               goal_positions=getattr(env, "goal_state", None), plans=plans, frames=frames, layout=layout,
               info={"mode": mode, "method": getattr(planner, "name", planner), "horizon": horizon,
                     "replan_every": replan_every})


def _act(world, obs: torch.Tensor, goal: torch.Tensor, options: dict[str, Any]) -> Plan:
    """Mode-1: the actor's action from the current observation, as a one-step plan."""
    with torch.no_grad():
        state = world.encode(obs)
        ctx = world.context(goal, options.get("context"), state.shape[0])
        a = world.propose(state, ctx, None if world.latent is None else
                          world.latent.default(state.shape[0], state.device)[:, None], 1, required=True)
    return Plan(a, torch.full((a.shape[0],), float("nan"), device=a.device), {"method": "actor"})
