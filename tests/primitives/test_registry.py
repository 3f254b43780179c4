"""Block registry promises: a duplicate registration is an error, lookups suggest close names,
and packages register blocks through the `jepa_graph.blocks` entry-point group."""
from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn as nn

import jepa_graph as jg
from jepa_graph.core import registry


class _Doubler(jg.BlockType):
    """Doubles its input (a test block)."""

    def infer(self, p, ins):
        return ins[0]

    def build(self, p, ins):
        return _Double()


class _Double(nn.Module):
    def forward(self, x):
        return 2 * x


@pytest.fixture
def scratch():
    """Names registered inside a test are removed after it (the registry is process-wide)."""
    jg.list_blocks()  # the built-ins are loaded before the snapshot
    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


def test_duplicate_registration_is_an_error_naming_the_first(scratch):
    jg.register_block("doubler", kind="op")(_Doubler)
    with pytest.raises(ValueError, match=r"block type `op\.doubler` is already registered \(by .*_Doubler\)"):
        jg.register_block("doubler", kind="op")(type("Other", (_Doubler,), {}))
    assert registry._REGISTRY[("op", "doubler")] is _Doubler
    # a built-in name cannot be taken over either
    with pytest.raises(ValueError, match=r"`encoder\.mlp` is already registered"):
        jg.register_block("mlp", kind="encoder")(type("Mine", (_Doubler,), {}))


def test_lookup_suggests_close_names_and_the_right_kind():
    with pytest.raises(jg.SpecError, match=r"unknown encoder type `mpl`") as e:
        jg.get_block("encoder", "mpl")
    assert "did you mean `mlp`" in e.value.first.hint
    with pytest.raises(jg.SpecError) as e:
        jg.get_block("energy", "vit")
    assert "`vit` is registered as `encoder.vit`; change `kind:`" == e.value.first.hint


def test_a_registered_block_is_usable_by_name_in_a_spec(scratch):
    jg.register_block("doubler", kind="op")(_Doubler)
    model = jg.compile(jg.loads("name: d\ninputs: {x: {shape: [3]}}\nblocks:\n  d: {kind: op, type: doubler, in: [x]}\n"))
    x = torch.ones(2, 3)
    assert torch.equal(model(x=x)["d"], 2 * x)


def test_entry_point_plugins_are_loaded(scratch, monkeypatch):
    plugin = types.ModuleType("jg_test_plugin")
    plugin.loaded = False

    class EP:
        value = "jg_test_plugin"

        def load(self):
            jg.register_block("plugged", kind="op")(type("Plugged", (_Doubler,), {"__doc__": "From a plugin."}))
            plugin.loaded = True
            return plugin

    seen = []

    def fake_entry_points(group):
        seen.append(group)
        return [EP()]

    monkeypatch.setitem(sys.modules, "jg_test_plugin", plugin)
    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_loaded", False)
    names = [f"{c.kind}.{c.name}" for c in jg.list_blocks()]
    assert seen == ["jepa_graph.blocks"] and plugin.loaded and "op.plugged" in names
