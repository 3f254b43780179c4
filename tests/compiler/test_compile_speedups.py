"""The speed-ups behind benchmarks/compile_time.py and overhead.py keep behaviour unchanged.

* the garbage collector is paused while specs load and compile, and always switched back on; what a
  large pause built goes to the oldest generation, and garbage among it is still collected;
* ``Graph.topo`` (Kahn's sort, cached) gives networkx's lexicographical order and fails on cycles;
* the ``loss`` program asks energies for their batch mean in one op (``F.mse_loss``), which equals
  the mean of the per-sample energies that ``forward`` returns.
"""
from __future__ import annotations

import gc
import weakref

import networkx as nx
import pytest
import torch

import jepa_graph as jg
from jepa_graph.compiler.graph import Ref
from jepa_graph.core import gc_pause
from jepa_graph.core.gc_pause import paused_gc
from jepa_graph.primitives.layers.energies import Distance
from conftest import SPECS, spec_files


@pytest.fixture
def gc_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_gc_nests_and_restores(gc_on):
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause is still on
    assert gc.isenabled()
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()  # it was off before: it stays off
    gc.enable()


class _Cell:
    """A weak-referenceable object for reference cycles."""


@pytest.fixture
def small_pauses(monkeypatch):
    """Promotion and our full collections at test scale (thousands of objects, not millions)."""
    if gc.get_freeze_count():
        pytest.skip("objects are frozen in this process: paused_gc leaves the generations alone")
    monkeypatch.setattr(gc_pause, "PROMOTE_MIN", 1_000)
    monkeypatch.setattr(gc_pause, "_FULL_FLOOR", 0)
    monkeypatch.setattr(gc_pause._Promoted, "count", 0)
    monkeypatch.setattr(gc_pause._Promoted, "full", gc_pause._full_collections())
    monkeypatch.setattr(gc_pause._Promoted, "heap", 2_000)  # as if the heap were this small


def test_a_large_pause_promotes_what_it_built(gc_on, small_pauses):
    with paused_gc():
        built = [[] for _ in range(3_000)]  # lists are tracked by the collector
    young = {id(o) for g in (0, 1) for o in gc.get_objects(generation=g)}
    assert not any(id(x) in young for x in built)  # no young-generation pass will walk them
    assert gc_pause._Promoted.count >= 3_000
    assert gc.get_freeze_count() == 0  # nothing left frozen


def test_garbage_from_a_pause_is_collected_by_a_later_one(gc_on, small_pauses):
    with paused_gc():
        cell = _Cell()
        cell.me = cell  # a cycle: only the collector frees it
        dead = weakref.ref(cell)
        del cell
        filler = [[] for _ in range(3_000)]  # more promoted objects than the (pretend) heap
    del filler
    with paused_gc():  # a full collection is due before this pause starts
        assert dead() is None
    assert gc_pause._Promoted.count < 3_000  # the count starts again after the collection


def test_objects_the_caller_froze_stay_frozen(gc_on, small_pauses):
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with paused_gc():
            built = [[] for _ in range(3_000)]
        assert gc.get_freeze_count() == frozen  # not unfrozen by the pause
        assert len(built) == 3_000
    finally:
        gc.unfreeze()


def test_gc_is_back_on_after_a_failed_compile(gc_on):
    with pytest.raises(jg.SpecError):
        jg.compile(jg.loads("name: bad\nblocks:\n  e: {kind: encoder, type: nope, in: [x]}\n"))
    assert gc.isenabled()
    with pytest.raises(jg.SpecError):
        jg.loads("name: [unclosed\n")
    assert gc.isenabled()
    jg.compile(SPECS / "seed_world_model.yaml").program("forward")
    assert gc.isenabled()


@pytest.mark.parametrize("path", spec_files(), ids=lambda p: p.name)
def test_topo_is_networkx_lexicographical_order(path):
    g = jg.check(path)
    pos = {n: i for i, n in enumerate(g.nodes)}
    want = list(nx.lexicographical_topological_sort(g.nx, key=pos.__getitem__))
    assert [n.name for n in g.topo()] == want
    assert [n.name for n in g.topo()] == want  # cached: the same again


def test_topo_rejects_a_cycle():
    g = jg.check(SPECS / "seed_world_model.yaml")
    g.nodes["encoder"].inputs.append(Ref("predictor"))  # wire a loop in after the checks
    g._nx = None  # a changed graph gets a new networkx view, and a new order
    with pytest.raises(nx.NetworkXUnfeasible):
        g.topo()


@pytest.mark.parametrize("fn", ["l2", "l1", "smooth_l1", "cosine"])
def test_fused_batch_mean_equals_mean_of_per_sample_energies(fn):
    a, b = torch.randn(6, 3, 5), torch.randn(6, 3, 5)
    d = Distance(fn, beta=0.5)
    per_sample = d(a, b)
    assert per_sample.shape == (6,)
    torch.testing.assert_close(d(a, b, reduction="mean"), per_sample.mean())


def test_loss_program_uses_the_fused_mean_and_matches_forward():
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    # the batch mean in one torch call, as hand-written code would make it: no module call around it
    assert "E = torch.nn.functional.mse_loss(predictor, detach)" in model.code("loss")
    assert "reduction" not in model.code("forward")  # forward returns per-sample energies
    inputs = model.example_inputs(7)
    out = model(**inputs)
    torch.testing.assert_close(model.loss(**inputs), out["loss"])
    torch.testing.assert_close(out["loss"], out["E"].mean())
