"""Data sources for training, generated locally (nothing is downloaded), selected by name.

A source yields batches as dicts of named tensors whose names are the spec's inputs. Batches
are a pure function of ``(seed, step)``: the trainer asks for the *global* batch of a step and
each rank keeps its shard, so a run resumed from a checkpoint, or split across processes,
sees exactly the data an uninterrupted single-process run would have seen.

The built-in sources (``two_rooms``, ``two_rooms_wall``, ``shapes``, ``video``, ``fork``), their
``with:`` keys and what they yield are declared without torch in :mod:`jepa_graph.data.catalog`
(``jepa-graph info --data [NAME]``), so ``jepa-graph validate`` checks ``train.data``
(:mod:`jepa_graph.data.check`); their sampling code, in the module each names, imports torch.
This package imports torch only when a source is built or sampled.

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
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.errors import Location, SpecError, did_you_mean
from .catalog import CATALOG, SourceInfo
from .params import FractionRange, PositiveRange, SourceParams, params_problems

if TYPE_CHECKING:
    import torch

__all__ = ["DataSource", "SourceParams", "FractionRange", "PositiveRange", "register_source", "list_sources",
           "get_source", "make_source", "resolve_source", "source_info", "source_names", "spec_inputs",
           "graph_inputs", "step_seed"]

log = logging.getLogger(__name__)

_SOURCES: dict[str, type["DataSource"]] = {}
_BUILTIN = tuple(dict.fromkeys(s.module for s in CATALOG.values()))  # modules that register on import


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
        import torch  # reason: sampling needs it; importing jepa_graph.data (validate, info --data) does not
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


def source_names() -> list[str]:
    """The built-in sources and those registered so far, without importing torch (validate)."""
    return sorted(set(CATALOG) | set(_SOURCES))


def source_info(name: str) -> SourceInfo | None:
    """What source ``name`` takes and yields, without importing torch: a built-in's catalog entry,
    or what a registered class (a user's source) tells by its ``Params`` and docstring; None if unknown."""
    if name in CATALOG:
        return CATALOG[name]
    return SourceInfo.of(name, _SOURCES[name]) if name in _SOURCES else None


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
    p, problems = params_problems(name, cls.Params, params, at)
    if problems:
        raise SpecError(problems[0])  # the first: training stops at one problem (validate lists them all)
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
    return graph_inputs(model.graph)


def graph_inputs(graph) -> dict[str, Any]:
    """Top-level inputs and actions of a checked graph (``jg.check``): name -> TType."""
    return {n.name: n.ttype for n in graph.nodes.values() if n.op in ("input", "action") and not n.scope}


def resolve_source(model, data: Any, cfg, names: list[str] | None = None):
    """Turn the ``data`` argument of ``jg.train`` (or the spec's ``train.data``) into a source.

    None: ``train.data`` (or random example inputs when the spec names no source); a string:
    a registered source; a dict of tensors; a map-style Dataset; or an object with ``batch``.
    """
    from .datasets import DatasetSource, ExampleSource, TensorSource  # a cycle otherwise: datasets uses step_seed
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
