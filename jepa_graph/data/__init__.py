"""Data sources for training, generated locally (nothing is downloaded), selected by name.

A source yields batches as dicts of named tensors whose names are the spec's inputs. Batches
are a pure function of ``(seed, step)``: the trainer asks for the *global* batch of a step and
each rank keeps its shard, so a run resumed from a checkpoint, or split across processes,
sees exactly the data an uninterrupted single-process run would have seen.

================ ===========================================================================
``two_rooms``    transitions of a 2-D agent in two rooms joined by a door (states or 64x64 pixels)
``shapes``       coloured shapes at random positions/scales, with I-JEPA multi-block masks, or
                 two augmented views ``x1, x2`` (joint-embedding specs such as VICReg)
``video``        short procedural videos (moving shapes) with V-JEPA tube masks
``fork``         the seeds' "fork in the road": a bimodal next state (left or right)
================ ===========================================================================

Register your own::

    @register_source("my_source")
    class MySource(DataSource):
        class Params(SourceParams):
            noise: float = 0.1
        def sample(self, n, gen):                       # -> {"x": (n, 16), ...}
            return {"x": torch.randn(n, 16, generator=gen)}

or pass any map-style ``torch.utils.data.Dataset`` to ``jg.train(model, dataset, names=[...])``.

A source whose batches must have a certain size (``fork`` with ``paired``: even) says so in
:meth:`DataSource.check_batch_size`; ``[lo, hi]`` parameters use :data:`FractionRange` or
:data:`PositiveRange`, so a reversed or out-of-range pair is a located error, not a quiet run.
With no source at all the trainer falls back to random example inputs and logs a warning.
"""
from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar, get_args

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from ..core.errors import Location, SpecError, did_you_mean
from ..frontend.train_config import _number

log = logging.getLogger(__name__)

_SOURCES: dict[str, type["DataSource"]] = {}
_BUILTIN = ("two_rooms", "wall_rooms", "shapes", "video", "fork_source")  # modules that register on import


class SourceParams(BaseModel):
    """Base for a source's parameters (``train.data.with``). Strict: unknown keys are errors, and a
    number is a number: ``episodes: true`` is not 1 and ``noise: "0.1"`` is text (``1e-3`` is fine)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # `noise: .inf` is no setting

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, v: Any, info: ValidationInfo) -> Any:
        ann = cls.model_fields[info.field_name].annotation
        if (_takes(ann, int) or _takes(ann, float)) and not (_takes(ann, bool) or _takes(ann, str)):
            for x in v if isinstance(v, (list, tuple)) else [v]:
                _number(x)  # raises on `true` and on text that is no number
        return v


def _takes(ann: Any, t: type) -> bool:
    """Whether annotation ``ann`` (``int | None``, ``tuple[float, float]``, ``Annotated[...]``) accepts ``t`` values."""
    return ann is t or ann is Any or any(_takes(a, t) for a in get_args(ann))


def _ordered(lo_hi: tuple[float, float]) -> tuple[float, float]:
    if lo_hi[0] > lo_hi[1]:
        raise ValueError(f"[{lo_hi[0]:g}, {lo_hi[1]:g}] is a [lo, hi] range: lo must not exceed hi")
    return lo_hi


def _fractions(lo_hi: tuple[float, float]) -> tuple[float, float]:
    if not all(0 < x <= 1 for x in lo_hi):
        raise ValueError(f"[{lo_hi[0]:g}, {lo_hi[1]:g}] are fractions of the frame: each in (0, 1]")
    return _ordered(lo_hi)


def _positive(lo_hi: tuple[float, float]) -> tuple[float, float]:
    if not all(x > 0 for x in lo_hi):
        raise ValueError(f"[{lo_hi[0]:g}, {lo_hi[1]:g}] are ratios: each above 0")
    return _ordered(lo_hi)


FractionRange = Annotated[tuple[float, float], AfterValidator(_fractions)]
"""A ``[lo, hi]`` range of fractions (of an image's area or side): 0 < lo <= hi <= 1."""
PositiveRange = Annotated[tuple[float, float], AfterValidator(_positive)]
"""A ``[lo, hi]`` range of positive ratios (aspect ratios): 0 < lo <= hi."""


class DataSource(ABC):
    """A procedural source. Subclasses set ``Params`` and implement :meth:`sample`.

    ``inputs``: the spec's input name -> per-sample shape and dtype, so a source can size
    itself (image size, mask counts) from the spec it feeds.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[SourceParams]] = SourceParams

    def __init__(self, params: SourceParams, inputs: dict[str, Any], seed: int = 0):
        self.p, self.inputs, self.seed = params, inputs, seed

    @abstractmethod
    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` samples drawn with ``gen``: a dict of (n, ...) CPU tensors."""

    def check_batch_size(self, per_rank: int) -> str | None:
        """Why this source cannot serve batches of ``per_rank`` samples per process (the trainer
        reports it at ``train.batch_size`` before training), or None."""
        return None

    def batch(self, step: int, size: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
        """This rank's shard of the global batch of ``step`` (deterministic in seed and step)."""
        gen = torch.Generator().manual_seed(step_seed(self.seed, step))
        full = self.sample(size, gen)
        if world == 1:
            return full
        per = size // world
        return {k: v[rank * per:(rank + 1) * per] for k, v in full.items()}


def step_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit seed for (seed, step) (splitmix64), so nearby steps are unrelated."""
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


def register_source(name: str):
    """Class decorator: register a :class:`DataSource` under ``name`` (unique)."""
    def deco(cls: type[DataSource]) -> type[DataSource]:
        if name in _SOURCES and _SOURCES[name] is not cls:
            raise ValueError(f"data source `{name}` is already registered ({_SOURCES[name].__qualname__})")
        cls.name = name
        _SOURCES[name] = cls
        return cls
    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{mod}":
                raise


def list_sources() -> list[str]:
    _load_builtins()
    return sorted(_SOURCES)


def get_source(name: str, loc: Location | None = None) -> type[DataSource]:
    _load_builtins()
    if name not in _SOURCES:
        raise SpecError(f"unknown data source `{name}`", loc, did_you_mean(name, _SOURCES, "data sources"))
    return _SOURCES[name]


def make_source(name: str, params: dict[str, Any], inputs: dict[str, Any], seed: int = 0,
                where: Any = None) -> DataSource:
    """Build source ``name`` with ``params`` (validated; errors located via ``where(path)``)."""
    at = where or (lambda *path: None)
    cls = get_source(name, at("source"))
    try:
        p = cls.Params.model_validate(params)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        allowed = list(cls.Params.model_fields)
        field = cls.Params.model_fields.get(str(err["loc"][0]))
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(str(err["loc"][-1]), allowed, "parameters")
        elif field is not None and field.default is not None and not field.is_required():
            default = list(field.default) if isinstance(field.default, tuple) else \
                str(field.default).lower() if isinstance(field.default, bool) else field.default
            hint = f"`{err['loc'][0]}` is {default} unless set (parameters of `{name}`: {', '.join(allowed)})"
        else:
            hint = "parameters of `" + name + "`: " + ", ".join(allowed)
        msg = err["msg"].removeprefix("Value error, ")
        raise SpecError(f"data source `{name}`: `{key}`: {msg}", at("with", *err["loc"]), hint) from None
    try:
        return cls(p, inputs, seed)
    except ValueError as e:  # the parameters do not fit the spec (image size vs patch, mask counts)
        raise SpecError(f"data source `{name}`: {e}", at("with"), "adjust train.data.with or the spec's inputs") from None
    except (MemoryError, RuntimeError) as e:  # `episodes: 1000000000`: a collect-once source cannot allocate
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not isinstance(e, MemoryError) and "alloc" not in why.lower() and "memory" not in why.lower():
            raise
        raise SpecError(f"data source `{name}` could not be built: {why}", at("with"),
                        "its sizes (episodes, lengths, image sizes) ask for more memory than this machine has; "
                        "reduce them") from None


def spec_inputs(model) -> dict[str, Any]:
    """Top-level inputs and actions of a compiled model: name -> TType (what data must supply)."""
    return {n.name: n.ttype for n in model.graph.nodes.values() if n.op in ("input", "action") and not n.scope}


def resolve_source(model, data: Any, cfg, names: list[str] | None = None):
    """Turn the ``data`` argument of ``jg.train`` (or the spec's ``train.data``) into a source.

    None: ``train.data`` (or random example inputs when the spec names no source); a string:
    a registered source; a dict of tensors; a map-style Dataset; or an object with ``batch``.
    """
    from .datasets import DatasetSource, ExampleSource, TensorSource
    seed = cfg.seed
    if data is None and cfg.data is not None:
        src = model.spec.source
        where = (lambda *p: src.at(("train", "data") + p)) if src is not None else None
        return make_source(cfg.data.source, dict(cfg.data.params), spec_inputs(model), seed, where)
    if data is None:
        log.warning("`%s` names no data source (train.data), so it trains on random example inputs: a smoke "
                    "run that learns nothing. Set train.data to a source (%s) or pass data to jg.train",
                    model.spec.name, ", ".join(list_sources()))
        return ExampleSource(model, "loss", seed)
    if isinstance(data, str):
        params = dict(cfg.data.params) if cfg.data is not None and cfg.data.source == data else {}
        return make_source(data, params, spec_inputs(model), seed)
    if hasattr(data, "batch"):
        return data
    if isinstance(data, dict):
        return TensorSource(data, seed)
    return DatasetSource(data, names, seed)
