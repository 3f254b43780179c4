"""Two Rooms in the protocol of the published JEPA planners (PLDM's "Wall"), so our numbers compare.

A point agent in a 65x65 pixel arena: border walls on the pixel lines 4 and 60, a vertical
centre wall 3 px wide, and a door in it. Coordinates are pixels: pixel (row i, column j) is
centred at (x=j, y=i). Per environment (:class:`TwoRoomsWallEnv`, ``variant="random"``) the wall's
centre column ``wall_x`` is drawn uniformly from the integers 20..44 and the door's centre row
``door_y`` from 10..54; ``variant="fixed"`` has wall 32, door 18.

How the protocol's words are read here (each a choice, stated):

* The centre wall is the closed slab ``|x - wall_x| <= 1`` (its three pixel columns); the door
  opens it where ``|y - door_y| <= 4`` (rows door_y-4..door_y+4). The borders are the closed
  half-planes ``x <= 4``, ``x >= 60``, ``y <= 4``, ``y >= 60``. What is left is the free region
  (a corridor of 2 x 8 px through the door belongs to it).
* An action is a 2-D displacement in pixels, its *norm* clipped to 2.45 (the action space's box
  is [-2.45, 2.45]^2, the step clips the norm, so a diagonal is not longer than a straight move).
* A move that would enter a wall stops at it: the agent goes along its segment to the first
  contact and stays there, 1e-3 px off the face it hit (on the side it came from, so it never
  tunnels and is never teleported); ``info["blocked"]`` says which moves were stopped. (The
  published code adds N(0, 0.5) noise at the contact; these dynamics are deterministic.)
* Start and goal are drawn uniformly in different rooms (which room the start is in: a fair
  coin), at least 2.6 px (2 sigma of the dot) from every wall.
* Episodes last 200 steps (``truncated`` at step 200); nothing terminates them early
  (``terminated`` is always False: an agent may pass its goal). Success is the *final* distance
  to the goal under 4.5 px; :meth:`TwoRoomsWallEnv.success` answers it at any time and
  :func:`~jepa_graph.envs.baselines.evaluate` reads it at the end of each episode.
* Observations are float32. ``obs="state"``: (x, y, wall_x, door_y) in pixels, not normalised.
  ``obs="pixels"``: (2, 65, 65), channel 0 the agent as a Gaussian dot (sigma 1.3 px, peak 1 at
  the agent's position), channel 1 the walls (1 on wall pixels, the border lines included).
  ``env.goal`` is the goal as the same kind of observation (the dot at the goal, same walls).
* The reward is minus the distance to the goal, in pixels.

:class:`WallRooms` holds the geometry and dynamics, every method batched over (N, 2) positions
with per-environment (N,) ``wall_x`` and ``door_y``; the env keeps the state and draws from its
own generator. Everything is a handful of (N,)-sized tensor ops per step, no loop over envs.

Example::

    env = jg.envs.make("two_rooms_wall", n=64, seed=0, obs="pixels")   # or variant="fixed"
    obs, info = env.reset()                                            # (64, 2, 65, 65)
    obs, reward, terminated, truncated, info = env.step(env.expert())
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .base import ArraySpec, BatchedEnv
from .registry import register_env

VARIANTS = ("random", "fixed")


def clip_norm(a: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``a`` (N, 2) scaled down where its norm exceeds ``max_norm``."""
    n = a.norm(dim=-1, keepdim=True)
    return a * (max_norm / n.clamp(min=max_norm))


@dataclass(frozen=True)
class WallRooms:
    """The protocol's geometry and dynamics, in pixels; methods are batched over (N, 2) positions."""

    size: int = 65  # the arena is size x size pixels
    border: tuple[int, int] = (4, 60)  # the border walls' pixel lines
    wall_half: int = 1  # the centre wall spans wall_x - 1 .. wall_x + 1 (3 px)
    door_half: int = 4  # the door spans door_y - 4 .. door_y + 4
    wall_range: tuple[int, int] = (20, 44)  # wall_x drawn uniformly in these integers (inclusive)
    door_range: tuple[int, int] = (10, 54)  # door_y likewise
    fixed: tuple[int, int] = (32, 18)  # (wall_x, door_y) of the fixed variant
    max_step: float = 2.45  # the norm of a move is at most this
    sigma: float = 1.3  # the agent's dot in pixel observations
    margin: float = 2.6  # starts and goals keep 2 sigma from every wall
    tol: float = 4.5  # success: final distance to the goal under this
    eps: float = 1e-3  # a stopped agent rests this far off the face it hit

    # ------------------------------------------------------------------ layout and draws
    def layouts(self, n: int, variant: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` layouts ``(wall_x, door_y)``, each (N,) float: uniform integers, or the fixed one."""
        dev = gen.device
        if variant == "fixed":
            return (torch.full((n,), float(self.fixed[0]), device=dev),
                    torch.full((n,), float(self.fixed[1]), device=dev))
        (w0, w1), (d0, d1) = self.wall_range, self.door_range
        wall_x = torch.randint(w0, w1 + 1, (n,), generator=gen, device=dev).float()
        door_y = torch.randint(d0, d1 + 1, (n,), generator=gen, device=dev).float()
        return wall_x, door_y

    def in_room(self, room: torch.Tensor, wall_x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A uniform position (N, 2) in room ``room`` (N,) (0 left, 1 right), ``margin`` off every wall."""
        lo, hi = self.border[0] + self.margin, self.border[1] - self.margin
        inner = self.wall_half + self.margin
        x0 = torch.where(room.bool(), wall_x + inner, torch.full_like(wall_x, lo))
        x1 = torch.where(room.bool(), torch.full_like(wall_x, hi), wall_x - inner)
        u = torch.rand(room.shape[0], 2, generator=gen, device=wall_x.device)
        return torch.stack([x0 + u[:, 0] * (x1 - x0), lo + u[:, 1] * (hi - lo)], 1)

    def room(self, pos: torch.Tensor, wall_x: torch.Tensor) -> torch.Tensor:
        """0 left of the wall's centre, 1 right of it: (N,) long."""
        return (pos[..., 0] > wall_x).long()

    def free(self, pos: torch.Tensor, wall_x: torch.Tensor, door_y: torch.Tensor) -> torch.Tensor:
        """Whether each position (N, 2) is off every wall: (N,) bool."""
        lo, hi = self.border
        x, y = pos[..., 0], pos[..., 1]
        inside = (x > lo) & (x < hi) & (y > lo) & (y < hi)
        on_wall = ((x - wall_x).abs() <= self.wall_half) & ((y - door_y).abs() > self.door_half)
        return inside & ~on_wall

    # ------------------------------------------------------------------ dynamics
    def move(self, pos: torch.Tensor, a: torch.Tensor, wall_x: torch.Tensor, door_y: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``(new positions (N, 2), blocked (N,) bool)``.

        The agent moves by ``a`` (its norm clipped to ``max_step``) along the segment, up to the
        first wall it meets; there it stops, ``eps`` off that wall's face."""
        d = clip_norm(a, self.max_step)
        lo, hi = self.border
        inf = torch.full_like(pos[:, 0], math.inf)
        # candidate contacts (N, 4): the x border, the y border, the wall below the door, above it
        ts, axes = [], []
        for k in (0, 1):  # the border on the side each axis moves towards
            dk = d[:, k]
            edge = torch.where(dk > 0, torch.full_like(dk, float(hi)), torch.full_like(dk, float(lo)))
            t = (edge - pos[:, k]) / torch.where(dk == 0, torch.ones_like(dk), dk)
            ts.append(torch.where(dk == 0, inf, t))
            axes.append(torch.full_like(dk, k, dtype=torch.long))
        x_slab = (wall_x - self.wall_half, wall_x + self.wall_half)
        for y_slab in ((-inf, door_y - self.door_half), (door_y + self.door_half, inf)):
            t, axis = _enter_box(pos, d, x_slab, y_slab)
            ts.append(t)
            axes.append(axis)
        t_all, ax_all = torch.stack(ts, 1), torch.stack(axes, 1)  # (N, 4)
        t_hit, which = t_all.min(1)
        blocked = t_hit <= 1
        axis = ax_all.gather(1, which[:, None])[:, 0]  # the face's normal axis
        contact = pos + t_hit.clamp(0, 1)[:, None] * d
        back = torch.nn.functional.one_hot(axis, 2).to(d.dtype) * d.sign() * self.eps  # off the face
        stopped = contact - back
        new = torch.where(blocked[:, None], stopped, pos + d)
        return new.clamp(lo + self.eps, hi - self.eps), blocked

    def success(self, pos: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(N,) bool: within ``tol`` of the goal."""
        return (pos - goal).norm(dim=-1) < self.tol

    def expert(self, pos: torch.Tensor, goal: torch.Tensor, wall_x: torch.Tensor, door_y: torch.Tensor
               ) -> torch.Tensor:
        """The scripted expert's actions (N, 2), steps of at most ``max_step``: straight to the goal
        in its room; from the other room first to the door's near side (4 px before the wall's
        centre, at the door's centre row), then straight across to its far side, then to the goal."""
        g_side = torch.where(goal[:, 0] > wall_x, 1.0, -1.0)  # +1: the goal is right of the wall
        off = self.wall_half + 3.0
        near = torch.stack([wall_x - g_side * off, door_y], 1)
        far = torch.stack([wall_x + g_side * off, door_y], 1)
        rel = g_side * (pos[:, 0] - wall_x)  # > wall_half: in the goal's room, past the wall
        in_goal_room = rel > self.wall_half
        lined_up = ((pos[:, 1] - door_y).abs() < 0.5) & (rel >= -off - 1e-3)  # at the near side or beyond
        target = torch.where(in_goal_room[:, None], goal, torch.where(lined_up[:, None], far, near))
        return clip_norm(target - pos, self.max_step)

    # ------------------------------------------------------------------ observations
    def walls(self, wall_x: torch.Tensor, door_y: torch.Tensor) -> torch.Tensor:
        """The wall channel (N, size, size): 1 on wall pixels (borders included), else 0."""
        idx = torch.arange(self.size, device=wall_x.device, dtype=torch.float32)
        lo, hi = self.border
        border = (idx == lo) | (idx == hi)
        column = (idx[None] - wall_x[:, None]).abs() <= self.wall_half  # (N, W)
        door = (idx[None] - door_y[:, None]).abs() <= self.door_half  # (N, H)
        wall = (column[:, None, :] & ~door[:, :, None]) | border[None, :, None] | border[None, None, :]
        return wall.float()

    def dot(self, pos: torch.Tensor) -> torch.Tensor:
        """The agent channel (N, size, size): a Gaussian of ``sigma`` px and peak 1 at ``pos``."""
        idx = torch.arange(self.size, device=pos.device, dtype=torch.float32)
        g = torch.exp(-(idx[None, None] - pos[:, :, None]) ** 2 / (2 * self.sigma ** 2))  # (N, 2, size): x, y
        return g[:, 1, :, None] * g[:, 0, None, :]  # (N, rows=y, cols=x)

    def pixels(self, pos: torch.Tensor, walls: torch.Tensor) -> torch.Tensor:
        """Pixel observations (N, 2, size, size) of positions ``pos`` given the wall channel."""
        return torch.stack([self.dot(pos), walls], 1)

    def state(self, pos: torch.Tensor, wall_x: torch.Tensor, door_y: torch.Tensor) -> torch.Tensor:
        """State observations (N, 4): (x, y, wall_x, door_y) in pixels."""
        return torch.cat([pos, wall_x[:, None], door_y[:, None]], 1)


def _enter_box(pos: torch.Tensor, d: torch.Tensor, x_slab: tuple, y_slab: tuple
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """When the segment ``pos + t d``, t in [0, 1], first enters the box ``x_slab x y_slab``
    (bounds (N,) tensors, +-inf allowed): ``(t (N,), inf where it does not; axis (N,) of the
    face it enters by)``. Slab method; a segment that only grazes an edge does not enter."""
    nears, fars = [], []
    for k, (lo, hi) in enumerate((x_slab, y_slab)):
        dk, pk = d[:, k], pos[:, k]
        safe = torch.where(dk == 0, torch.ones_like(dk), dk)
        t1, t2 = (lo - pk) / safe, (hi - pk) / safe
        inside = (pk >= lo) & (pk <= hi) if k == 0 else (pk > lo) & (pk < hi)  # the door's edge rows are open
        still_near = torch.where(inside, -math.inf, math.inf)  # not moving on this axis: in the slab or never
        nears.append(torch.where(dk == 0, still_near, torch.minimum(t1, t2)))
        fars.append(torch.where(dk == 0, -still_near, torch.maximum(t1, t2)))
    t_in, t_out = torch.maximum(*nears), torch.minimum(*fars)
    enters = (t_in < t_out) & (t_out > 0) & (t_in <= 1)
    axis = (nears[1] > nears[0]).long()
    return torch.where(enters, t_in.clamp(min=0), math.inf), axis


@register_env("two_rooms_wall")
class TwoRoomsWallEnv(BatchedEnv):
    """``num_envs`` Two Rooms episodes in the published protocol (see the module's docstring).

    Args:
        variant: "random" (each environment its own wall_x and door_y, drawn at every reset) or
            "fixed" (wall 32, door 18).
        obs: "state" (N, 4) = (x, y, wall_x, door_y) in pixels, or "pixels" (N, 2, 65, 65).
        max_steps: the episode length (truncated after it; None: never).
        seed, generator: the environment's randomness (one of them; neither: nondeterministic).
    """

    def __init__(self, num_envs: int = 16, *, variant: str = "random", obs: str = "state",
                 max_steps: int | None = 200, seed: int | None = None, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__(num_envs, seed, device, generator)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be 'random' or 'fixed', got {variant!r}")
        if obs not in ("state", "pixels"):
            raise ValueError(f"obs must be 'state' or 'pixels', got {obs!r}")
        self.rooms = WallRooms()
        self.variant, self.obs_kind, self.max_steps = variant, obs, max_steps
        s = self.rooms.size
        self.single_observation_space = (
            ArraySpec((4,), torch.float32, 0.0, float(s - 1), ("obs",)) if obs == "state" else
            ArraySpec((2, s, s), torch.float32, 0.0, 1.0, ("C", "H", "W")))
        m = self.rooms.max_step
        self.single_action_space = ArraySpec((2,), torch.float32, -m, m, ("act",))
        self.state: torch.Tensor | None = None  # (N, 2) agent positions, after reset
        self.goal_state: torch.Tensor | None = None  # (N, 2) goal positions
        self.wall_x = self.door_y = self._walls = None  # (N,), (N,), (N, 65, 65) wall channel
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)  # steps since each reset

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """New layouts, then starts and goals in different rooms. ``options`` may fix any of
        them: ``"wall_x"``, ``"door_y"`` (N,) and ``"state"``, ``"goal"`` (N, 2) positions (off
        the walls); ``"reset_mask"`` (N,) bool restricts the reset to those environments."""
        if seed is not None:
            self.generator = self._seeded(seed)
        options = options or {}
        mask = self.reset_mask(options)
        n, gen, rooms = self.num_envs, self.generator, self.rooms
        wall_x, door_y = rooms.layouts(n, self.variant, gen)
        wall_x = self._given(options, "wall_x", (n,), wall_x)
        door_y = self._given(options, "door_y", (n,), door_y)
        room = torch.randint(0, 2, (n,), generator=gen, device=self.device)
        start = self._given(options, "state", (n, 2), rooms.in_room(room, wall_x, gen))
        goal = self._given(options, "goal", (n, 2), rooms.in_room(1 - room, wall_x, gen))
        for key, p in (("state", start), ("goal", goal)):
            if key in options and not bool(rooms.free(p, wall_x, door_y).all()):
                raise ValueError(f"options[{key!r}] has positions on a wall (the free region is 4 < x, y < 60 "
                                 f"off the centre wall |x - wall_x| <= 1 outside the door)")
        if mask is None or self.state is None:
            self.state, self.goal_state, self.wall_x, self.door_y = start, goal, wall_x, door_y
            self.t = torch.zeros_like(self.t)
        else:
            m1 = mask[:, None]
            self.state, self.goal_state = torch.where(m1, start, self.state), torch.where(m1, goal, self.goal_state)
            self.wall_x, self.door_y = torch.where(mask, wall_x, self.wall_x), torch.where(mask, door_y, self.door_y)
            self.t = torch.where(mask, 0, self.t)
        self._walls = rooms.walls(self.wall_x, self.door_y) if self.obs_kind == "pixels" else None
        return self._obs(self.state), {"state": self.state.clone()}

    def step(self, action: torch.Tensor):
        """Move every agent by ``action`` (norm clipped to 2.45 px; walls stop it)."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        a = self.check_action(action)
        if not bool(torch.isfinite(a).all()):
            raise ValueError("step takes finite actions, got NaN or inf")
        self.state, blocked = self.rooms.move(self.state, a, self.wall_x, self.door_y)
        self.t = self.t + 1
        reward = -(self.state - self.goal_state).norm(dim=1)
        terminated = torch.zeros_like(self.t, dtype=torch.bool)  # success is judged at the end
        truncated = terminated.clone() if self.max_steps is None else self.t >= self.max_steps
        info = {"state": self.state.clone(), "blocked": blocked, "success": self.success()}
        return self._obs(self.state), reward, terminated, truncated, info

    def success(self) -> torch.Tensor:
        if self.state is None:
            raise RuntimeError("call reset() before success()")
        return self.rooms.success(self.state, self.goal_state)

    @property
    def goal(self) -> torch.Tensor:
        if self.goal_state is None:
            raise RuntimeError("call reset() before reading the goal")
        return self._obs(self.goal_state)

    def expert(self) -> torch.Tensor:
        """The scripted expert's actions (N, 2) from the current states (:meth:`WallRooms.expert`)."""
        if self.state is None:
            raise RuntimeError("call reset() before expert()")
        return self.rooms.expert(self.state, self.goal_state, self.wall_x, self.door_y)

    def render(self) -> torch.Tensor:
        """(N, 65, 65, 3) uint8: walls grey, the agent red, the goal green."""
        if self.state is None:
            raise RuntimeError("call reset() before render()")
        walls = 0.5 * self.rooms.walls(self.wall_x, self.door_y)
        agent, goal = self.rooms.dot(self.state), self.rooms.dot(self.goal_state)
        img = torch.stack([torch.maximum(walls, agent), torch.maximum(walls, goal), walls], -1)
        return (img * 255).round().clamp(0, 255).to(torch.uint8)

    def _obs(self, pos: torch.Tensor) -> torch.Tensor:
        if self.obs_kind == "pixels":
            return self.rooms.pixels(pos, self._walls)
        return self.rooms.state(pos, self.wall_x, self.door_y)

    def _given(self, options: dict[str, Any], key: str, shape: tuple[int, ...], drawn: torch.Tensor) -> torch.Tensor:
        v = options.get(key)
        if v is None:
            return drawn
        v = torch.as_tensor(v, dtype=torch.float32, device=self.device)
        if tuple(v.shape) != shape:
            raise ValueError(f"options[{key!r}] must have shape {list(shape)}, got {list(v.shape)}")
        return v
