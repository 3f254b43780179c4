"""Plumbing ops: concat, stop_grad, layer_norm, pool, reshape, apply_mask, temporal_pool, rbf.

Parameter-free (except ``layer_norm`` with ``affine: true``); each has an exact shape rule so a
miswired spec fails at compile time, naming the op and the input.
"""
from __future__ import annotations

import math
from typing import Literal

from ..core.registry import BlockType, DimInt, Params, register_block
from ..core.tensors import ShapeMismatch, TType, expect_float, vec
from .transformer import check_indices, check_tokens


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import ops
    return ops


def _per_sample(t: TType, i: int) -> None:
    expect_float(t, i)
    if not t.batched:
        raise ShapeMismatch(f"expects a per-sample tensor on input {i}", i, "[B, ...]",
                            "a regulariser's batch value is a term of the objective, not a tensor to transform")


# ---------------------------------------------------------------------------------- concat
@register_block("concat", kind="op")
class OpConcat(BlockType):
    """Concatenate along the feature (last) dim: [..., a], [..., b] -> [..., a + b]."""

    arity = (2, None)

    def infer(self, p, ins):
        for i, t in enumerate(ins):
            _per_sample(t, i)
            if t.shape == ():
                raise ShapeMismatch(f"concatenates features, not scalars, on input {i}", i, "[B, ..., n]")
            if t.shape[:-1] != ins[0].shape[:-1]:
                lead = "[" + ", ".join(["B", *map(str, ins[0].shape[:-1]), "n"]) + "]"
                raise ShapeMismatch(f"needs every input to agree on all but the last dim: input 0 is {ins[0]}, "
                                    f"so input {i} should be {lead}", i, lead)
        return ins[0].with_shape(*ins[0].shape[:-1], sum(t.shape[-1] for t in ins))

    def build(self, p, ins):
        return _layers().Concat()

    @classmethod
    def example(cls):
        return {}, [TType((3, 4)), TType((3, 2))]


# ------------------------------------------------------------------------------- stop_grad
@register_block("stop_grad", kind="op")
class OpStopGrad(BlockType):
    """Identity forward, no gradient backward (sg[x]); same as `{ref: x, stop_grad: true}` on an edge."""

    def infer(self, p, ins):
        return ins[0]

    def build(self, p, ins):
        return _layers().StopGrad()

    @classmethod
    def example(cls):
        return {}, [vec(4)]


# ------------------------------------------------------------------------------ layer_norm
class LayerNormParams(Params):
    affine: bool = False  # I-JEPA normalises target tokens without a learned scale and shift
    eps: float = 1e-6


@register_block("layer_norm", kind="op")
class OpLayerNorm(BlockType):
    """LayerNorm over the feature (last) dim; no affine parameters unless `affine: true`."""

    Params = LayerNormParams

    def infer(self, p, ins):
        _per_sample(ins[0], 0)
        if ins[0].shape == ():
            raise ShapeMismatch("normalises features, not scalars, on input 0", 0, "[B, ..., n]")
        return ins[0]

    def build(self, p, ins):
        return _layers().LayerNormOp(ins[0].shape[-1], p)

    @classmethod
    def example(cls):
        return {"affine": True}, [TType((3, 4))]


# ------------------------------------------------------------------------------------ pool
class PoolParams(Params):
    mode: Literal["mean", "max"] = "mean"


@register_block("pool", kind="op")
class OpPool(BlockType):
    """Mean or max over tokens: [N, D] -> [D]."""

    Params = PoolParams

    def infer(self, p, ins):
        check_tokens(ins[0], 0)
        return vec(ins[0].shape[1])

    def build(self, p, ins):
        return _layers().TokenPool(p.mode)

    @classmethod
    def example(cls):
        return {"mode": "max"}, [TType((5, 4))]


class TemporalPoolParams(Params):
    mode: Literal["mean", "max"] = "mean"
    stride: DimInt | None = None  # None: pool all T steps to one; k: windows of k steps -> [T / k, D]


@register_block("temporal_pool", kind="op")
class OpTemporalPool(BlockType):
    """Pool a sequence over time: [T, D] -> [D], or windows of `stride` steps -> [T / stride, D]."""

    Params = TemporalPoolParams

    def infer(self, p, ins):
        check_tokens(ins[0], 0, "a sequence [B, T, D]")
        t, d = ins[0].shape
        if p.stride is None:
            return vec(d)
        if t % p.stride:
            raise ShapeMismatch(f"pools windows of {p.stride} steps, but the sequence has {t} steps on input 0", 0,
                                f"[B, T, {d}] with T a multiple of {p.stride}",
                                f"choose a `stride` that divides {t}")
        return TType((t // p.stride, d))

    def build(self, p, ins):
        return _layers().TokenPool(p.mode, p.stride)

    @classmethod
    def example(cls):
        return {"stride": 2}, [TType((6, 4))]


# --------------------------------------------------------------------------------- reshape
class ReshapeParams(Params):
    shape: list[DimInt]  # the per-sample target shape, e.g. [3, 32, 32]; the batch dim stays


@register_block("reshape", kind="op")
class OpReshape(BlockType):
    """Reshape each sample to `shape` (same number of elements): [a, b] -> [a * b], [n] -> [C, H, W]."""

    Params = ReshapeParams

    def infer(self, p, ins):
        _per_sample(ins[0], 0)
        n = math.prod(p.shape)
        if n != ins[0].numel:
            raise ShapeMismatch(f"reshapes to {p.shape} ({n} elements per sample), but input 0 has "
                                f"{ins[0].numel}", 0, f"[B, ...] with {n} elements")
        return ins[0].with_shape(*p.shape)

    def build(self, p, ins):
        return _layers().Reshape(tuple(p.shape))

    @classmethod
    def example(cls):
        return {"shape": [2, 6]}, [TType((3, 4))]


# ------------------------------------------------------------------------------------- rbf
class RbfParams(Params):
    dims: list[int] = [0, 1]  # the features expanded (e.g. x and y of a state vector)
    lo: float = 0.0  # the grid's first centre on every expanded feature
    hi: float = 1.0  # its last centre
    n: DimInt = 16  # centres per expanded feature: n ** len(dims) outputs
    sigma: float | None = None  # the bumps' width (default: the spacing of the centres)
    keep: bool = True  # append the features not expanded, unchanged


@register_block("rbf", kind="op")
class OpRbf(BlockType):
    """A fixed radial-basis expansion of coordinates: [F] -> [n^len(dims) (+ F - len(dims))].

    Each output is exp(-||x_dims - c||^2 / (2 sigma^2)) for a centre c of the grid of ``n`` points
    per feature over [lo, hi]; with ``keep`` the other features follow unchanged. An MLP of raw
    coordinates is smooth at the scale of the whole input range (spectral bias), so it cannot tell
    two points a thin wall apart from two points in open space; on this expansion it can. No weights."""

    Params = RbfParams

    def infer(self, p, ins):
        _per_sample(ins[0], 0)
        if len(ins[0].shape) != 1:
            raise ShapeMismatch(f"expands a feature vector per sample, got {ins[0]}", 0, "[B, F]")
        f = ins[0].shape[0]
        if not p.dims or len(set(p.dims)) != len(p.dims) or any(not -f <= d < f for d in p.dims):
            raise ShapeMismatch(f"`dims` {p.dims} must be distinct feature indices of input 0 ({f} features)",
                                0, f"[B, F > {max(p.dims, default=0)}]")
        if not p.hi > p.lo:
            raise ShapeMismatch(f"`hi` ({p.hi}) must be above `lo` ({p.lo})", 0)
        size = p.n ** len(p.dims)
        if size > 65536:
            raise ShapeMismatch(f"{p.n} centres on {len(p.dims)} features make {size} outputs (at most 65536)", 0,
                                hint="fewer centres (`n`) or fewer `dims`")
        return ins[0].with_shape(size + (f - len(p.dims) if p.keep else 0))

    def build(self, p, ins):
        f = ins[0].shape[0]
        dims = [d % f for d in p.dims]
        sigma = p.sigma if p.sigma is not None else (p.hi - p.lo) / max(p.n - 1, 1)
        return _layers().Rbf(dims, f, p.lo, p.hi, p.n, sigma, p.keep)

    @classmethod
    def example(cls):
        return {"n": 3, "hi": 4.0}, [vec(4)]


# ------------------------------------------------------------------------------ apply_mask
@register_block("apply_mask", kind="op")
class OpApplyMask(BlockType):
    """Keep the tokens at the given indices: tokens [N, D] + indices [K] (long) -> [K, D]."""

    arity = (2, 2)
    input_names = ("tokens", "indices")

    def infer(self, p, ins):
        check_tokens(ins[0], 0)
        check_indices(ins[1], 1, "token indices")
        n, k = ins[0].shape[0], ins[1].shape[0]
        if k > n:
            raise ShapeMismatch(f"keeps at most the {n} tokens of input 0 on input 1", 1, f"[B, <={n}] (long)")
        return TType((k, ins[0].shape[1]))

    def build(self, p, ins):
        return _layers().ApplyMask()

    def index_bound(self, p, ins, index):
        return ins[0].shape[0]

    @classmethod
    def example(cls):
        return {}, [TType((6, 4)), TType((3,), "long")]
