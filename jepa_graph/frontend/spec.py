"""The spec model: a strict, frozen pydantic description of one energy function E_w(x, y, z, a).

Both front ends (YAML, ``.jepa``) build these models; nothing else does. Names follow the
paper: inputs are observed variables, latents are inferred by energy minimisation, actions are
optimised by planning, blocks are the nodes of the graph.

Block kinds form a discriminated union on ``kind``; each kind allows only the relations that
make sense for it (only encoders and predictors may be EMA targets, only costs are fixed).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt, field_validator, model_validator

from ..core.tensors import MAX_SIZE
from .train_config import TrainConfig

NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_RE)]
# a block, or an exported output of a composite instance (`low.state`)
BlockRef = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")]
# Sizes are strict ints: pydantic would read YAML `true` as 1 (JSON Schema's `integer` refuses it too)
Size = Annotated[StrictInt, Field(ge=1, le=MAX_SIZE)]
Count = Annotated[StrictInt, Field(ge=1)]
DimRef = Union[Annotated[StrictInt, Field(le=MAX_SIZE)],  # a literal size (shapes check it is positive)
               Annotated[str, Field(pattern=NAME_RE)]]  # or a named dim
Shape = list[DimRef]

KINDS = ("encoder", "predictor", "energy", "cost", "critic", "actor", "regularizer", "op", "composite")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------------------- variables
class InputVar(Strict):
    """An observed variable (x, y, goal...). ``shape`` is per sample; the batch dim is implicit."""

    shape: Shape
    dtype: Literal["float", "long", "bool"] = "float"  # long: index tensors (mask keep-indices)


class BoxDomain(Strict):
    box: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self):
        if not self.box[0] < self.box[1]:
            raise ValueError("box(lo, hi) needs lo < hi")
        return self


class DiscreteDomain(Strict):
    discrete: Annotated[StrictInt, Field(ge=2, le=MAX_SIZE)]  # K values; fewer than 2 carries no information


Domain = Union[Literal["real"], BoxDomain, DiscreteDomain]
LatentRegName = Literal["l1", "l2", "kl", "none"]


class LatentInference(Strict):
    """Defaults for F(x, y) = min_z E(x, y, z) (see jepa_graph.inference.minimize for why these)."""

    method: Literal["gradient", "enumerate", "cem", "sample"] = "gradient"
    steps: Count | None = None  # gradient: a cap (None: lbfgs 100, adam 300); cem: rounds (None: 20)
    lr: Annotated[float, Field(gt=0)] | None = None  # None: the optimizer's own (lbfgs 1.0, adam 0.1)
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"  # gradient: how each sample's z moves
    restarts: Count | None = None  # gradient: starts per sample, the encoder's guess (or 0) then prior draws;
    # None: 8, or 1 under an l1 regulariser (z* sits at or near 0, the first start)
    tol_e: Annotated[float, Field(ge=0)] = 1e-6  # gradient: converged once |dE| <= tol_e (1 + |E|) ...
    tol_z: Annotated[float, Field(ge=0)] = 1e-3  # ... and every |dz| <= tol_z, on 2 steps in a row


class LatentVar(Strict):
    """A latent z. Its information content is limited by the domain and the regulariser R(z)."""

    shape: Shape
    domain: Domain = "real"
    regularizer: dict[LatentRegName, float] = Field(default_factory=dict)  # {l1: 0.05}: R(z) = 0.05 |z|_1
    inference: LatentInference = LatentInference()
    encoder: Name | None = None  # amortised inference: a block predicting z from (x, y); minimisation starts there


class ActionVar(Strict):
    """An action sequence element optimised by planning."""

    shape: Shape
    bounds: tuple[float, float] | None = None  # box constraint; None means unbounded

    @model_validator(mode="after")
    def _ordered(self):
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError("bounds [lo, hi] need lo < hi")
        return self


# ------------------------------------------------------------------------------------- blocks
class Edge(Strict):
    """One input of a block: a reference to a variable or block (``enc`` or ``lvl.state``)."""

    ref: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")]
    stop_grad: bool = False  # gradient does not flow back along this edge

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, v: Any) -> Any:
        return {"ref": v} if isinstance(v, str) else v


class BlockBase(Strict):
    type: Name | None = None  # registered type; omitted when the block shares or EMA-copies another
    inputs: list[Edge] = Field(default_factory=list, alias="in")
    params: dict[str, Any] = Field(default_factory=dict, alias="with")
    share: BlockRef | None = None  # apply this other block's weights to our inputs
    frozen: bool = False  # parameters never receive gradient updates
    # applied at every step of a sequence: inputs [T, ...] are folded into the batch, the block runs on
    # each step, and its output comes back as [T, ...] (a regulariser sees all B * T rows as one batch;
    # a per-sample number is averaged over the steps)
    each_step: StrictBool = False

    @model_validator(mode="after")
    def _type_or_relation(self):
        rel = getattr(self, "ema_of", None)
        unroll = getattr(self, "unroll", None)
        if unroll is not None:  # the world model's step program, unrolled: no weights or type of its own
            for field, why in (("type", "it runs the step program of the predictor it names"),
                               ("share", "it already applies the weights of the predictor it names"),
                               ("ema_of", "it runs the predictor it names, whose weights it uses")):
                if getattr(self, field, None) is not None:
                    raise ValueError(f"a block with `unroll:` takes no `{field}:`: {why}; remove `{field}`")
            if self.each_step:
                raise ValueError("a block with `unroll:` steps through its sequence itself; remove `each_step`")
            return self
        if self.type is None and self.share is None and rel is None:
            raise ValueError("a block needs a `type` (or `share:` / `ema_of:` another block)")
        if self.type is not None and self.share is not None:
            raise ValueError("a block with `share:` takes its type from the shared block; remove `type`")
        if self.share is not None and rel is not None:  # one module (share) or a momentum copy (EMA), not both
            raise ValueError("`share:` and `ema_of:` exclude each other: a block either uses another's weights "
                             "or keeps a momentum copy of them; keep one")
        return self


class EmaParams(BaseModel):
    """``with:`` of an EMA target: momentum (constant or [start, end]) and its schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    momentum: float | tuple[float, float] = (0.996, 1.0)  # I-JEPA's default range
    schedule: Literal["linear", "cosine", "constant"] = "linear"

    def range(self) -> tuple[float, float]:
        return (self.momentum, self.momentum) if isinstance(self.momentum, float) else tuple(self.momentum)


class EncoderBlock(BlockBase):
    kind: Literal["encoder"]
    ema_of: BlockRef | None = None  # momentum copy of another encoder (target encoder), no gradient


class UnrollParams(BaseModel):
    """``with:`` of an unrolled predictor (``unroll: pred``): how the steps are fed.

    ``unrolled``: s_{t+1} = step(s_t, a_t), from the first state on (the model's own predictions
    are fed back, as in planning); ``teacher``: s_{t+1} = step(s*_t, a_t), each step from the true
    state s*_t (teacher forcing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["unrolled", "teacher"] = "unrolled"


class PredictorBlock(BlockBase):
    kind: Literal["predictor"]
    ema_of: BlockRef | None = None
    # the world model's step unrolled over action sequences: in [states, a_seq(, z_seq)] -> [H, *state]
    unroll: BlockRef | None = None


class EnergyBlock(BlockBase):
    kind: Literal["energy"]


class CostBlock(BlockBase):
    kind: Literal["cost"]


class CriticBlock(BlockBase):
    kind: Literal["critic"]


class ActorBlock(BlockBase):
    kind: Literal["actor"]


class RegularizerBlock(BlockBase):
    kind: Literal["regularizer"]


class OpBlock(BlockBase):
    kind: Literal["op"]


class CompositeBlock(BlockBase):
    """A use of a composite block (a spec file in ``blocks/``); ``with:`` overrides its dims."""

    kind: Literal["composite"]

    @model_validator(mode="after")
    def _no_steps(self):
        if self.each_step:
            raise ValueError("a composite block is not applied per step; set `each_step` on blocks inside it")
        return self


Block = Annotated[
    Union[EncoderBlock, PredictorBlock, EnergyBlock, CostBlock, CriticBlock, ActorBlock,
          RegularizerBlock, OpBlock, CompositeBlock],
    Field(discriminator="kind"),
]


# ------------------------------------------------------------------------- world model, levels
class WorldModel(Strict):
    """What planning unrolls: s_0 = encoder(x); s_{t+1} = predictor(s_t, a_t, z_t)."""

    encoder: BlockRef
    predictor: BlockRef
    action: Name | None = None
    latent: Name | None = None
    stride: Count = 1  # environment steps per predictor step


class Level(WorldModel):
    """One level of a hierarchy; level k+1 encodes level k's states at a longer stride."""

    name: Name
    subgoal: Literal["l2", "l1", "smooth_l1", "cosine"] = "l2"  # distance tying a state to the level above


# ------------------------------------------------------------------------------------ the spec
class Spec(Strict):
    """One JEPA: variables, blocks, and how they are used (objective, world model, costs)."""

    name: Name
    description: str | None = None
    dims: dict[Name, Size] = Field(default_factory=dict)
    inputs: dict[Name, InputVar] = Field(default_factory=dict)
    latents: dict[Name, LatentVar] = Field(default_factory=dict)
    actions: dict[Name, ActionVar] = Field(default_factory=dict)
    blocks: dict[Name, Block]
    outputs: dict[Name, str] = Field(default_factory=dict)  # composite files: exported name -> block
    objective: dict[str, float] = Field(default_factory=dict)  # term -> weight; `z.l1` for R(z)
    world_model: WorldModel | None = None
    costs: dict[Name, float] = Field(default_factory=dict)  # planning cost = sum w * C
    levels: list[Level] = Field(default_factory=list)
    train: TrainConfig | None = None  # optimiser, schedule, data source (jepa_graph.train_config)
    schema_: str | None = Field(default=None, alias="$schema")  # editor hint, ignored

    _source: Any = PrivateAttr(default=None)  # RawSpec with positions, set by the front end
    _path: Any = PrivateAttr(default=None)  # file the spec came from

    @field_validator("objective")
    @classmethod
    def _terms(cls, v: dict[str, float]) -> dict[str, float]:
        for k in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", k):
                raise ValueError(f"objective term `{k}` must be a block name or `latent.regularizer`")
        return v

    @property
    def source(self):
        """The :class:`~jepa_graph.parse_yaml.RawSpec` this spec was read from (positions), or None."""
        return self._source

    @property
    def path(self):
        return self._path

    def names(self) -> dict[str, str]:
        """Every name in the spec's namespace -> what it is ("input", "latent", "action", "block")."""
        out = {n: "input" for n in self.inputs}
        out.update({n: "latent" for n in self.latents})
        out.update({n: "action" for n in self.actions})
        out.update({n: "block" for n in self.blocks})
        return out

    def _repr_svg_(self) -> str | None:
        """The architecture diagram, inline in Jupyter (None without graphviz's `dot`)."""
        from ..diagrams import repr_svg  # upward (pyproject's stated exception): only when a notebook shows it
        return repr_svg(self)
