"""Two Rooms: a 2-D point agent in [-1, 1]^2, split by a vertical wall at x = 0 with a door.

:class:`TwoRooms` is the geometry and the dynamics, every method batched over states (N, 2): an
action a in [-1, 1]^2 moves the agent by ``speed * a``; a move that would cross the wall
outside the door (``door`` wide, centred at y = 0) stops just before the wall (x = -+1e-3, the
side it came from) and keeps its vertical part; the outer border clamps. Observations are the
state itself or a 64x64 RGB rendering (walls grey, agent red, goal green).

:class:`TwoRoomsEnv` is ``num_envs`` copies as a :class:`~jepa_graph.envs.base.BatchedEnv`:
each episode draws a start and a goal uniformly (off the wall); the reward is minus the distance
to the goal; an environment terminates at its goal (within ``tol``) and truncates after
``max_steps``; :meth:`TwoRoomsEnv.expert` heads for the goal through the door.

Example::

    env = jg.envs.make("two_rooms", n=16, seed=0)
    obs, info = env.reset()                                  # (16, 2)
    obs, reward, terminated, truncated, info = env.step(env.expert())
    env.render().shape                                       # (16, 64, 64, 3) uint8
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .base import ArraySpec, BatchedEnv
from .registry import register_env


@dataclass(frozen=True)
class TwoRooms:
    """Geometry and dynamics; every method is batched over states (N, 2)."""

    door: float = 0.4  # door width (centred at y = 0)
    speed: float = 0.1  # displacement per step at |a| = 1
    noise: float = 0.0  # std of dynamics noise

    def reset(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """``n`` uniform start states (N, 2) (anywhere but on the wall)."""
        s = torch.rand(n, 2, generator=gen, device=gen.device if gen is not None else None) * 2 - 1
        s[:, 0] = torch.where(s[:, 0].abs() < 0.02, torch.full_like(s[:, 0], 0.02), s[:, 0])  # off the wall
        return s

    def step(self, s: torch.Tensor, a: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """s' = s + speed * clip(a), blocked by the wall outside the door: (N, 2)."""
        d = self.speed * a.clamp(-1, 1)
        if self.noise:
            d = d + self.noise * torch.randn(s.shape, generator=gen, device=s.device)
        new = (s + d).clamp(-1, 1)
        cross = (s[:, 0] * new[:, 0] < 0) | (new[:, 0] == 0)  # passes x = 0
        t = (-s[:, 0] / torch.where(d[:, 0] == 0, torch.ones_like(d[:, 0]), d[:, 0])).clamp(0, 1)
        y_at = s[:, 1] + t * d[:, 1]  # height where the path meets the wall
        blocked = cross & (y_at.abs() > self.door / 2)
        stop = s[:, 0].sign() * 1e-3  # just before the wall, on the side we came from
        new_x = torch.where(blocked, stop, new[:, 0])
        return torch.stack([new_x, new[:, 1]], dim=1)

    def room(self, s: torch.Tensor) -> torch.Tensor:
        """0 for the left room, 1 for the right one: (N,) long."""
        return (s[:, 0] > 0).long()

    def expert(self, s: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """The noiseless expert action (N, 2): towards the goal, via the door across rooms."""
        other = self.room(s) != self.room(goal)
        door = torch.stack([torch.zeros_like(s[:, 0]), s[:, 1].clamp(-self.door / 4, self.door / 4)], 1)
        # approach the door square-on from the agent's side, then step through
        near = torch.stack([s[:, 0].sign() * 0.05, door[:, 1]], 1)
        at_door = (s - near).norm(dim=1) < self.speed
        waypoint = torch.where((other & ~at_door)[:, None], near, torch.where(other[:, None], -near, goal))
        return ((waypoint - s) / self.speed).clamp(-1, 1)

    def success(self, s: torch.Tensor, goal: torch.Tensor, tol: float = 0.1) -> torch.Tensor:
        return (s - goal).norm(dim=1) < tol

    def render(self, s: torch.Tensor, goal: torch.Tensor | None = None, size: int = 64) -> torch.Tensor:
        """RGB images (N, 3, size, size) in [0, 1]: walls grey, agent red, goal green."""
        lin = (torch.arange(size, device=s.device) + 0.5) / size * 2 - 1
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        px = 2.0 / size
        wall = ((xx.abs() < px) & (yy.abs() > self.door / 2)) | (xx.abs() > 1 - px) | (yy.abs() > 1 - px)
        img = 0.5 * wall.float().expand(s.shape[0], 3, size, size).clone()

        def blob(p):  # a soft disc of radius ~2 pixels
            d2 = (xx[None] - p[:, 0, None, None]) ** 2 + (yy[None] - p[:, 1, None, None]) ** 2
            return torch.exp(-d2 / (2 * (1.5 * px) ** 2))

        img[:, 0] = torch.maximum(img[:, 0], blob(s))
        if goal is not None:
            img[:, 1] = torch.maximum(img[:, 1], blob(goal))
        return img


@register_env("two_rooms")
class TwoRoomsEnv(BatchedEnv):
    """``num_envs`` Two Rooms episodes stepped together (see the module's docstring).

    Args:
        door, speed, noise: the geometry and dynamics (:class:`TwoRooms`).
        obs: "state" (N, 2) positions, or "pixels" (N, 3, size, size) renderings in [0, 1].
        max_steps: steps after which an episode is truncated (None: never).
        tol: how close to the goal counts as success.
        seed, generator: the environment's randomness (one of them; neither: nondeterministic).
    """

    def __init__(self, num_envs: int = 16, *, door: float = 0.4, speed: float = 0.1, noise: float = 0.0,
                 obs: str = "state", size: int = 64, max_steps: int | None = 100, tol: float = 0.1,
                 seed: int | None = None, generator: torch.Generator | None = None, device: str | torch.device = "cpu"):
        super().__init__(num_envs, seed, device, generator)
        if obs not in ("state", "pixels"):
            raise ValueError(f"obs must be 'state' or 'pixels', got {obs!r}")
        self.rooms = TwoRooms(door=door, speed=speed, noise=noise)
        self.obs_kind, self.size, self.max_steps, self.tol = obs, size, max_steps, tol
        self.single_observation_space = (ArraySpec((2,), torch.float32, -1.0, 1.0, ("obs",)) if obs == "state" else
                                         ArraySpec((3, size, size), torch.float32, 0.0, 1.0, ("C", "H", "W")))
        self.single_action_space = ArraySpec((2,), torch.float32, -1.0, 1.0, ("act",))
        self.state: torch.Tensor | None = None  # (N, 2) positions, after reset
        self.goal_state: torch.Tensor | None = None  # (N, 2)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)  # steps since each reset

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """New starts, then new goals, drawn uniformly; ``options`` may also fix them: ``"state"``
        and ``"goal"`` (N, 2) positions, and ``"reset_mask"`` (N,) bool restricts the reset."""
        if seed is not None:
            self.generator = self._seeded(seed)
        options = options or {}
        mask = self.reset_mask(options)
        s = self._given(options, "state")
        s = s if s is not None else self.rooms.reset(self.num_envs, self.generator)
        g = self._given(options, "goal")
        g = g if g is not None else self.rooms.reset(self.num_envs, self.generator)
        if mask is None or self.state is None:
            self.state, self.goal_state = s, g
            self.t = torch.zeros_like(self.t)
        else:
            self.state = torch.where(mask[:, None], s, self.state)
            self.goal_state = torch.where(mask[:, None], g, self.goal_state)
            self.t = torch.where(mask, 0, self.t)
        return self._obs(self.state), {"state": self.state.clone()}

    def step(self, action: torch.Tensor):
        """Move every agent by ``speed * clip(action)`` (the wall and border stop it)."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        a = self.check_action(action)
        self.state = self.rooms.step(self.state, a, self.generator)
        self.t = self.t + 1
        reward = -(self.state - self.goal_state).norm(dim=1)
        never = self.max_steps is None
        truncated = torch.zeros_like(self.t, dtype=torch.bool) if never else self.t >= self.max_steps
        return self._obs(self.state), reward, self.success(), truncated, {"state": self.state.clone()}

    def success(self) -> torch.Tensor:
        if self.state is None:
            raise RuntimeError("call reset() before success()")
        return self.rooms.success(self.state, self.goal_state, self.tol)

    @property
    def goal(self) -> torch.Tensor:
        if self.goal_state is None:
            raise RuntimeError("call reset() before reading the goal")
        return self._obs(self.goal_state)

    def expert(self) -> torch.Tensor:
        """The noiseless expert's actions (N, 2) from the current states."""
        if self.state is None:
            raise RuntimeError("call reset() before expert()")
        return self.rooms.expert(self.state, self.goal_state)

    def render(self) -> torch.Tensor:
        if self.state is None:
            raise RuntimeError("call reset() before render()")
        img = self.rooms.render(self.state, self.goal_state, self.size)  # (N, 3, size, size) in [0, 1]
        return (img * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def _obs(self, s: torch.Tensor) -> torch.Tensor:
        return self.rooms.render(s, None, self.size) if self.obs_kind == "pixels" else s.clone()

    def _given(self, options: dict[str, Any], key: str) -> torch.Tensor | None:
        v = options.get(key)
        if v is None:
            return None
        v = torch.as_tensor(v, dtype=torch.float32, device=self.device)
        if tuple(v.shape) != (self.num_envs, 2):
            raise ValueError(f"options[{key!r}] must be ({self.num_envs}, 2) positions, got {list(v.shape)}")
        return v
