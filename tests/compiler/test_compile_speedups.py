"""The speed-ups behind benchmarks/compile_time.py and overhead.py keep behaviour unchanged.

* the garbage collector is paused while specs load and compile, and always switched back on;
* ``Graph.topo`` (Kahn's sort, cached) gives networkx's lexicographical order and fails on cycles;
* the ``loss`` program asks energies for their batch mean in one op (``F.mse_loss``), which equals
  the mean of the per-sample energies that ``forward`` returns.
"""
from __future__ import annotations

import gc

import networkx as nx
import pytest
import torch

import jepa_graph as jg
from jepa_graph.compiler.graph import Ref
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
