"""Torch modules of the intrinsic cost blocks (``goal_distance`` is an energy's Distance)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .energies import Distance  # goal_distance's module

__all__ = ["BoxPenalty", "Distance", "L2Cost"]


class L2Cost(nn.Module):
    def __init__(self, target: float):
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.target).pow(2).flatten(1).sum(1)


class BoxPenalty(nn.Module):
    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        over = (x - self.hi).clamp(min=0) + (self.lo - x).clamp(min=0)  # 0 inside the box
        return over.pow(2).flatten(1).sum(1)
