"""Energy blocks: a distance D(a, b) between two representations of one shape, one number per
sample, averaged over the non-batch dims: (B, ...), (B, ...) -> (B,)."""
from __future__ import annotations

from ..core.registry import BlockType, Params, register_block
from ..core.tensors import SCALAR, ShapeMismatch, expect_float, vec


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import energies
    return energies


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
        return _layers().Distance(self.fn, getattr(p, "beta", 1.0))

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
