"""Regulariser blocks: one number per batch (``BATCH_SCALAR``), terms of the objective.

Anti-collapse terms keep embeddings informative (VICReg, Barlow Twins, and VICReg's variance
and covariance parts on their own); capacity terms (l1, l2, kl) limit what a latent can carry.
Inputs [B, ...] are flattened per sample to [B, n]; batch statistics need B >= 2. Under DDP
(training, world size > 1) the batch-statistics terms gather every rank's shard first, with
gradients, so they see the global batch exactly as one process would.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime import distributed
from ..core.registry import BlockType, DimInt, Params, register_block
from ..core.tensors import BATCH_SCALAR, ShapeMismatch, TType, vec


# ------------------------------------------------------------------------------ the terms
def variance_term(x: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg variance: mean_j relu(gamma - sqrt(Var_b x_bj + eps)), unbiased variance. x: (B, n)."""
    std = torch.sqrt(x.var(dim=0) + eps)  # (n,)
    return F.relu(gamma - std).mean()


def covariance_term(x: torch.Tensor) -> torch.Tensor:
    """VICReg covariance: sum of squared off-diagonal entries of Cov(x) (over B - 1), over n. x: (B, n)."""
    b, n = x.shape
    x = x - x.mean(dim=0)
    cov = (x.T @ x) / (b - 1)  # (n, n)
    off = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
    return off / n


def barlow_twins_term(a: torch.Tensor, b: torch.Tensor, lambd: float = 0.0051, eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins: sum_i (1 - c_ii)^2 + lambda sum_{i!=j} c_ij^2, with c the cross-correlation of
    the batch-normalised embeddings divided by B. a, b: (B, n)."""
    def bn(x):  # batch statistics always (as BatchNorm1d(affine=False) in training mode)
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps)

    c = bn(a).T @ bn(b) / a.size(0)  # (n, n)
    on = (1 - c.diagonal()).pow(2).sum()
    off = c.pow(2).sum() - c.diagonal().pow(2).sum()
    return on + lambd * off


# ------------------------------------------------------------------------------- expander
def expander(n_in: int, sizes: list[int], norm: str) -> nn.Sequential:
    """VICReg / Barlow Twins projector: (Linear, BatchNorm, ReLU) per hidden size, then Linear."""
    layers: list[nn.Module] = [nn.Flatten(1)]
    dims = [n_in, *sizes]
    for i in range(len(sizes)):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=i < len(sizes) - 1))  # as the VICReg code
        if i < len(sizes) - 1:
            if norm != "none":
                layers.append(nn.BatchNorm1d(dims[i + 1]) if norm == "batch" else nn.LayerNorm(dims[i + 1]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TwoBranch(nn.Module):
    """Flatten each branch per sample, apply the (shared) expander, then a loss of one or two (B, n).
    Under DDP the flattened branches are gathered before the expander, so its BatchNorm and the
    loss both see the global batch (every rank runs the expander on all of it)."""

    def __init__(self, loss, n_in: int, sizes: list[int], norm: str):
        super().__init__()
        self.loss = loss
        self.expander = expander(n_in, sizes, norm) if sizes else None

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        xs = [a.flatten(1)] + ([b.flatten(1)] if b is not None else [])  # (B, n) each
        if distributed.gathering(self):  # (B / W, n) per rank -> (B, n)
            xs = [distributed.gather_batch(x) for x in xs]
        if self.expander is not None:
            xs = [self.expander(x) for x in xs]
        return self.loss(*xs)


class VICRegLoss:
    """Callable: VICReg loss of one branch (variance + covariance) or two (with invariance)."""

    def __init__(self, p):
        self.p = p

    def __call__(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        p = self.p
        if b is None:
            return p.std * variance_term(a, p.gamma, p.eps) + p.cov * covariance_term(a)
        inv = F.mse_loss(a, b)
        var = (variance_term(a, p.gamma, p.eps) + variance_term(b, p.gamma, p.eps)) / 2
        cov = covariance_term(a) + covariance_term(b)
        return p.sim * inv + p.std * var + p.cov * cov

    def __repr__(self) -> str:
        return f"VICRegLoss(sim={self.p.sim}, std={self.p.std}, cov={self.p.cov})"


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
        return TwoBranch(VICRegLoss(p), _flat(ins)[0], list(p.expander), p.expander_norm)

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
        return TwoBranch(lambda a, b: barlow_twins_term(a, b, p.lambd, p.eps), _flat(ins)[0],
                         list(p.expander), p.expander_norm)

    @classmethod
    def example(cls):
        return {}, [vec(4), vec(4)]


class HingeParams(Params):
    gamma: float = 1.0  # target standard deviation per dim
    eps: float = 1e-4


class Fn(nn.Module):
    """A parameter-free loss over (B, ...) inputs flattened to (B, n). ``batch_stats``: the loss is
    a statistic of the whole batch (not a mean over samples), so under DDP it gathers the shards."""

    def __init__(self, fn, name: str, batch_stats: bool = False):
        super().__init__()
        self.fn, self.name, self.batch_stats = fn, name, batch_stats

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        xs = tuple(x.flatten(1) for x in xs)
        if self.batch_stats and distributed.gathering(self):
            xs = tuple(distributed.gather_batch(x) for x in xs)
        return self.fn(*xs)

    def extra_repr(self) -> str:
        return self.name


@register_block("variance_hinge", kind="regularizer")
class RegVariance(BlockType):
    """VICReg's variance term alone: mean_j relu(gamma - std_j) over the batch."""

    Params = HingeParams
    input_names = ("embedding",)

    def infer(self, p, ins):
        _flat(ins)
        return BATCH_SCALAR

    def build(self, p, ins):
        return Fn(lambda x: variance_term(x, p.gamma, p.eps), f"variance_hinge(gamma={p.gamma})", batch_stats=True)

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
        return Fn(covariance_term, "covariance", batch_stats=True)

    @classmethod
    def example(cls):
        return {}, [vec(4)]


# ------------------------------------------------------------------ latent capacity (on z)
def capacity_l1(z: torch.Tensor) -> torch.Tensor:
    """Batch mean of |z|_1. z: (B, n)."""
    return z.abs().sum(1).mean()


def capacity_l2(z: torch.Tensor) -> torch.Tensor:
    """Batch mean of |z|^2. z: (B, n)."""
    return z.pow(2).sum(1).mean()


def capacity_kl(mu: torch.Tensor, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """Batch mean of KL(N(mu, exp(logvar)) || N(0, 1)); with no logvar the variance is 1: |mu|^2 / 2."""
    if logvar is None:
        return 0.5 * mu.pow(2).sum(1).mean()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


class CapacityBase(BlockType):
    fn = staticmethod(capacity_l1)

    def infer(self, p, ins):
        _flat(ins)
        return BATCH_SCALAR

    def build(self, p, ins):
        return Fn(type(self).fn, self.name)

    @classmethod
    def example(cls):
        return {}, [vec(3)]


@register_block("l1", kind="regularizer")
class RegL1(CapacityBase):
    """Latent capacity: batch mean of |z|_1 (sparse latents)."""
    fn = staticmethod(capacity_l1)
    input_names = ("latent",)


@register_block("l2", kind="regularizer")
class RegL2(CapacityBase):
    """Latent capacity: batch mean of |z|^2."""
    fn = staticmethod(capacity_l2)
    input_names = ("latent",)


@register_block("kl", kind="regularizer")
class RegKL(CapacityBase):
    """Latent capacity: KL(N(mu, exp(logvar)) || N(0, I)) per sample, batch mean; logvar optional."""
    fn = staticmethod(capacity_kl)
    arity = (1, 2)
    input_names = ("mean", "logvar")

    @classmethod
    def example(cls):
        return {}, [vec(3), vec(3)]
