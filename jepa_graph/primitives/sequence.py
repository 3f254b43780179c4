"""Sequence blocks for world models trained over windows of steps: slicing a sequence, a
discounted energy over steps, and the shaping terms published JEPA planners rely on.

Per sample, a sequence is ``[T, ...]`` (the batch dim stays implicit). With ``each_step: true``
(any block, see :mod:`jepa_graph.compiler.sequence`) and ``unroll: pred`` (the world model's
step over an action sequence), these make multi-step training a spec::

    s_seq    = enc(x_seq, each_step=true)             # [H+1, S]: the encoder at every step
    pred_seq = unroll(pred)(s_seq, a_seq)              # [H, S]: s_0 rolled forward by the actions
    tgt_seq  = op.slice_steps(s_seq, start=1)          # [H, S]: the states it should reach
    E        = energy.discounted(pred_seq, tgt_seq, gamma=0.9)
    idm      = regularizer.inverse_dynamics(s_seq, a_seq, hidden=[64])
    smooth   = regularizer.temporal_smoothness(s_seq)
    metric   = regularizer.path_metric(s_seq, a_seq, margin=100)

Shape rules here (no torch); the modules in ``layers/sequence.py``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..core.registry import BlockType, DimInt, Params, register_block
from ..core.tensors import BATCH_SCALAR, SCALAR, ShapeMismatch, TType, expect_float
from .common import Activation


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import sequence
    return sequence


def _sequence(t: TType, i: int, what: str = "a sequence [B, T, ...]", rank: int = 1) -> int:
    """The number of steps T of a per-sample sequence ``t`` (at least ``rank`` dims per sample)."""
    if not t.batched or len(t.shape) < rank:
        dims = "[" + ", ".join(["B", "T"] + ["n"] * (rank - 1)) + "]"
        raise ShapeMismatch(f"expects {what} on input {i}", i, dims,
                            "a sequence has its steps on the first per-sample dim, e.g. `shape: [H, state]`")
    return t.shape[0]


# ----------------------------------------------------------------------------- slice_steps
class SliceParams(Params):
    start: int = 0  # first step kept (negative: counted from the end, as in Python)
    stop: int | None = None  # one past the last step kept; None: to the end


@register_block("slice_steps", kind="op")
class OpSliceSteps(BlockType):
    """Keep steps start..stop-1 of a sequence: [T, ...] -> [stop - start, ...] (Python slice rules)."""

    Params = SliceParams
    input_names = ("sequence",)

    def infer(self, p, ins):
        t = _sequence(ins[0], 0)
        kept = len(range(t)[p.start:p.stop])
        if kept == 0:
            raise ShapeMismatch(f"keeps no step of the {t} on input 0 (start {p.start}, stop {p.stop})", 0,
                                f"[B, >{max(p.start, 0)}, ...]", "choose `start`/`stop` inside the sequence")
        return ins[0].with_shape(kept, *ins[0].shape[1:])

    def build(self, p, ins):
        return _layers().SliceSteps(p.start, p.stop)

    @classmethod
    def example(cls):
        return {"start": 1}, [TType((4, 3))]


# ------------------------------------------------------------------------------ discounted
class DiscountedParams(Params):
    distance: Literal["l2", "l1", "smooth_l1", "cosine"] = "l2"  # D_t, as the energy of that name at one step
    gamma: float = Field(1.0, gt=0)  # weight gamma^t of step t; 1: the plain mean over steps
    beta: float = 1.0  # smooth_l1: quadratic below beta, linear above


@register_block("discounted", kind="energy")
class EnergyDiscounted(BlockType):
    """Distance between two sequences [T, ...]: sum_t gamma^t D_t / sum_t gamma^t, per sample."""

    Params = DiscountedParams
    arity = (2, 2)
    input_names = ("prediction", "target")

    def infer(self, p, ins):
        a, b = ins
        expect_float(a, 0)
        expect_float(b, 1)
        _sequence(a, 0, "a sequence of representations [B, T, n]", rank=2)
        if a != b:
            raise ShapeMismatch(f"compares two sequences of one shape: input 0 is {a}, but input 1", 1, str(a),
                                "both sides need the same steps and the same representation")
        return SCALAR

    def build(self, p, ins):
        return _layers().Discounted(p.distance, p.gamma, p.beta)

    @classmethod
    def example(cls):
        return {"gamma": 0.9, "distance": "smooth_l1"}, [TType((3, 4)), TType((3, 4))]


# ------------------------------------------------------------------------ temporal smoothness
@register_block("temporal_smoothness", kind="regularizer")
class RegTemporalSmoothness(BlockType):
    """Temporal smoothness of a state sequence [T, ...]: mean of (s_{t+1} - s_t)^2 over the batch."""

    input_names = ("states",)

    def infer(self, p, ins):
        expect_float(ins[0], 0)
        if _sequence(ins[0], 0, "a sequence of states [B, T, n]", rank=2) < 2:
            raise ShapeMismatch("needs at least 2 steps on input 0 (differences of consecutive states)", 0,
                                "[B, T >= 2, n]")
        return BATCH_SCALAR

    def build(self, p, ins):
        return _layers().TemporalSmoothness()

    @classmethod
    def example(cls):
        return {}, [TType((3, 4))]


# ------------------------------------------------------------------------------ path metric
class PathMetricParams(Params):
    margin: float = Field(100.0, gt=0, description="states of different windows are pushed apart up to this distance")
    scale: float = Field(1.0, gt=0, description="distance per unit of action norm")
    tight: float = Field(100.0, gt=0, description="weight of the path-length bound against the push apart")
    pairs: Literal["all", "consecutive"] = "all"  # bound every pair of steps of a window, or consecutive ones


@register_block("path_metric", kind="regularizer")
class RegPathMetric(BlockType):
    """States as a metric of path length, so that the distance between two states approaches the
    length of the shortest path between them, walls included (what a greedy planner's goal cost needs).

    Inputs: states [T+1, *S] and the window's actions [T, *A]. Two terms:

    * the path bound: ||s_i - s_j|| <= ``scale`` * sum_{t=i}^{j-1} ||a_t|| for every pair of steps
      i < j of a window (``pairs: consecutive``: j = i + 1 only), a squared hinge weighted by ``tight``;
      a move a wall stops is shorter than its action, so the bound still holds;
    * the push apart: mean of relu(``margin`` - ||s - s'||) over states s, s' of different windows
      (each sample against the next one in the batch, step for step).

    Maximising distances under the local bounds unfolds the state space around its obstacles: two
    points on either side of a wall, near in Euclidean terms, end up as far apart as the way round
    through the door (maximum variance unfolding, and the quasimetric objective of Wang et al. 2023,
    here symmetric). An encoder of raw coordinates is too smooth to tear apart at a 3-pixel wall;
    ``op.rbf`` in front of it gives it the resolution."""

    Params = PathMetricParams
    arity = (2, 2)
    input_names = ("states", "actions")

    def infer(self, p, ins):
        for i, t in enumerate(ins):
            expect_float(t, i)
        s, a = ins
        t = _sequence(a, 1, "actions [B, T, ...]", rank=2)
        if _sequence(s, 0, "states [B, T+1, ...]", rank=2) != t + 1:
            raise ShapeMismatch(f"needs one state more than the {t} actions of input 1 on input 0", 0,
                                f"[B, {t + 1}, ...]", "pass the states of the whole window (T+1) and its T actions")
        return BATCH_SCALAR

    def build(self, p, ins):
        return _layers().PathMetric(p.margin, p.scale, p.tight, p.pairs == "all")

    @classmethod
    def example(cls):
        return {"margin": 10.0}, [TType((4, 3)), TType((3, 2))]


# -------------------------------------------------------------------------- inverse dynamics
class InverseParams(Params):
    hidden: list[DimInt] = [64]  # the head's hidden widths
    act: Activation = "relu"


@register_block("inverse_dynamics", kind="regularizer")
class RegInverseDynamics(BlockType):
    """Inverse dynamics: an MLP head predicts a_t from (s_t, s_{t+1}); the mean squared error.

    Inputs: states [T+1, *S] and actions [T, *A] (every consecutive pair of states), or one
    transition s_t [*S], s_{t+1} [*S], a_t [*A]. Without it, published JEPA planners' states
    collapse towards what the prediction energy alone needs and stop telling actions apart."""

    Params = InverseParams
    arity = (2, 3)
    input_names = ("states", "actions_or_next", "actions")

    def infer(self, p, ins):
        for i, t in enumerate(ins):
            expect_float(t, i)
            if not t.batched or not t.shape:
                raise ShapeMismatch(f"needs a tensor per sample on input {i}", i, "[B, ...]")
        if len(ins) == 3:
            if ins[0] != ins[1]:
                raise ShapeMismatch(f"takes s_t and s_(t+1) of one shape: input 0 is {ins[0]}, but input 1", 1,
                                    str(ins[0]))
            return BATCH_SCALAR
        s, a = ins
        t = _sequence(a, 1, "actions [B, T, ...]", rank=2)
        if _sequence(s, 0, "states [B, T+1, ...]", rank=2) != t + 1:
            raise ShapeMismatch(f"needs one state more than the {t} actions of input 1 on input 0", 0,
                                f"[B, {t + 1}, ...]", "pass the states of the whole window (T+1) and its T actions")
        return BATCH_SCALAR

    def build(self, p, ins):
        if len(ins) == 3:
            n_state, n_act = ins[0].numel, ins[2].numel
        else:
            n_state, n_act = ins[0].numel // ins[0].shape[0], ins[1].numel // ins[1].shape[0]
        return _layers().InverseDynamics(n_state, n_act, list(p.hidden), p.act, pairs=len(ins) == 2)

    @classmethod
    def example(cls):
        return {"hidden": [8]}, [TType((4, 3)), TType((3, 2))]
