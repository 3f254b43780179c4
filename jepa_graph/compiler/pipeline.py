"""Spec -> checked graph: the compile-time half of the compiler, which imports no torch.

``check`` runs every check (references, wiring, cycles, shapes) and returns the typed
:class:`~jepa_graph.compiler.graph.Graph`; :func:`jepa_graph.compile` lowers that graph to torch.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..core.gc_pause import paused_gc
from ..frontend.load import load
from ..frontend.spec import Spec
from .graph import Graph, build_graph
from .shapes import infer_shapes

log = logging.getLogger(__name__)


@paused_gc()  # check time stays linear in the spec size: see gc_pause
def check(spec: Spec | str | Path, search_path: list[str] | None = None) -> Graph:
    """Every compile-time check (references, wiring, cycles, shapes) without building weights."""
    if not isinstance(spec, Spec):
        spec = load(spec)
    graph = build_graph(spec, search_path)
    infer_shapes(graph)
    for w in graph.warnings:
        log.warning("%s", w.format())
    return graph
