"""Transformer modules shared by the ViT encoder and the I-JEPA predictor, and ``predictor.transformer``.

Pre-norm blocks (x + Attn(LN(x)), x + MLP(LN(x))) as in ViT and I-JEPA; attention goes through
``F.scaled_dot_product_attention`` so it picks the fused kernel and compiles without graph breaks.
Fixed sin-cos positional tables for 1-, 2- and 3-D token grids follow MAE / I-JEPA / V-JEPA.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..transformer import sincos_split

if TYPE_CHECKING:
    from ..transformer import TransformerPredictorParams


# --------------------------------------------------------------------------- positional tables
def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """(L,) positions -> (L, dim) table: [sin(p w_k), cos(p w_k)] with w_k = 10000^(-2k/dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    out = pos.to(torch.float64)[:, None] * omega[None, :]  # (L, dim/2)
    return torch.cat([out.sin(), out.cos()], dim=1).float()


def sincos_table(dim: int, grid: tuple[int, ...]) -> torch.Tensor:
    """Fixed positional table (N, dim) for a token grid (row-major, last axis fastest)."""
    parts = sincos_split(dim, len(grid))
    assert parts is not None, "checked by the shape rule"
    axes = torch.meshgrid(*[torch.arange(g) for g in grid], indexing="ij")  # each (*grid)
    return torch.cat([sincos_1d(w, a.reshape(-1)) for w, a in zip(parts, axes)], dim=1)


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Select tokens per sample: x (B, N, D), idx (B, K) long -> (B, K, D)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.size(-1)))


# ------------------------------------------------------------------------------- the blocks
class Attention(nn.Module):
    """Multi-head self-attention over (B, N, D)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3x (B, h, N, d)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, h, N, d)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + MLP(LN(x)); (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_weights(m: nn.Module) -> None:
    """ViT / I-JEPA init: truncated normal (std 0.02) linear weights, zero biases, unit LayerNorm."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------ predictor.transformer
class TransformerPredictor(nn.Module):
    """I-JEPA predictor: context tokens (B, K, D) + their indices (B, K) + target indices (B, M)
    -> predicted target tokens (B, M, D). Mask tokens carry the target positions."""

    def __init__(self, dim: int, p: TransformerPredictorParams):
        super().__init__()
        n = math.prod(p.grid)
        self.predictor_embed = nn.Linear(dim, p.width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, p.width))
        if p.pos == "sincos":
            self.register_buffer("predictor_pos_embed", sincos_table(p.width, tuple(p.grid)), persistent=False)
        else:
            self.predictor_pos_embed = nn.Parameter(torch.zeros(n, p.width))
        self.predictor_blocks = nn.Sequential(*[TransformerBlock(p.width, p.heads, p.mlp_ratio) for _ in range(p.depth)])
        self.predictor_norm = nn.LayerNorm(p.width, eps=1e-6)
        self.predictor_proj = nn.Linear(p.width, dim)
        self.apply(init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        if p.pos == "learned":
            nn.init.trunc_normal_(self.predictor_pos_embed, std=0.02)

    def forward(self, ctx: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor) -> torch.Tensor:
        pos = self.predictor_pos_embed
        x = self.predictor_embed(ctx) + pos[ctx_idx]  # (B, K, W)
        m = self.mask_token + pos[tgt_idx]  # (B, M, W): one mask token per target position
        x = self.predictor_blocks(torch.cat([x, m], dim=1))  # (B, K + M, W)
        x = self.predictor_norm(x[:, ctx.size(1):])  # (B, M, W): the target slots
        return self.predictor_proj(x)  # (B, M, D)
