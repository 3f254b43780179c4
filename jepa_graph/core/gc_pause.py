"""Pause Python's cyclic garbage collector while a spec loads and compiles.

Compiling builds many long-lived objects (YAML nodes, positions, pydantic models, graph nodes,
torch modules) and almost no garbage cycles. With the collector on, each full collection walks
the whole heap (torch's and pydantic's objects included), so a 10,000-block spec spent most of
its compile time in the collector, and the cost per block grew with the spec (see
``benchmarks/compile_time.py``). Paused, compile time grows linearly. Reference counting still
frees what it can; cycles made meanwhile are collected once the pause ends.

Usable as a context manager or a decorator; nested pauses switch the collector back on only when
the outermost one ends, and only if it was on before::

    with paused_gc():
        model = CompiledModel(graph)
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
