"""Torch module of the energy blocks and the goal-distance cost: a per-sample distance."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


class Distance(nn.Module):
    fused_mean = True  # forward(a, b, reduction="mean") is the batch mean in one op (the loss program)

    def __init__(self, fn: str, beta: float = 1.0):
        super().__init__()
        self.fn, self.beta = fn, beta

    def fused(self) -> tuple[Callable, dict] | None:
        """The torch function (and its keywords) that is ``forward(a, b, reduction="mean")``, so the
        loss program can call it directly, as hand-written code would: no module call around it."""
        return {"l2": (F.mse_loss, {}), "l1": (F.l1_loss, {}),
                "smooth_l1": (F.smooth_l1_loss, {"beta": self.beta})}.get(self.fn)

    def forward(self, a: torch.Tensor, b: torch.Tensor, reduction: str = "none") -> torch.Tensor:
        if reduction == "mean":  # mean over samples of per-sample means = mean over every element
            direct = self.fused()
            return direct[0](a, b, **direct[1]) if direct is not None else self.forward(a, b).mean()
        if self.fn == "euclidean":  # the norm over every feature (goal_distance's metric of that name)
            return (a - b).flatten(1).pow(2).sum(1).add(1e-12).sqrt()
        if self.fn == "l2":
            d = (a - b).pow(2)
        elif self.fn == "l1":
            d = (a - b).abs()
        elif self.fn == "smooth_l1":
            d = F.smooth_l1_loss(a, b, reduction="none", beta=self.beta)
        else:  # cosine: 1 - cos(a, b) along the feature (last) dim
            d = 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)
            return d.flatten(1).mean(1) if d.dim() > 2 else d.mean(1) if d.dim() == 2 else d
        return d.mean(1) if d.dim() == 2 else d.flatten(1).mean(1)  # (B, D) needs no flatten call

    def extra_repr(self) -> str:
        return self.fn
