"""Torch side of the regulariser blocks: the loss terms, the expander, and the modules that apply
them. Under DDP (training, world size > 1) the batch-statistics terms gather every rank's shard
first, with gradients, so they see the global batch exactly as one process would.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...runtime import distributed


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

    global_batch = True  # its expander's BatchNorm sees the gathered batch: convert_sync_batchnorm leaves it

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


CAPACITY = {"l1": capacity_l1, "l2": capacity_l2, "kl": capacity_kl}  # regularizer.l1 / l2 / kl
