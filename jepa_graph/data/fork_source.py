"""The ``fork`` data source: the seeds' fork in the road (generator in :mod:`jepa_graph.data.fork`).

Yields ``x`` (state before the fork) and ``y`` (state after it, on the left or right branch
at random: a bimodal next state), both (B, 4), plus ``branch`` (B,) for evaluation.
"""
from __future__ import annotations

import torch

from . import DataSource, register_source
from .catalog import ForkParams
from .fork import ForkRoad, make_fork


@register_source("fork")
class ForkSource(DataSource):
    Params = ForkParams  # the `with:` keys (catalog.py: torch-free, for validate and info --data)

    def check_batch_size(self, per_rank: int) -> str | None:
        if self.p.paired and per_rank % 2:  # a shard must not split a left/right pair
            return f"needs an even batch per process with `paired: true` (samples come in pairs), got {per_rank}"
        return None

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        d = make_fork(n, seed=seed, road=ForkRoad(angle=self.p.angle, noise=self.p.noise), paired=self.p.paired)
        return {"x": d["x"], "y": d["y"], "branch": d["branch"]}
