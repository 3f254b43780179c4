"""The ``two_rooms_wall`` source: offline random walks in the published Two Rooms protocol.

The environment is :mod:`jepa_graph.envs.wall_rooms` (65x65 px, a centre wall with a door, walls
stop moves). The data is what the published JEPA planners train on: random walks of ``length``
steps (91 states by default) whose heading is a von Mises walk (each step turns by an angle
drawn from VonMises(0, ``kappa`` = 5)) and whose step length, in pixels, is a normal of mean
1.0 and sd 0.4 truncated to [0.2, 1.8]; the actions are these displacements, so walls stop some
of them (``blocked``). A share ``door_share`` of the trajectories is forced through the door:
such a walk is built outwards from a point in the door at a random step, its heading there
within 45 degrees of the way across, then replayed forwards from where its backward half ends
(redrawn, up to 64 times, until it really crosses: ``through`` marks those that did); the
others start uniformly in either room (2.6 px off the walls), heading anywhere.

It collects ``episodes`` trajectories once (from its seed), keeping only positions, actions and
layouts (about 1.5 kB each; pixels are rendered per batch), and serves windows of
``horizon`` steps cut at random from them:

================== ==============================================================================
``x_seq``          (B, H+1, *obs) observations: states (x, y, wall_x, door_y) in pixels, or
                   (2, 65, 65) images (``obs``; ``auto``: images when the spec's ``x`` is an image)
``a_seq``          (B, H, 2) actions (displacements in pixels)
``blocked_seq``    (B, H) bool: the moves a wall stopped (for "wall leak" metrics)
``x, a, x_next``   the window's first transition; ``blocked`` its flag; ``goal`` its last observation
``state_seq``      (B, H+1, 4) the true states (``state``, ``state_next``: the first two)
``through``        (B,) bool: the trajectory is one forced through the door
================== ==============================================================================

Example::

    d = collect(WallRooms(), 64, 90, 0.25, "random", 5.0, torch.Generator().manual_seed(0))
    d["pos"].shape, d["actions"].shape, d["blocked"].shape      # (64, 91, 2), (64, 90, 2), (64, 90)
"""
from __future__ import annotations

import math

import torch

from ..envs.wall_rooms import WallRooms
from . import DataSource, register_source
from .catalog import TWO_ROOMS_WALL, TwoRoomsWallParams, wall_pixels

STEP = (1.0, 0.4, 0.2, 1.8)  # step length: mean, sd, truncated to [lo, hi] (pixels)
MAX_ROUNDS = 64  # redraws of forced walks that failed to cross (each round most succeed)


def von_mises(kappa: float, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Angles in (-pi, pi] from VonMises(0, ``kappa``), drawn with ``gen`` (Best & Fisher 1979)."""
    tau = 1 + math.sqrt(1 + 4 * kappa * kappa)
    rho = (tau - math.sqrt(2 * tau)) / (2 * kappa)
    r = (1 + rho * rho) / (2 * rho)
    out = torch.empty(shape, device=gen.device)
    todo = torch.ones(shape, dtype=torch.bool, device=gen.device)
    while bool(todo.any()):
        u = torch.rand(3, *shape, generator=gen, device=gen.device)
        f = (1 + r * torch.cos(math.pi * u[0])) / (r + torch.cos(math.pi * u[0]))
        c = kappa * (r - f)
        ok = (c * (2 - c) > u[1]) | (torch.log(c / u[1]) + 1 - c >= 0)
        theta = torch.sign(u[2] - 0.5) * torch.acos(f.clamp(-1, 1))
        take = todo & ok
        out = torch.where(take, theta, out)
        todo &= ~ok
    return out


def truncated_normal(mean: float, sd: float, lo: float, hi: float, shape: tuple[int, ...],
                     gen: torch.Generator) -> torch.Tensor:
    """Normal(mean, sd) truncated to [lo, hi], by the inverse CDF, drawn with ``gen``."""
    cdf = lambda v: 0.5 * (1 + math.erf((v - mean) / (sd * math.sqrt(2))))  # noqa: E731
    u = cdf(lo) + (cdf(hi) - cdf(lo)) * torch.rand(shape, generator=gen, device=gen.device)
    return (mean + sd * torch.special.ndtri(u)).clamp(lo, hi)


def walk_actions(heading0: torch.Tensor, length: int, kappa: float, gen: torch.Generator) -> torch.Tensor:
    """Random-walk displacements (E, length, 2): headings from ``heading0`` (E,) on, turning by
    VonMises(0, kappa) each step after the first; step lengths from the truncated normal ``STEP``."""
    turns = von_mises(kappa, (heading0.shape[0], length), gen)
    turns[:, 0] = 0
    heading = heading0[:, None] + turns.cumsum(1)
    step = truncated_normal(*STEP, (heading0.shape[0], length), gen)
    return torch.stack([torch.cos(heading), torch.sin(heading)], -1) * step[..., None]


def rollout(rooms: WallRooms, start: torch.Tensor, actions: torch.Tensor, wall_x: torch.Tensor,
            door_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``start`` (E, 2) through ``actions`` (E, T, 2): positions (E, T+1, 2), blocked (E, T)."""
    pos, blocked = [start], []
    for t in range(actions.shape[1]):
        p, b = rooms.move(pos[-1], actions[:, t], wall_x, door_y)
        pos.append(p)
        blocked.append(b)
    return torch.stack(pos, 1), torch.stack(blocked, 1)


def crossed(rooms: WallRooms, pos: torch.Tensor, wall_x: torch.Tensor) -> torch.Tensor:
    """(E,) bool: the trajectory (E, T+1, 2) was in both rooms (past the wall on either side)."""
    rel = pos[..., 0] - wall_x[:, None]
    return (rel < -rooms.wall_half).any(1) & (rel > rooms.wall_half).any(1)


def through_door(rooms: WallRooms, wall_x: torch.Tensor, door_y: torch.Tensor, length: int, kappa: float,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Walks forced through the door: ``(start (E, 2), actions (E, length, 2))``.

    Each passes a point in the door (x within the wall, y within 3 px of the door's centre) at
    a step k uniform in 1..length-1, heading across (within 45 degrees); the steps before k are
    the time reverse of a walk from that point, so the whole is still a von Mises walk."""
    e = wall_x.shape[0]
    u = torch.rand(e, 3, generator=gen, device=gen.device)
    door = torch.stack([wall_x + (2 * u[:, 0] - 1) * rooms.wall_half, door_y + (2 * u[:, 1] - 1) * 3.0], 1)
    across = torch.where(u[:, 2] < 0.5, 0.0, math.pi)  # rightwards or leftwards
    heading = across + (torch.rand(e, generator=gen, device=gen.device) - 0.5) * (math.pi / 2)
    k = torch.randint(1, length, (e,), generator=gen, device=gen.device)
    fwd = walk_actions(heading, length, kappa, gen)  # the walk from the door point on
    turn = von_mises(kappa, (e,), gen)  # the turn between the steps into and out of the door point
    back = walk_actions(heading + math.pi + turn, length, kappa, gen)  # ... and backwards from it
    t = torch.arange(length, device=gen.device)[None]
    before = (k[:, None] - 1 - t).clamp(min=0)  # action t < k is the reverse of backward step k-1-t
    after = (t - k[:, None]).clamp(min=0)
    actions = torch.where((t < k[:, None])[..., None], -back.gather(1, before[..., None].expand(-1, -1, 2)),
                          fwd.gather(1, after[..., None].expand(-1, -1, 2)))
    q = door  # find the start: walk the backward half from the door point (walls apply)
    for j in range(length - 1, -1, -1):
        stepped, _ = rooms.move(q, -actions[:, j], wall_x, door_y)
        q = torch.where((j < k)[:, None], stepped, q)
    return q, actions


def collect(rooms: WallRooms, episodes: int, length: int, door_share: float, variant: str, kappa: float,
            gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``episodes`` random walks of ``length`` steps, the first ``round(door_share * episodes)``
    forced through the door, every draw from ``gen``: positions ``pos`` (E, L+1, 2), ``actions``
    (E, L, 2), ``blocked`` (E, L) bool, ``wall_x``, ``door_y`` (E,) and ``through`` (E,) bool."""
    wall_x, door_y = rooms.layouts(episodes, variant, gen)
    n_door = round(door_share * episodes)
    room = torch.randint(0, 2, (episodes,), generator=gen, device=gen.device)
    start = rooms.in_room(room, wall_x, gen)
    heading = (torch.rand(episodes, generator=gen, device=gen.device) * 2 - 1) * math.pi
    actions = walk_actions(heading, length, kappa, gen)
    pos, blocked = rollout(rooms, start, actions, wall_x, door_y)
    todo = torch.zeros(episodes, dtype=torch.bool, device=gen.device)
    todo[:n_door] = True
    for _ in range(MAX_ROUNDS):  # forced walks: redraw the rows that did not get through
        idx = todo.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        s, a = through_door(rooms, wall_x[idx], door_y[idx], length, kappa, gen)
        p, b = rollout(rooms, s, a, wall_x[idx], door_y[idx])
        ok = crossed(rooms, p, wall_x[idx])
        keep = idx[ok]
        pos[keep], actions[keep], blocked[keep] = p[ok], a[ok], b[ok]
        todo[keep] = False
    through = torch.zeros(episodes, dtype=torch.bool, device=gen.device)
    through[:n_door] = ~todo[:n_door]
    return {"pos": pos, "actions": actions, "blocked": blocked, "wall_x": wall_x, "door_y": door_y,
            "through": through}


@register_source("two_rooms_wall")
class TwoRoomsWallSource(DataSource):
    """Windows of random walks collected once per seed (see the module's docstring)."""

    Params = TwoRoomsWallParams  # the `with:` keys (catalog.py: torch-free, for validate and info --data)

    def __init__(self, params, inputs, seed=0):
        super().__init__(params, inputs, seed)
        p = params
        TWO_ROOMS_WALL.require_fit(p, inputs)  # the parameters against the spec's inputs
        self.rooms = WallRooms()
        self.pixels = wall_pixels(p, inputs)
        gen = torch.Generator().manual_seed(seed * 7919 + 29)  # the dataset depends on the seed only
        self.data = collect(self.rooms, p.episodes, p.length, p.door_share, p.variant, p.kappa, gen)

    def obs(self, pos: torch.Tensor, wall_x: torch.Tensor, door_y: torch.Tensor) -> torch.Tensor:
        """Observations of positions (M, 2) in layouts (M,): (M, 4) states or (M, 2, 65, 65) images."""
        if self.pixels:
            return self.rooms.pixels(pos, self.rooms.walls(wall_x, door_y))
        return self.rooms.state(pos, wall_x, door_y)

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        d, H = self.data, self.p.horizon
        e = torch.randint(0, d["pos"].shape[0], (n,), generator=gen)
        t = torch.randint(0, self.p.length - H + 1, (n,), generator=gen)
        steps = t[:, None] + torch.arange(H + 1)  # (n, H+1)
        pos = d["pos"][e[:, None], steps]  # (n, H+1, 2)
        wall_x, door_y = d["wall_x"][e, None].expand(n, H + 1), d["door_y"][e, None].expand(n, H + 1)
        x_seq = self.obs(pos.reshape(-1, 2), wall_x.reshape(-1), door_y.reshape(-1))
        x_seq = x_seq.reshape(n, H + 1, *x_seq.shape[1:])  # (n, H+1, *obs)
        a_seq = d["actions"][e[:, None], steps[:, :-1]]  # (n, H, 2)
        blocked_seq = d["blocked"][e[:, None], steps[:, :-1]]  # (n, H)
        state_seq = self.rooms.state(pos.reshape(-1, 2), wall_x.reshape(-1), door_y.reshape(-1)).reshape(n, H + 1, 4)
        return {"x": x_seq[:, 0], "a": a_seq[:, 0], "x_next": x_seq[:, 1], "blocked": blocked_seq[:, 0],
                "goal": x_seq[:, -1], "x_seq": x_seq, "a_seq": a_seq, "blocked_seq": blocked_seq,
                "state": state_seq[:, 0], "state_next": state_seq[:, 1], "state_seq": state_seq,
                "through": d["through"][e]}
