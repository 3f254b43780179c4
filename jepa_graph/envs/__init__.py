"""Environments: batched, in torch, in the manner of gymnasium's vector API (:mod:`.base`).

================== =========================================================================
``two_rooms``      a 2-D point agent in two rooms joined by a door (:mod:`.two_rooms`)
``two_rooms_wall`` Two Rooms in the published JEPA planners' protocol, 65x65 px (:mod:`.wall_rooms`)
================== =========================================================================

Build one by name, ``n`` copies stepped together, its randomness from ``seed``::

    env = jg.envs.make("two_rooms", n=16, seed=0)
    obs, info = env.reset()
    obs, reward, terminated, truncated, info = env.step(torch.zeros(16, 2))

Register your own :class:`BatchedEnv` with ``@register_env("name")``. Data sources collect their
trajectories from these environments; planners act in them. (Environments import nothing of
the spec machinery: only :mod:`jepa_graph.core` and torch.)
"""
from __future__ import annotations

from .base import ArraySpec, BatchedEnv
from .registry import get_env, list_envs, make, register_env
from .two_rooms import TwoRooms, TwoRoomsEnv  # registers "two_rooms"
from .wall_rooms import TwoRoomsWallEnv, WallRooms  # registers "two_rooms_wall"

__all__ = ["ArraySpec", "BatchedEnv", "TwoRooms", "TwoRoomsEnv", "TwoRoomsWallEnv", "WallRooms", "get_env", "list_envs",
           "make", "register_env"]
