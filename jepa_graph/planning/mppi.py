"""MPPI: model-predictive path integral control, as TD-MPC2 runs it (Hansen et al. 2024).

Each iteration draws candidates around the mean (candidate 0 the mean itself, then an actor's
proposals, then Gaussian draws), keeps the ``elites`` lowest-cost ones and refits mean and std to
them weighted by ``exp(-(cost - min) / (temperature * spread))``, where ``spread`` is the
elites' mean gap above the best: the temperature is scale-free (1: an average elite weighs
e^-1 of the best; towards 0: the best alone; large: a plain CEM refit). Non-finite costs weigh 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..search.objective import Params
from .base import check_real
from .sampling import Sampler, _weighted


@dataclass(kw_only=True)
class MPPI(Sampler):
    """Temperature-weighted refit of the elites (see the module doc)."""

    name = "mppi"
    elites: int = 64
    temperature: float = 0.5  # in units of the elites' mean cost gap above the best
    min_std: float = 0.05

    def __post_init__(self):
        super().__post_init__()
        check_real(self, "temperature")

    def refit(self, cost: torch.Tensor, elites: Params, ok: torch.Tensor, mean: Params, std: Params):
        """``cost`` (E, B) sorted ascending: row 0 is each environment's best."""
        gap = torch.where(ok, cost - cost[:1], torch.zeros_like(cost))  # (E, B) >= 0
        n = ok.sum(0).clamp(min=1)
        spread = gap.T.contiguous().sum(-1) / n  # (B,) mean gap of the finite elites, summed in a fixed order
        scale = self.temperature * spread + 1e-12 * (1 + torch.where(ok[0], cost[0], 0.0).abs())
        w = torch.where(ok, torch.exp(-gap / scale), torch.zeros_like(gap))
        return _weighted(elites, w, mean, std)
