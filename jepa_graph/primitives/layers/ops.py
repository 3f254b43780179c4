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
