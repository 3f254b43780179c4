"""The ``fork`` data source: the seeds' fork in the road (generator in :mod:`jepa_graph.data.fork`).

Yields ``x`` (state before the fork) and ``y`` (state after it, on the left or right branch
at random: a bimodal next state), both (B, 4), plus ``branch`` (B,) for evaluation.
"""
from __future__ import annotations

import math

import torch
from pydantic import Field

from . import DataSource, SourceParams, register_source
from .fork import ForkRoad, make_fork


@register_source("fork")
class ForkSource(DataSource):
    class Params(SourceParams):
        angle: float = Field(math.pi / 6, gt=0, lt=math.pi / 2)  # half-angle between the branches
        noise: float = Field(0.02, ge=0)  # observation noise on y
        paired: bool = False  # samples (2i, 2i+1) share x and take the left, then the right branch (plots)

    def check_batch_size(self, per_rank: int) -> str | None:
        if self.p.paired and per_rank % 2:  # a shard must not split a left/right pair
            return f"needs an even batch per process with `paired: true` (samples come in pairs), got {per_rank}"
        return None

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        d = make_fork(n, seed=seed, road=ForkRoad(angle=self.p.angle, noise=self.p.noise), paired=self.p.paired)
        return {"x": d["x"], "y": d["y"], "branch": d["branch"]}
