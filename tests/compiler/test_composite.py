"""Composite blocks: spec files used by name inside other specs, inlined into one graph."""
from __future__ import annotations

import textwrap

import pytest
import torch

import jepa_graph as jg

LEVEL = """\
name: mlp_level
dims: {obs: 4, state: 8}
inputs:
  x: {shape: [obs]}
  y: {shape: [obs]}
blocks:
  enc:  {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state}}
  tgt:  {kind: encoder, share: enc, in: [y]}
  pred: {kind: predictor, type: mlp, in: [enc], with: {hidden: [16], out: state}}
  E:    {kind: energy, type: l2, in: [pred, {ref: tgt, stop_grad: true}]}
outputs: {state: enc, E: E, pred: pred}
"""

TOP = """\
name: two_levels
dims: {obs: 6}
inputs:
  x: {shape: [obs]}
  y: {shape: [obs]}
blocks:
  low:  {kind: composite, type: mlp_level, in: [x, y], with: {obs: obs, state: 12}}
  up:   {kind: encoder, type: mlp, in: [low.state], with: {out: 6}}
  up_y: {kind: encoder, type: mlp, in: [low.pred], with: {out: 6}}
  high: {kind: composite, type: mlp_level, in: [up, up_y], with: {obs: 6, state: 4}}
objective: {low.E: 1.0, high.E: 0.5}
"""


@pytest.fixture
def lib(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mlp_level.yaml").write_text(LEVEL)
    top = tmp_path / "top.yaml"
    top.write_text(TOP)
    return tmp_path


def test_composite_inlined_with_dims_and_outputs(lib):
    model = jg.compile(lib / "top.yaml", search_path=[str(lib / "lib")])
    g = model.graph
    assert g.nodes["low/enc"].ttype.shape == (12,)
    assert g.nodes["high/enc"].ttype.shape == (4,)
    assert set(g.composites) == {"low", "high"}
    # shared weights inside a composite stay one module per instance
    assert g.nodes["low/tgt"].module == g.nodes["low/enc"].module != g.nodes["high/enc"].module
    x, y = torch.randn(5, 6), torch.randn(5, 6)
    out = model(x=x, y=y)
    expect = out["low/E"] + 0.5 * out["high/E"]
    torch.testing.assert_close(out["energy"], expect)
    torch.testing.assert_close(out["loss"], out["low/E"].mean() + 0.5 * out["high/E"].mean())


def test_composite_found_in_spec_folder_blocks(lib):
    (lib / "blocks").mkdir()
    (lib / "blocks" / "mlp_level.yaml").write_text(LEVEL)
    model = jg.compile(lib / "top.yaml")
    assert "high/pred" in model.graph.nodes


def test_composite_search_path_env(lib, monkeypatch):
    monkeypatch.setenv("JEPA_GRAPH_PATH", str(lib / "lib"))
    assert jg.check(lib / "top.yaml").nodes["low/E"].kind == "energy"


def test_error_inside_composite_points_at_its_file(lib):
    bad = LEVEL.replace("in: [pred, {ref: tgt", "in: [prd, {ref: tgt")
    (lib / "lib" / "mlp_level.yaml").write_text(bad)
    with pytest.raises(jg.SpecError) as e:
        jg.compile(lib / "top.yaml", search_path=[str(lib / "lib")])
    d = e.value.first
    assert d.loc.file.endswith("mlp_level.yaml") and d.loc.line == 10
    assert "did you mean `pred`" in d.hint


def test_composite_shape_mismatch_on_port(lib):
    (lib / "top.yaml").write_text(TOP.replace("with: {obs: obs, state: 12}", "with: {obs: 5, state: 12}"))
    with pytest.raises(jg.SpecError, match=r"composite input `low/x` expects \[B, 5\], `x` gives \[B, 6\]"):
        jg.compile(lib / "top.yaml", search_path=[str(lib / "lib")])


def test_composite_unknown_output(lib):
    (lib / "top.yaml").write_text(TOP.replace("in: [low.state]", "in: [low.stat]"))
    with pytest.raises(jg.SpecError, match=r"composite `low` has no output `stat`") as e:
        jg.compile(lib / "top.yaml", search_path=[str(lib / "lib")])
    assert "did you mean `state`" in e.value.first.hint


def test_composite_that_uses_itself(tmp_path):
    (tmp_path / "loop.yaml").write_text(textwrap.dedent("""\
        name: loop
        inputs: {x: {shape: [3]}}
        blocks:
          inner: {kind: composite, type: loop, in: [x]}
        outputs: {out: inner}
        """))
    (tmp_path / "top.yaml").write_text(textwrap.dedent("""\
        name: top
        inputs: {x: {shape: [3]}}
        blocks:
          l: {kind: composite, type: loop, in: [x]}
        """))
    with pytest.raises(jg.SpecError, match="uses itself"):
        jg.check(tmp_path / "top.yaml", [str(tmp_path)])


LEVELS = """\
name: h_jepa
dims: {obs: 4, s1: 8, s2: 4, act: 2, plan: 3}
inputs:
  x: {shape: [obs]}
actions:
  a:  {shape: [act], bounds: [-1, 1]}
  a2: {shape: [plan]}
blocks:
  enc1:  {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: s1}}
  pred1: {kind: predictor, type: ac_mlp, in: [enc1, a], with: {branch: 16, hidden: [16], out: s1}}
  enc2:  {kind: encoder, type: mlp, in: [enc1], with: {out: s2}}
  pred2: {kind: predictor, type: mlp, in: [enc2, a2], with: {hidden: [16], out: s2}}
levels:
  - {name: low, encoder: enc1, predictor: pred1, action: a, stride: 1}
  - {name: high, encoder: enc2, predictor: pred2, action: a2, stride: 4}
"""


def test_levels_get_their_own_programs():
    model = jg.compile(jg.loads(LEVELS))
    names = model.program_names()
    assert {"encode_low", "step_low", "encode_high", "step_high"} <= set(names)
    s1 = model.run("encode_low", {"x": torch.randn(2, 4)})["state"]
    nxt = model.run("step_low", {"state": s1, "a": torch.zeros(2, 2)})["state"]
    assert nxt.shape == (2, 8)
    s2 = model.run("encode_high", {"x": torch.randn(2, 4)})["state"]
    assert s2.shape == (2, 4)
    # the high level's step starts from its own state and takes abstract actions
    assert set(model.input_names("step_high")) == {"a2", "state"}
    assert model.graph.levels[1].stride == 4
