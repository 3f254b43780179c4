"""The block registry: primitive block types by (kind, name), with a shape rule and a builder.

Register a block type by subclassing :class:`BlockType` and decorating it::

    @jg.register_block("my_encoder")
    class MyEncoder(jg.BlockType):
        kind = "encoder"
        class Params(jg.Params):
            out: jg.DimInt            # a width; may name a dim of the spec ("state")
        def infer(self, p, ins):      # ins: list of TType, one per input
            return vec(p.out)
        def build(self, p, ins):      # -> nn.Module called as module(*inputs)
            return nn.Linear(ins[0].shape[-1], p.out)

Names are unique per kind; registering one twice is an error; an unknown name answers with the
closest registered names. Packages may register blocks through the ``jepa_graph.blocks`` entry
point group (the entry point names a module that registers on import). A spec never names code.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .errors import Location, SpecError, did_you_mean
from .tensors import MAX_SIZE, TType

if TYPE_CHECKING:  # annotations only: checking a spec imports no torch
    import torch.nn as nn

log = logging.getLogger(__name__)


def _resolve_dim(v: Any, info: ValidationInfo) -> Any:
    if isinstance(v, str):
        dims = (info.context or {}).get("dims", {})
        if v not in dims:
            raise ValueError(f"unknown dim `{v}`; {did_you_mean(v, dims, 'dims')}")
        v = dims[v]  # a composite's `with:` may set it: check its range here too
    _check_number(v)
    return v


def _check_number(v: Any, sizes: bool = True) -> None:
    """Refuse what pydantic would quietly take as a number: YAML `true` (as 1), and integers past
    MAX_SIZE (torch fails on them at build time). The error types are what shapes.py gives hints for."""
    for x in v if isinstance(v, (list, tuple)) else [v]:
        if isinstance(x, bool):
            raise PydanticCustomError("not_a_number", "`{value}` is not a number", {"value": str(x).lower()})
        if sizes and isinstance(x, int) and x > MAX_SIZE:
            raise PydanticCustomError("size_too_big", "{value} is too big; sizes go up to {max}",
                                      {"value": x, "max": f"{MAX_SIZE:,}"})


DimInt = Annotated[int, BeforeValidator(_resolve_dim), Field(ge=1)]
"""A positive size that may be written as a named dim of the spec (``out: state``)."""


class Params(BaseModel):
    """Base for a block type's parameters (the spec's ``with:``). Strict: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, v: Any, info: ValidationInfo) -> Any:
        ann = cls.model_fields[info.field_name].annotation
        if not _takes(ann, bool):  # `norm: true` stays a bool
            _check_number(v, sizes=_takes(ann, int))  # `lo: 1e40` is a fine float
        return v


def _takes(ann: Any, t: type) -> bool:
    """Whether annotation ``ann`` (``int | list[int]``, ``Annotated[...]``) accepts values of type ``t``."""
    return ann is t or ann is Any or any(_takes(a, t) for a in get_args(ann))


class BlockType(ABC):
    """A primitive block type. Subclasses set ``kind``, ``Params``, ``arity`` and implement
    :meth:`infer` (the shape rule) and :meth:`build` (the torch module)."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = Params
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # min and max number of inputs (None: any)
    input_names: ClassVar[tuple[str, ...]] = ()  # for messages and diagrams: ("state", "action", ...)

    @abstractmethod
    def infer(self, p: Any, ins: list[TType]) -> TType:
        """Output type from parameters and input types; raise ShapeMismatch when they don't fit."""

    @abstractmethod
    def build(self, p: Any, ins: list[TType]) -> nn.Module:
        """The torch module, called as ``module(*inputs)``."""

    def index_bound(self, p: Any, ins: list[TType], index: int) -> int | None:
        """For an index input (dtype long): one past its largest valid value (the token count), or None."""
        return None

    @classmethod
    def example(cls) -> tuple[dict, list[TType]] | None:
        """Parameters (with dims resolved) and input types for the registry smoke test."""
        return None

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


_REGISTRY: dict[tuple[str, str], type[BlockType]] = {}
_loaded = False


def register_block(name: str, kind: str | None = None):
    """Class decorator registering a :class:`BlockType` subclass under ``(kind, name)``."""

    def deco(cls: type[BlockType]) -> type[BlockType]:
        k = kind or cls.kind
        if not k:
            raise ValueError(f"register_block({name!r}): {cls.__name__} sets no `kind`")
        if not cls.__module__.startswith("jepa_graph.primitives."):
            _ensure_loaded()  # built-ins first: a user's block may not take a built-in's name unnoticed
        if (k, name) in _REGISTRY:
            raise ValueError(f"block type `{k}.{name}` is already registered "
                             f"(by {_REGISTRY[(k, name)].__module__}.{_REGISTRY[(k, name)].__name__})")
        cls.kind, cls.name = k, name
        _REGISTRY[(k, name)] = cls
        return cls

    return deco


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module("jepa_graph.primitives")
    for ep in entry_points(group="jepa_graph.blocks"):
        log.debug("loading block plugin %s", ep.value)
        ep.load()


def get_block(kind: str, name: str, loc: Location | None = None) -> BlockType:
    """The registered block type ``kind.name``, or a :class:`SpecError` with close names."""
    _ensure_loaded()
    cls = _REGISTRY.get((kind, name))
    if cls is not None:
        return cls()
    other = sorted(k for (k, n) in _REGISTRY if n == name)
    if other:
        hint = f"`{name}` is registered as {' and '.join(f'`{k}.{name}`' for k in other)}; change `kind:`"
    else:
        hint = did_you_mean(name, [n for (k, n) in _REGISTRY if k == kind], f"{kind} types")
    raise SpecError(f"unknown {kind} type `{name}`", loc, hint)


def list_blocks() -> list[type[BlockType]]:
    """Every registered block type, sorted by kind and name."""
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
