"""MLP blocks: encoder, predictor (plain and action-conditioned), critic and actor."""
from __future__ import annotations

from ..core.registry import BlockType, DimInt, Params, register_block
from ..core.tensors import SCALAR, ShapeMismatch, expect_float, vec
from .common import Activation, flat_in


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import mlp
    return mlp


class MLPParams(Params):
    hidden: list[DimInt] = []  # hidden widths; [] is a single linear map
    out: DimInt  # output width, usually a named dim such as `state`
    act: Activation = "relu"
    norm: bool = False  # LayerNorm before each hidden activation


@register_block("mlp", kind="encoder")
class EncoderMLP(BlockType):
    """MLP encoder s = Enc(x): flattens x per sample, then Linear/act layers to `out`."""

    Params = MLPParams
    input_names = ("x",)

    def infer(self, p, ins):
        flat_in(ins)
        return vec(p.out)

    def build(self, p, ins):
        L = _layers()
        return L.MLP(L.mlp_layers([flat_in(ins), *p.hidden, p.out], p.act, p.norm))

    @classmethod
    def example(cls):
        return {"hidden": [8], "out": 4}, [vec(6)]


@register_block("mlp", kind="predictor")
class PredictorMLP(EncoderMLP):
    """MLP predictor over the concatenation of its inputs: Pred([s, a, z])."""

    arity = (1, None)
    input_names = ("state", "action", "latent")

    @classmethod
    def example(cls):
        return {"hidden": [8], "out": 4}, [vec(4), vec(2)]


class ACParams(Params):
    branch: DimInt = 64  # width of each input's own first layer
    hidden: list[DimInt] = [64]  # widths after the branches are joined
    out: DimInt
    act: Activation = "relu"


@register_block("ac_mlp", kind="predictor")
class PredictorACMLP(BlockType):
    """Action-conditioned MLP predictor Pred(s, a[, z]): a branch per input, then a joint MLP."""

    Params = ACParams
    arity = (2, 3)
    input_names = ("state", "action", "latent")

    def infer(self, p, ins):
        for i, t in enumerate(ins):
            expect_float(t, i)
            if not t.batched or len(t.shape) != 1:
                raise ShapeMismatch(f"expects a vector [B, n] on input {i} ({self.input_names[i]})", i, "[B, n]")
        return vec(p.out)

    def build(self, p, ins):
        return _layers().ActionConditionedMLP([t.shape[0] for t in ins], p)

    @classmethod
    def example(cls):
        return {"branch": 8, "hidden": [8], "out": 4}, [vec(4), vec(2), vec(3)]


class CriticParams(Params):
    hidden: list[DimInt] = [64]
    act: Activation = "relu"


@register_block("mlp", kind="critic")
class CriticMLP(BlockType):
    """Trainable cost C(s): an MLP to one number per sample, (B, ...) -> (B,)."""

    Params = CriticParams
    arity = (1, None)
    input_names = ("state",)

    def infer(self, p, ins):
        flat_in(ins)
        return SCALAR

    def build(self, p, ins):
        L = _layers()
        return L.MLP(L.mlp_layers([flat_in(ins), *p.hidden, 1], p.act), squeeze=True)

    @classmethod
    def example(cls):
        return {"hidden": [8]}, [vec(4)]


class ActorParams(Params):
    hidden: list[DimInt] = [64, 64]
    out: DimInt  # action width
    act: Activation = "relu"
    bounds: tuple[float, float] | None = (-1.0, 1.0)  # tanh squashed onto [lo, hi]; None: unbounded


@register_block("mlp", kind="actor")
class ActorMLP(BlockType):
    """Policy a = Actor(s): an MLP ending in tanh scaled to the action bounds."""

    Params = ActorParams
    input_names = ("state",)

    def infer(self, p, ins):
        flat_in(ins)
        if p.bounds is not None and not p.bounds[0] < p.bounds[1]:
            raise ShapeMismatch("needs bounds [lo, hi] with lo < hi", None, hint="e.g. `bounds: [-1, 1]`")
        return vec(p.out)

    def build(self, p, ins):
        return _layers().actor(flat_in(ins), p)

    @classmethod
    def example(cls):
        return {"hidden": [8], "out": 2, "bounds": [0.0, 2.0]}, [vec(4)]
