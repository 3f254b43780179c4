"""End-to-end: every spec in specs/ validates, compiles, and runs every program forward."""
from __future__ import annotations

import pytest
import torch

import jepa_graph as jg
from conftest import spec_files


@pytest.mark.parametrize("path", spec_files(), ids=lambda p: p.name)
def test_spec_runs_every_program(path):
    model = jg.compile(path)
    assert not model.graph.warnings, [w.format() for w in model.graph.warnings]
    out = model(**model.example_inputs(3))
    for name, node in model.graph.nodes.items():
        if node.op == "call":
            assert name in out
            assert tuple(out[name].shape[1:]) == node.ttype.shape if node.ttype.batched else out[name].dim() == 0
    for prog in model.program_names():
        res = model.run(prog, model.example_inputs(3, name=prog))
        for v in res.values():
            assert torch.isfinite(v).all()
    if "loss" in out:
        out["loss"].backward()
