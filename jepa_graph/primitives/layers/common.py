"""Small modules shared by primitive blocks. They subclass nn.Sequential so a compiled block
costs exactly what the same hand-written layers cost (no wrapper calls)."""
from __future__ import annotations

import torch
import torch.nn as nn

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
