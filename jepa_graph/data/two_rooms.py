"""The ``two_rooms`` source: transitions of the Two Rooms environment (:mod:`jepa_graph.envs.two_rooms`).

It collects ``episodes`` trajectories once (from its seed) by stepping a
:class:`~jepa_graph.envs.two_rooms.TwoRoomsEnv` of ``episodes`` environments under a collection
policy, and serves random transitions ``x, a, x_next`` (+ ``goal``), or with ``horizon`` H also
sequences ``x_seq`` (B, H+1, obs) and ``a_seq`` (B, H, act) for multi-step evaluation (``x_seq``
holds the same observations as ``x``: states, or images (B, H+1, 3, size, size)).

Collection policies: ``random`` (a smooth random walk: a_t = 0.7 a_{t-1} + 0.6 noise) and
``expert`` (heads for the goal, through the door when the goal is in the other room, with
``noise`` added); ``mixed`` collects half of the episodes with each.

Example::

    rooms = TwoRooms()
    d = collect(rooms, 64, 40, "random", 0.5, torch.Generator().manual_seed(0))
    d["states"].shape, d["actions"].shape, d["goals"].shape     # (64, 41, 2), (64, 40, 2), (64, 2)
"""
from __future__ import annotations

import torch

from ..envs.two_rooms import TwoRooms, TwoRoomsEnv
from . import DataSource, register_source
from .catalog import TWO_ROOMS, TwoRoomsParams, two_rooms_view


def collect(rooms: TwoRooms, episodes: int, length: int, policy: str, noise: float,
            gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Roll out ``episodes`` trajectories at once in a Two Rooms environment of geometry ``rooms``,
    every draw (starts, goals, policy noise) from ``gen``: states (E, L+1, 2), actions (E, L, 2), goals (E, 2)."""
    env = TwoRoomsEnv(episodes, door=rooms.door, speed=rooms.speed, noise=rooms.noise, max_steps=None, generator=gen)
    s, _ = env.reset()
    states, actions = [s], []
    a = torch.zeros(episodes, 2)
    for _ in range(length):  # fixed-length trajectories: reaching the goal ends no episode
        if policy == "expert":
            a = (env.expert() + noise * torch.randn(episodes, 2, generator=gen)).clamp(-1, 1)
        else:
            a = (0.7 * a + 0.6 * torch.randn(episodes, 2, generator=gen)).clamp(-1, 1)
        s, *_ = env.step(a)
        states.append(s)
        actions.append(a)
    return {"states": torch.stack(states, 1), "actions": torch.stack(actions, 1), "goals": env.goal_state}


@register_source("two_rooms")
class TwoRoomsSource(DataSource):
    """Transitions (and optional sequences) from trajectories collected once per seed."""

    Params = TwoRoomsParams  # the `with:` keys (catalog.py: torch-free, for validate and info --data)

    def __init__(self, params, inputs, seed=0):
        super().__init__(params, inputs, seed)
        p = params
        self.env = TwoRooms(door=p.door, speed=p.speed)  # renders stored states as pixels
        self.pixels, self.size = two_rooms_view(p, inputs)
        TWO_ROOMS.require_fit(p, inputs)  # the parameters against the spec's inputs
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
