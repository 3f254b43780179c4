"""Small modules shared by primitive blocks. They subclass nn.Sequential so a compiled block
costs exactly what the same hand-written layers cost (no wrapper calls)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from ..core.tensors import ShapeMismatch, TType, expect_float

Activation = Literal["relu", "gelu", "silu", "tanh", "elu", "leaky_relu"]
_ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU,
        "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    return _ACT[name]()


def mlp_layers(dims: list[int], act: str = "relu", norm: bool = False, final_act: bool = False) -> list[nn.Module]:
    """Linear layers through ``dims`` with ``act`` between them (and after the last if ``final_act``)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2 or final_act:
            if norm:
                layers.append(nn.LayerNorm(dims[i + 1]))
            layers.append(activation(act))
    return layers


def flat_in(ins: list[TType]) -> int:
    """Features per sample once each input is flattened and all are concatenated: [B, ...] -> n.

    Each input needs at least one dim per sample: a [B] scalar has no feature axis, and
    ``flatten(1)`` or a Linear would fail on it at run time."""
    for i, t in enumerate(ins):
        expect_float(t, i)
        if not t.batched or not t.shape:
            raise ShapeMismatch(f"needs a vector per sample on input {i}", i, "[B, n]",
                                "a scalar per sample has no feature axis: declare it with `shape: [1]`"
                                if t.batched else "a regulariser's batch value is a term of the objective, not a tensor")
    return sum(t.numel for t in ins)


class MLP(nn.Sequential):
    """An MLP over the concatenation of its inputs, each flattened per sample: (B, ...) -> (B, out).

    ``squeeze`` drops a final size-1 dim (scalar heads: critics give (B,))."""

    def __init__(self, layers: list[nn.Module], squeeze: bool = False):
        super().__init__(*layers)
        self.squeeze = squeeze

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        x = xs[0] if len(xs) == 1 else torch.cat([t.flatten(1) for t in xs], dim=-1)
        if x.dim() > 2:
            x = x.flatten(1)
        for layer in self:
            x = layer(x)
        return x.squeeze(-1) if self.squeeze else x


class Scale(nn.Module):
    """Affine map of a tanh output in [-1, 1] onto [lo, hi]."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.mid, self.half = (hi + lo) / 2, (hi - lo) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.half + self.mid

    def extra_repr(self) -> str:
        return f"mid={self.mid}, half={self.half}"
