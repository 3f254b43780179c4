"""Shape helpers shared by primitive blocks (their torch layers live in ``layers/common.py``)."""
from __future__ import annotations

from typing import Literal

from ..core.tensors import ShapeMismatch, TType, expect_float

Activation = Literal["relu", "gelu", "silu", "tanh", "elu", "leaky_relu"]  # keys of layers.common._ACT


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
