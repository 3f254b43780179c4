"""Torch modules of the vision encoders: a conv stack (``encoder.cnn``) and a ViT (``encoder.vit``)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ..vision import conv_layers
from .common import activation
from .transformer import TransformerBlock, gather_tokens, init_weights, sincos_table

if TYPE_CHECKING:
    from ..vision import CNNParams, ViTParams


def _norm(kind: str, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if kind == "batch" else nn.GroupNorm(math.gcd(8, c), c)


class ConvEncoder(nn.Module):
    """Conv stack (B, C, H, W) -> (B, c, H', W'), then a head: (B, out) or tokens (B, H'W', c)."""

    def __init__(self, in_ch: int, p: CNNParams, hw: tuple[int, int]):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        for c_out, (k, s, pad) in zip(p.channels, conv_layers(p)):
            layers.append(nn.Conv2d(c, c_out, k, s, pad, bias=p.norm == "none"))
            if p.norm != "none":
                layers.append(_norm(p.norm, c_out))
            layers.append(activation(p.act))
            c = c_out
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c * hw[0] * hw[1], p.out) if p.out is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)  # (B, c, H', W')
        if self.head is not None:
            return self.head(h.flatten(1))  # (B, out)
        return h.flatten(2).transpose(1, 2)  # (B, H'W', c)


class ViT(nn.Module):
    """Patch embedding + positions + pre-norm transformer + LayerNorm.

    forward(x (B, C, H, W) or (B, C, T, H, W), keep (B, K) long | None) -> (B, N or K, dim)."""

    def __init__(self, in_ch: int, grid: tuple[int, ...], p: ViTParams):
        super().__init__()
        if len(grid) == 2:
            self.patch_embed = nn.Conv2d(in_ch, p.dim, p.patch, p.patch)
        else:
            k = (p.tubelet, p.patch, p.patch)
            self.patch_embed = nn.Conv3d(in_ch, p.dim, k, k)
        if p.pos == "sincos":
            self.register_buffer("pos_embed", sincos_table(p.dim, grid), persistent=False)
        else:
            self.pos_embed = nn.Parameter(torch.zeros(math.prod(grid), p.dim))
        self.blocks = nn.Sequential(*[TransformerBlock(p.dim, p.heads, p.mlp_ratio) for _ in range(p.depth)])
        self.norm = nn.LayerNorm(p.dim, eps=1e-6)
        self.apply(init_weights)
        if p.pos == "learned":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, dim)
        if keep is not None:
            x = gather_tokens(x, keep)  # (B, K, dim): masked-out tokens never enter attention
        return self.norm(self.blocks(x))
