"""Torch modules of the plumbing ops (``primitives/ops.py`` holds their shape rules)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from .transformer import gather_tokens

if TYPE_CHECKING:
    from ..ops import LayerNormParams


class Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=-1)


class StopGrad(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach()


class LayerNormOp(nn.Module):
    def __init__(self, dim: int, p: LayerNormParams):
        super().__init__()
        self.dim, self.eps = dim, p.eps
        self.weight = nn.Parameter(torch.ones(dim)) if p.affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if p.affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, affine={self.weight is not None}"


class TokenPool(nn.Module):
    """(B, N, D) -> (B, D), or windows of ``stride`` tokens: (B, N, D) -> (B, N / stride, D)."""

    def __init__(self, mode: str, stride: int | None = None):
        super().__init__()
        self.mode, self.stride = mode, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride is not None:
            x = x.unflatten(1, (x.size(1) // self.stride, self.stride))  # (B, N / s, s, D)
            dim = 2
        else:
            dim = 1
        return x.mean(dim) if self.mode == "mean" else x.amax(dim)

    def extra_repr(self) -> str:
        return self.mode + (f", stride={self.stride}" if self.stride else "")


class Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.size(0), *self.shape)

    def extra_repr(self) -> str:
        return str(list(self.shape))


class ApplyMask(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return gather_tokens(x, idx)  # (B, K, D)


class Rbf(nn.Module):
    """(B, F) -> (B, n^len(dims) [+ F - len(dims)]): Gaussian bumps on a grid over ``dims``."""

    def __init__(self, dims: list[int], f: int, lo: float, hi: float, n: int, sigma: float, keep: bool):
        super().__init__()
        axis = torch.linspace(lo, hi, n)
        grid = torch.stack(torch.meshgrid(*[axis] * len(dims), indexing="ij"), -1).reshape(-1, len(dims))
        self.register_buffer("centres", grid, persistent=False)  # (n^d, d): fixed, never trained
        self.register_buffer("dims", torch.tensor(dims), persistent=False)
        rest = [i for i in range(f) if i not in dims] if keep else []
        self.register_buffer("rest", torch.tensor(rest, dtype=torch.long), persistent=False)
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.index_select(-1, self.dims)  # (B, d)
        sq = (c[:, None, :] - self.centres.to(x.dtype)).pow(2).sum(-1)  # (B, n^d)
        out = torch.exp(sq * (-0.5 / self.sigma ** 2))
        return torch.cat([out, x.index_select(-1, self.rest)], -1) if self.rest.numel() else out

    def extra_repr(self) -> str:
        return f"centres={self.centres.shape[0]}, sigma={self.sigma:g}, keep={self.rest.numel()}"
