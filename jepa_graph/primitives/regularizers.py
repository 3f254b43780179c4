"""Regulariser blocks: one number per batch (``BATCH_SCALAR``), terms of the objective.

Anti-collapse terms keep embeddings informative (VICReg, Barlow Twins, and VICReg's variance
and covariance parts on their own); capacity terms (l1, l2, kl) limit what a latent can carry.
Inputs [B, ...] are flattened per sample to [B, n]; batch statistics need B >= 2. The terms
themselves (and their gathering under DDP) are in ``layers/regularizers.py``.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from ..core.registry import BlockType, DimInt, Params, register_block
from ..core.tensors import BATCH_SCALAR, ShapeMismatch, TType, vec


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import regularizers
    return regularizers


# ---------------------------------------------------------------------------- shape rules
def _flat(ins: list[TType]) -> list[int]:
    for i, t in enumerate(ins):
        if t.dtype != "float":
            raise ShapeMismatch(f"expects a float embedding on input {i}", i, "[B, n]",
                                "index tensors (dtype long) only go into blocks that take indices")
        if not t.batched or t.shape == ():
            raise ShapeMismatch(f"expects per-sample embeddings [B, n] on input {i}", i, "[B, n]",
                                "batch statistics need a batch of vectors, not a scalar")
    if len(ins) == 2 and ins[0].numel != ins[1].numel:
        raise ShapeMismatch(f"needs two inputs of one size: input 0 is {ins[0]}, but input 1", 1, str(ins[0]),
                            "two branches (or a mean and its logvar) need the same width")
    return [t.numel for t in ins]


class ExpanderParams(Params):
    expander: list[DimInt] = []  # projector sizes [hidden..., out]; [] compares the embeddings directly
    expander_norm: Literal["batch", "layer", "none"] = "batch"  # as in the VICReg paper


class VICRegParams(ExpanderParams):
    sim: float = 25.0  # invariance weight (lambda in the paper)
    std: float = 25.0  # variance weight (mu)
    cov: float = 1.0  # covariance weight (nu)
    gamma: float = 1.0  # target standard deviation per dim
    eps: float = 1e-4


@register_block("vicreg", kind="regularizer")
class RegVICReg(BlockType):
    """VICReg: sim * MSE(a, b) + std * variance hinge + cov * off-diagonal covariance, per batch."""

    Params = VICRegParams
    arity = (1, 2)
    input_names = ("embedding", "embedding_b")

    def infer(self, p, ins):
        _flat(ins)
        return BATCH_SCALAR

    def build(self, p, ins):
        L = _layers()
        return L.TwoBranch(L.VICRegLoss(p), _flat(ins)[0], list(p.expander), p.expander_norm)

    @classmethod
    def example(cls):
        return {"expander": [8, 6]}, [vec(4), vec(4)]


class BarlowParams(ExpanderParams):
    lambd: float = 0.0051  # weight of the off-diagonal (redundancy reduction) term
    eps: float = 1e-5


@register_block("barlow_twins", kind="regularizer")
class RegBarlowTwins(BlockType):
    """Barlow Twins: drive the cross-correlation of two branches towards the identity."""

    Params = BarlowParams
    arity = (2, 2)
    input_names = ("embedding_a", "embedding_b")

    def infer(self, p, ins):
        _flat(ins)
        return BATCH_SCALAR

    def build(self, p, ins):
        L = _layers()
        return L.TwoBranch(lambda a, b: L.barlow_twins_term(a, b, p.lambd, p.eps), _flat(ins)[0],
                           list(p.expander), p.expander_norm)

    @classmethod
    def example(cls):
        return {}, [vec(4), vec(4)]


class HingeParams(Params):
    gamma: float = 1.0  # target standard deviation per dim
    eps: float = 1e-4


@register_block("variance_hinge", kind="regularizer")
class RegVariance(BlockType):
    """VICReg's variance term alone: mean_j relu(gamma - std_j) over the batch."""

    Params = HingeParams
    input_names = ("embedding",)

    def infer(self, p, ins):
        _flat(ins)
        return BATCH_SCALAR

    def build(self, p, ins):
        L = _layers()
        return L.Fn(lambda x: L.variance_term(x, p.gamma, p.eps), f"variance_hinge(gamma={p.gamma})", batch_stats=True)

    @classmethod
    def example(cls):
        return {}, [vec(4)]


@register_block("covariance", kind="regularizer")
class RegCovariance(BlockType):
    """VICReg's covariance term alone: squared off-diagonal covariance over the dimension."""

    input_names = ("embedding",)

    def infer(self, p, ins):
        _flat(ins)
        return BATCH_SCALAR

    def build(self, p, ins):
        L = _layers()
        return L.Fn(L.covariance_term, "covariance", batch_stats=True)

    @classmethod
    def example(cls):
        return {}, [vec(4)]


# ------------------------------------------------------------------ latent capacity (on z)
class CapacityBase(BlockType):
    fn: ClassVar[str] = "l1"  # the term: a key of layers.regularizers.CAPACITY

    def infer(self, p, ins):
        _flat(ins)
        return BATCH_SCALAR

    def build(self, p, ins):
        L = _layers()
        return L.Fn(L.CAPACITY[self.fn], self.name)

    @classmethod
    def example(cls):
        return {}, [vec(3)]


@register_block("l1", kind="regularizer")
class RegL1(CapacityBase):
    """Latent capacity: batch mean of |z|_1 (sparse latents)."""
    fn = "l1"
    input_names = ("latent",)


@register_block("l2", kind="regularizer")
class RegL2(CapacityBase):
    """Latent capacity: batch mean of |z|^2."""
    fn = "l2"
    input_names = ("latent",)


@register_block("kl", kind="regularizer")
class RegKL(CapacityBase):
    """Latent capacity: KL(N(mu, exp(logvar)) || N(0, I)) per sample, batch mean; logvar optional."""
    fn = "kl"
    arity = (1, 2)
    input_names = ("mean", "logvar")

    @classmethod
    def example(cls):
        return {}, [vec(3), vec(3)]
