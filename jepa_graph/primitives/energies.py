"""Energy blocks: a distance D(a, b) between two representations of one shape, one number per
sample, averaged over the non-batch dims: (B, ...), (B, ...) -> (B,)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.registry import BlockType, Params, register_block
from ..core.tensors import SCALAR, ShapeMismatch, expect_float, vec


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


class EnergyBase(BlockType):
    arity = (2, 2)
    input_names = ("prediction", "target")
    fn = "l2"

    def infer(self, p, ins):
        a, b = ins
        expect_float(a, 0)
        expect_float(b, 1)
        if a.shape != b.shape or a.batched != b.batched:
            raise ShapeMismatch(f"compares two representations of one shape: input 0 is {a}, but input 1", 1,
                                str(a), "both sides of an energy need the same shape")
        if a.shape == ():
            raise ShapeMismatch("compares representations, not scalars, on input 0", 0, "[B, n]")
        return SCALAR

    def build(self, p, ins):
        return Distance(self.fn, getattr(p, "beta", 1.0))

    @classmethod
    def example(cls):
        return {}, [vec(4), vec(4)]


@register_block("l2", kind="energy")
class EnergyL2(EnergyBase):
    """Mean squared distance per sample."""
    fn = "l2"


@register_block("l1", kind="energy")
class EnergyL1(EnergyBase):
    """Mean absolute distance per sample."""
    fn = "l1"


class SmoothL1Params(Params):
    beta: float = 1.0  # quadratic below beta, linear above (as in V-JEPA's loss)


@register_block("smooth_l1", kind="energy")
class EnergySmoothL1(EnergyBase):
    """Mean smooth-L1 (Huber) distance per sample."""
    fn = "smooth_l1"
    Params = SmoothL1Params


@register_block("cosine", kind="energy")
class EnergyCosine(EnergyBase):
    """1 - cosine similarity along the feature dim, averaged over other dims."""
    fn = "cosine"
