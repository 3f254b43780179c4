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
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import Location, SpecError, did_you_mean

_SOURCES: dict[str, type["DataSource"]] = {}
_BUILTIN = ("two_rooms", "shapes", "video", "fork_source")  # modules that register on import


class SourceParams(BaseModel):
    """Base for a source's parameters (``train.data.with``). Strict: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
        hint = did_you_mean(str(err["loc"][-1]), allowed, "parameters") if err["type"] == "extra_forbidden" else \
            "parameters of `" + name + "`: " + ", ".join(allowed)
        raise SpecError(f"data source `{name}`: `{key}`: {err['msg']}", at("with", *err["loc"]), hint) from None
    try:
        return cls(p, inputs, seed)
    except ValueError as e:  # the parameters do not fit the spec (image size vs patch, mask counts)
        raise SpecError(f"data source `{name}`: {e}", at("with"), "adjust train.data.with or the spec's inputs") from None


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
        return ExampleSource(model, "loss", seed)
    if isinstance(data, str):
        params = dict(cfg.data.params) if cfg.data is not None and cfg.data.source == data else {}
        return make_source(data, params, spec_inputs(model), seed)
    if hasattr(data, "batch"):
        return data
    if isinstance(data, dict):
        return TensorSource(data, seed)
    return DatasetSource(data, names, seed)
