"""The fork in the road: a bimodal next state (LeCun 2022, section 4.4).

A car drives along the x-axis towards a fork at the origin and, out of sight of the observation,
takes the left or the right branch (a fair coin). ``x`` is its state before the fork, ``y`` its
state ``horizon`` seconds later. Nothing in ``x`` tells the branches apart, so ``p(y | x)`` has
two modes: a deterministic predictor can only learn their average (a car in the ditch between
the branches); a predictor with a binary latent ``z`` can put one prediction on each branch.

State layout (4 numbers): position (px, py) and velocity (vx, vy).

Example::

    data = make_fork(512, seed=0)
    data["x"].shape, data["y"].shape      # (512, 4), (512, 4)
    data["branch"]                        # (512,) long: 0 left, 1 right
    data["y_left"], data["y_right"]       # (512, 4) noiseless outcome of each branch
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["ForkRoad", "make_fork", "fork_batches"]


@dataclass(frozen=True)
class ForkRoad:
    """Geometry and noise of the scene (units: road lengths and seconds)."""

    angle: float = math.pi / 6  # half-angle between the branches: 30 degrees each side
    horizon: float = 2.0  # seconds between x and y; long enough that every car is past the fork
    distance: tuple[float, float] = (0.2, 1.0)  # how far before the fork the car starts
    speed: tuple[float, float] = (0.8, 1.2)
    lane: float = 0.05  # std of the lateral position in the lane
    noise: float = 0.02  # observation noise on y

    def outcomes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noiseless next states on the left and right branch for states ``x`` (N, 4) -> 2 x (N, 4)."""
        px, py, vx = x[:, 0], x[:, 1], x[:, 2]
        past = vx * self.horizon + px  # distance driven beyond the fork (px < 0 before it)
        c, s = math.cos(self.angle), math.sin(self.angle)
        out = []
        for side in (1.0, -1.0):  # left turns towards +y
            out.append(torch.stack([past * c, py + side * past * s, vx * c, side * vx * s], dim=1))
        return out[0], out[1]


def make_fork(n: int, seed: int = 0, *, paired: bool = False, road: ForkRoad = ForkRoad(),
              device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """``n`` samples of the scene, reproducible from ``seed``.

    With ``paired=True`` samples come in pairs (2i, 2i+1) with the same ``x``, the first taking
    the left branch and the second the right one (for plots between the two futures).

    Returns a dict of tensors: ``x``, ``y``, ``y_left``, ``y_right`` (n, 4) float and ``branch``
    (n,) long (0 left, 1 right).
    """
    if n < 1 or (paired and n % 2):
        raise ValueError(f"make_fork needs n >= 1 (even when paired), got {n}")
    g = torch.Generator().manual_seed(seed)
    m = n // 2 if paired else n

    def uniform(lo_hi: tuple[float, float]) -> torch.Tensor:
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(m, generator=g)

    d, v = uniform(road.distance), uniform(road.speed)
    x = torch.stack([-d, road.lane * torch.randn(m, generator=g), v, torch.zeros(m)], dim=1)  # (m, 4)
    if paired:
        x = x.repeat_interleave(2, dim=0)
        branch = torch.arange(n) % 2
    else:
        branch = (torch.rand(n, generator=g) < 0.5).long()
    left, right = road.outcomes(x)
    y = torch.where(branch[:, None] == 0, left, right) + road.noise * torch.randn(n, 4, generator=g)
    out = {"x": x, "y": y, "branch": branch, "y_left": left, "y_right": right}
    return {k: t.to(device) for k, t in out.items()} if device is not None else out


def fork_batches(batch_size: int, seed: int = 0, road: ForkRoad = ForkRoad(),
                 device: str | torch.device | None = None):
    """An endless iterator of fresh training batches ``{"x": (B, 4), "y": (B, 4)}``."""
    step = 0
    while True:
        d = make_fork(batch_size, seed=seed * 1_000_003 + step, road=road, device=device)
        yield {"x": d["x"], "y": d["y"]}
        step += 1
