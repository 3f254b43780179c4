"""``train.data`` checked before anything is sampled, without torch: the source's name, its
``with:`` keys and values (its ``Params``, and how they fit the spec's inputs), and ``rename``
(from names the source yields, to the spec's inputs). ``jepa-graph validate`` runs it after the
compiler's checks; training and ``jepa-graph energy`` meet the same problems, with the same
messages, when they build the source (:func:`jepa_graph.data.make_source`).

Example::

    graph = jg.check("specs/two_rooms.yaml")
    check_data(graph)          # raises SpecError listing every problem in train.data, or returns
"""
from __future__ import annotations

from typing import Any

from ..core.errors import Diagnostic, Location, SpecError, closest, did_you_mean
from . import graph_inputs, source_info, source_names
from .params import params_problems

FIT_HINT = "adjust train.data.with or the spec's inputs"  # as make_source says it


def check_data(graph) -> None:
    """Raise :class:`SpecError` listing every problem in the ``train.data`` of ``graph``'s spec
    (a graph from ``jg.check``, whose inputs the data must feed); no ``train.data``: nothing to check."""
    problems = data_problems(graph)
    if problems:
        raise SpecError(problems)


def data_problems(graph) -> list[Diagnostic]:
    """The located problems in ``graph.spec.train.data`` (see :func:`check_data`)."""
    spec = graph.spec
    cfg = spec.train.data if spec.train is not None else None
    if cfg is None:
        return []
    raw = spec.source

    def at(*path: Any, key: bool = False) -> Location | None:
        return raw.at(("train", "data") + path, key=key) if raw is not None else None

    inputs = graph_inputs(graph)
    name, out = cfg.source, []
    info = source_info(name)
    yields = None
    if info is None:
        out.append(Diagnostic(f"unknown data source `{name}`", at("source"),
                              did_you_mean(name, source_names(), "data sources")))
    else:
        params, bad = params_problems(name, info.Params, dict(cfg.params), at)
        out += bad
        if params is not None and info.fits is not None:
            try:
                why = info.fits(params, inputs)
            except ValueError as e:  # as the source's constructor would raise it
                why = str(e)
            if why:
                out.append(Diagnostic(f"data source `{name}`: {why}", at("with"), FIT_HINT))
            elif info.yields is not None:
                yields = info.yields(params, inputs)
    fed = [n.name for n in graph.nodes.values()  # a batch may also hold latents (then not inferred)
           if n.op in ("input", "action", "latent") and not n.scope]
    for key, target in cfg.rename.items():
        if yields is not None and key not in yields:
            out.append(Diagnostic(f"train.data.rename: data source `{name}` yields no `{key}`",
                                  at("rename", key, key=True), _not_yielded(info, key, yields)))
        if target not in fed:
            out.append(Diagnostic(f"train.data.rename: `{key}` is renamed to `{target}`, which is no input of "
                                  f"`{spec.name}`", at("rename", key), _not_taken(target, fed)))
    return out


def _not_yielded(info, key: str, yields: dict) -> str:
    if key in info.keys:  # a key it yields with other settings or inputs
        return f"`{key}`: {info.keys[key].about}"
    hits = closest(key, yields)
    if hits:
        return "did you mean " + " or ".join(f"`{h}`" for h in hits) + "?"
    return f"`{info.name}` yields " + ", ".join(f"`{k}`" for k in yields)


def _not_taken(target: str, fed: list[str]) -> str:
    what = "rename maps names the data source yields to the spec's inputs"
    hits = closest(target, fed)
    if hits:
        return "did you mean " + " or ".join(f"`{h}`" for h in hits) + f"? ({what})"
    return f"{what}: " + (", ".join(f"`{k}`" for k in fed) if fed else "this spec takes none")
