"""Shape rules of the transformer pieces shared by the ViT encoder and the I-JEPA predictor, and
``predictor.transformer``. Their torch modules (pre-norm blocks, sin-cos tables) are in
``layers/transformer.py``.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from ..core.registry import BlockType, DimInt, Params, register_block
from ..core.tensors import ShapeMismatch, TType


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import transformer
    return transformer


# ---------------------------------------------------------------------- positional table sizes
def sincos_split(dim: int, rank: int) -> list[int] | None:
    """Widths given to each grid axis: 2-D halves, 3-D gives time half and h, w a quarter each
    (V-JEPA). None when ``dim`` cannot be split into even parts."""
    parts = {1: [dim], 2: [dim // 2, dim // 2], 3: [dim // 2, dim // 4, dim // 4]}[rank]
    if sum(parts) != dim or any(p % 2 or p == 0 for p in parts):
        return None
    return parts


def sincos_requirement(rank: int) -> str:
    return {1: "even", 2: "a multiple of 4", 3: "a multiple of 8"}[rank]


# ----------------------------------------------------------------------------- shape checks
def check_heads(dim: int, heads: int, what: str = "dim") -> None:
    if dim % heads:
        raise ShapeMismatch(f"needs `{what}` ({dim}) divisible by `heads` ({heads})", None,
                            hint=f"pick heads in {[h for h in range(1, 17) if dim % h == 0]}")


def check_indices(t: TType, index: int, name: str) -> None:
    if not t.batched or t.dtype != "long" or len(t.shape) != 1:
        raise ShapeMismatch(f"expects {name} [B, K] (long) on input {index}", index, "[B, K] (long)",
                            "declare the input with `dtype: long`, one token index per entry")


def check_tokens(t: TType, index: int, name: str = "tokens [B, N, D]") -> None:
    if not t.batched or t.dtype != "float" or len(t.shape) != 2:
        raise ShapeMismatch(f"expects {name} on input {index}", index, "[B, N, D]",
                            "token blocks take [B, N, D]; pool or reshape vectors first")


# ------------------------------------------------------------------------ predictor.transformer
class TransformerPredictorParams(Params):
    grid: Annotated[list[DimInt], Field(min_length=1, max_length=3)]  # token grid of the encoder, e.g. [4, 4] (2-D) or [4, 4, 4] (time, h, w)
    width: DimInt = 384  # predictor width (I-JEPA: narrower than the encoder)
    depth: Annotated[int, Field(ge=0)] = 6
    heads: DimInt = 6
    mlp_ratio: Annotated[float, Field(gt=0)] = 4.0
    pos: Literal["sincos", "learned"] = "sincos"


@register_block("transformer", kind="predictor")
class PredictorTransformer(BlockType):
    """I-JEPA transformer predictor: (context [K, D], ctx indices [K], target indices [M]) -> [M, D]."""

    Params = TransformerPredictorParams
    arity = (3, 3)
    input_names = ("context", "context_indices", "target_indices")

    def infer(self, p, ins):
        ctx, ci, ti = ins
        check_tokens(ctx, 0, "context tokens [B, K, D]")
        check_indices(ci, 1, "context indices")
        check_indices(ti, 2, "target indices")
        if ci.shape[0] != ctx.shape[0]:
            raise ShapeMismatch(f"needs one context index per context token ({ctx.shape[0]}) on input 1", 1,
                                f"[B, {ctx.shape[0]}] (long)")
        n = math.prod(p.grid)
        for i, t in ((1, ci), (2, ti)):
            if t.shape[0] > n:
                raise ShapeMismatch(f"selects more tokens than the grid {p.grid} has ({n}) on input {i}", i,
                                    f"[B, <={n}] (long)")
        if p.pos == "sincos" and sincos_split(p.width, len(p.grid)) is None:
            raise ShapeMismatch(f"needs `width` {sincos_requirement(len(p.grid))} for {len(p.grid)}-D sin-cos "
                                f"positions, got {p.width}", None, hint="change `width`, or use `pos: learned`")
        check_heads(p.width, p.heads, "width")
        return TType((ti.shape[0], ctx.shape[1]))

    def build(self, p, ins):
        return _layers().TransformerPredictor(ins[0].shape[1], p)

    def index_bound(self, p, ins, index):
        return math.prod(p.grid)

    @classmethod
    def example(cls):
        return ({"grid": [2, 3], "width": 8, "depth": 1, "heads": 2},
                [TType((4, 12)), TType((4,), "long"), TType((2,), "long")])
