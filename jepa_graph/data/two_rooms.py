"""Two Rooms: a 2-D point agent in [-1, 1]^2, split by a vertical wall at x = 0 with a door.

The environment is vectorised in torch: every method takes a batch of states (N, 2). An action
a in [-1, 1]^2 moves the agent by ``speed * a``; moves that would cross the wall outside the
door stop at the wall; the outer border clamps. Observations are the state itself or a 64x64
RGB rendering (walls grey, agent red, goal green).

Collection policies: ``random`` (a smooth random walk: a_t = 0.7 a_{t-1} + 0.6 noise) and
``expert`` (heads for the goal, through the door when the goal is in the other room, with
``noise`` added). The ``two_rooms`` source collects ``episodes`` trajectories once (from its
seed) and serves random transitions ``x, a, x_next`` (+ ``goal``), or with ``horizon`` H also
sequences ``x_seq`` (B, H+1, obs) and ``a_seq`` (B, H, act) for multi-step evaluation (``x_seq``
holds the same observations as ``x``: states, or images (B, H+1, 3, size, size)).

Example::

    env = TwoRooms()
    s = env.reset(16, torch.Generator().manual_seed(0))     # (16, 2)
    s = env.step(s, torch.ones(16, 2))                       # one step right and down
    img = env.render(s)                                      # (16, 3, 64, 64)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import Field

from . import DataSource, SourceParams, register_source


@dataclass(frozen=True)
class TwoRooms:
    """Geometry and dynamics; every method is batched over states (N, 2)."""

    door: float = 0.4  # door width (centred at y = 0)
    speed: float = 0.1  # displacement per step at |a| = 1
    noise: float = 0.0  # std of dynamics noise

    def reset(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """``n`` uniform start states (N, 2) (anywhere but on the wall)."""
        s = torch.rand(n, 2, generator=gen) * 2 - 1
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


def collect(env: TwoRooms, episodes: int, length: int, policy: str, noise: float,
            gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Roll out ``episodes`` trajectories at once: states (E, L+1, 2), actions (E, L, 2), goals (E, 2)."""
    s, goal = env.reset(episodes, gen), env.reset(episodes, gen)
    states, actions = [s], []
    a = torch.zeros(episodes, 2)
    for _ in range(length):
        if policy == "expert":
            a = (env.expert(s, goal) + noise * torch.randn(episodes, 2, generator=gen)).clamp(-1, 1)
        else:
            a = (0.7 * a + 0.6 * torch.randn(episodes, 2, generator=gen)).clamp(-1, 1)
        s = env.step(s, a, gen)
        states.append(s)
        actions.append(a)
    return {"states": torch.stack(states, 1), "actions": torch.stack(actions, 1), "goals": goal}


@register_source("two_rooms")
class TwoRoomsSource(DataSource):
    """Transitions (and optional sequences) from trajectories collected once per seed."""

    class Params(SourceParams):
        episodes: int = Field(512, ge=1)  # trajectories collected at start
        length: int = Field(32, ge=1)  # steps per trajectory
        policy: str = Field("mixed", pattern="^(random|expert|mixed)$")  # mixed: half of each
        noise: float = Field(0.5, ge=0)  # expert action noise
        door: float = Field(0.4, gt=0, le=2)
        speed: float = Field(0.1, gt=0)
        obs: str = Field("auto", pattern="^(auto|state|pixels)$")  # auto: pixels when the spec's x is an image
        horizon: int = Field(0, ge=0)  # > 0: also yield x_seq, a_seq of this many steps

    def __init__(self, params, inputs, seed=0):
        super().__init__(params, inputs, seed)
        p = params
        self.env = TwoRooms(door=p.door, speed=p.speed)
        x = inputs.get("x")
        self.pixels = p.obs == "pixels" or (p.obs == "auto" and x is not None and len(x.shape) == 3)
        self.size = x.shape[-1] if x is not None and len(x.shape) == 3 else 64
        if p.horizon >= p.length:
            raise ValueError(f"horizon {p.horizon} needs trajectories longer than length {p.length}")
        gen = torch.Generator().manual_seed(seed * 7919 + 17)  # the dataset depends on the seed only
        if p.policy == "mixed":
            half = max(p.episodes // 2, 1)
            parts = [collect(self.env, half, p.length, "random", p.noise, gen),
                     collect(self.env, p.episodes - half, p.length, "expert", p.noise, gen)]
            self.data = {k: torch.cat([d[k] for d in parts]) for k in parts[0]}
        else:
            self.data = collect(self.env, p.episodes, p.length, p.policy, p.noise, gen)

    def obs(self, s: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
        return self.env.render(s, None, self.size) if self.pixels else s

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        S, A, G = self.data["states"], self.data["actions"], self.data["goals"]
        H = self.p.horizon
        e = torch.randint(0, S.shape[0], (n,), generator=gen)
        t = torch.randint(0, S.shape[1] - 1 - H, (n,), generator=gen)
        out = {"x": self.obs(S[e, t]), "a": A[e, t], "x_next": self.obs(S[e, t + 1]), "goal": self.obs(G[e]),
               "state": S[e, t], "state_next": S[e, t + 1]}
        if H:
            steps = t[:, None] + torch.arange(H + 1)  # (n, H+1)
            seq = S[e[:, None], steps]  # (n, H+1, 2) states
            out["x_seq"] = self.obs(seq.reshape(-1, 2)).reshape(n, H + 1, *out["x"].shape[1:])  # (n, H+1, obs)
            out["a_seq"] = A[e[:, None], steps[:, :-1]]
        return out
