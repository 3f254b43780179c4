"""Intrinsic cost blocks: fixed (untrained) functions of a state, one number per sample.

``goal_distance`` compares a state with a goal representation; ``l2`` penalises magnitude
(effort, when fed actions); ``box_penalty`` is a guardrail outside [lo, hi]."""
from __future__ import annotations

from typing import Literal

from ..core.registry import BlockType, Params, register_block
from ..core.tensors import SCALAR, ShapeMismatch, vec
from .common import flat_in


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import costs
    return costs


class GoalParams(Params):
    # l2, l1, smooth_l1: means over the features (squared, absolute, Huber); cosine: 1 - cos;
    # euclidean: the norm ||s - g||, the metric a path-metric representation (regularizer.path_metric) learns
    metric: Literal["l2", "l1", "smooth_l1", "cosine", "euclidean"] = "l2"


@register_block("goal_distance", kind="cost")
class GoalDistance(BlockType):
    """D(s, s_goal) per sample: how far a state is from the goal's representation."""

    Params = GoalParams
    arity = (2, 2)
    input_names = ("state", "goal")

    def infer(self, p, ins):
        flat_in(ins)  # Distance reduces over flatten(1): each needs a feature dim
        a, b = ins
        if a.shape != b.shape:
            raise ShapeMismatch(f"compares a state and a goal of one shape: state is {a}, but the goal", 1, str(a))
        return SCALAR

    def build(self, p, ins):
        return _layers().Distance(p.metric)

    @classmethod
    def example(cls):
        return {}, [vec(4), vec(4)]


class L2Params(Params):
    target: float = 0.0  # penalise distance from this value


@register_block("l2", kind="cost")
class CostL2(BlockType):
    """Sum of squares per sample (effort on actions, or distance from a constant)."""

    Params = L2Params

    def infer(self, p, ins):
        flat_in(ins)  # (B, ...) with at least one dim: the sum runs over flatten(1)
        return SCALAR

    def build(self, p, ins):
        return _layers().L2Cost(p.target)

    @classmethod
    def example(cls):
        return {}, [vec(3)]


class BoxParams(Params):
    lo: float = -1.0
    hi: float = 1.0


@register_block("box_penalty", kind="cost")
class CostBox(BlockType):
    """Squared distance outside the box [lo, hi], summed per sample (a guardrail)."""

    Params = BoxParams

    def infer(self, p, ins):
        flat_in(ins)
        if not p.lo < p.hi:
            raise ShapeMismatch("needs lo < hi", None, hint="e.g. `with: {lo: -1, hi: 1}`")
        return SCALAR

    def build(self, p, ins):
        return _layers().BoxPenalty(p.lo, p.hi)

    @classmethod
    def example(cls):
        return {"lo": -0.5, "hi": 0.5}, [vec(3)]
