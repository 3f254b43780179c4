"""Pause Python's cyclic garbage collector while a spec loads and compiles.

Compiling builds many long-lived objects (positions, pydantic models, graph nodes, torch modules)
and almost no garbage cycles. With the collector on, each full collection walks the whole heap
(torch's and pydantic's objects included), so a 10,000-block spec spent most of its compile time
in the collector, and the cost per block grew with the spec (see ``benchmarks/compile_time.py``).
Paused, compile time grows linearly. Reference counting still frees what it can meanwhile.

When the outermost pause ends after a large build (at least :data:`PROMOTE_MIN` new objects),
what it built goes straight to the oldest generation (``gc.freeze(); gc.unfreeze()``, which moves
lists, not objects): the young-generation passes would each walk every new object only to find
it alive (a compiled model lives as long as its user holds it), about a third of a 10,000-block
compile. Those objects are still collected when garbage: by the next full collection, whether
Python starts it or :func:`paused_gc` does, at the start of a later pause, once the objects
promoted since the last full collection outnumber the heap at that collection (so a loop that
compiles and drops models keeps a bounded heap, and each object is walked O(1) times on average).
Objects the caller froze with ``gc.freeze()`` are left alone (no promotion then), and nothing
changes when the collector was already off, or on a free-threaded build (where freezing visits
every object).

Usable as a context manager or a decorator; nested pauses switch the collector back on only when
the outermost one ends, and only if it was on before::

    with paused_gc():
        model = CompiledModel(graph)
"""
from __future__ import annotations

import contextlib
import gc
import sysconfig
from typing import Iterator

PROMOTE_MIN = 20_000  # fewer new objects (a small spec): the collector's own schedule, unchanged
_SPLICES = not sysconfig.get_config_var("Py_GIL_DISABLED")  # free-threaded builds freeze object by object
_FULL_FLOOR = 200_000  # no full collection of ours for fewer promoted objects than this


class _Promoted:
    """Objects promoted since the last full collection, and the heap that collection left."""

    count = 0
    full = -1  # gc.get_stats()[-1]["collections"] when ``count`` was last reset
    heap: int | None = None  # objects tracked after the last full collection we ran (None: not measured)


def _full_collections() -> int:
    return gc.get_stats()[-1]["collections"]


def _collect_if_due() -> None:
    """A full collection when promoted objects outnumber the heap (as Python's own rule counts
    survivors of the young generations towards one, with a quarter of the heap)."""
    p = _Promoted
    full = _full_collections()
    if full != p.full:  # a full collection ran since we counted: what we promoted was walked
        p.full, p.count = full, 0
        return
    if p.count < _FULL_FLOOR:
        return
    if p.heap is None:
        p.heap = len(gc.get_objects())
    if p.count > p.heap:
        gc.collect()
        p.full, p.count, p.heap = _full_collections(), 0, len(gc.get_objects())


def _promote() -> None:
    """Move the young generations' objects to the oldest one (O(1): list splices)."""
    young = gc.get_count()[0]  # objects made (and not freed) since the last collection
    if not _SPLICES or young < PROMOTE_MIN or gc.get_freeze_count():  # small, or the caller froze objects
        return
    p = _Promoted
    if _full_collections() != p.full:
        p.full, p.count = _full_collections(), 0
    gc.freeze()
    gc.unfreeze()  # the permanent generation goes back into the oldest one
    p.count += young


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    if was_enabled:
        _collect_if_due()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _promote()
            gc.enable()
