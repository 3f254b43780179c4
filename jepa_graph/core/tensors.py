"""Static tensor types: what shape rules consume and produce.

A :class:`TType` is a per-sample shape (the batch dim ``B`` is implicit when ``batched``), a
dtype, and whether the value is a batch-level scalar (a regulariser's loss). Shape rules raise
:class:`ShapeMismatch` naming which input was wrong; the checker adds where it came from.
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_SIZE = 2**31 - 1  # int32: what torch kernels index with; past 2**63 torch cannot even hold the size


@dataclass(frozen=True)
class TType:
    shape: tuple[int, ...]
    dtype: str = "float"  # float | long | bool
    batched: bool = True  # False: one value for the whole batch (e.g. a VICReg loss)

    def __str__(self) -> str:
        dims = (["B"] if self.batched else []) + [str(d) for d in self.shape]
        return "[" + ", ".join(dims) + "]" + ("" if self.dtype == "float" else f" ({self.dtype})")

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def with_shape(self, *shape: int) -> "TType":
        return TType(tuple(shape), self.dtype, self.batched)


def vec(n: int) -> TType:
    return TType((n,))


SCALAR = TType(())  # one value per sample: energies, costs, critics
BATCH_SCALAR = TType((), batched=False)  # one value per batch: regularisers


class ShapeMismatch(Exception):
    """Raised by a shape rule. ``index`` is the offending input (0-based) or None for the block."""

    def __init__(self, message: str, index: int | None = None, expected: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message, self.index, self.expected, self.hint = message, index, expected, hint


def expect_rank(t: TType, rank: int, index: int, what: str = "") -> None:
    if not t.batched or len(t.shape) != rank:
        shape = "[" + ", ".join(["B"] + ["n"] * rank) + "]"
        raise ShapeMismatch(f"expects {what or shape} on input {index}", index, shape)


def expect_float(t: TType, index: int) -> None:
    if t.dtype != "float":
        raise ShapeMismatch(f"expects a float tensor on input {index}", index, "float",
                            "index tensors (dtype long) only go into blocks that take indices")
