"""Compiled plans under ``torch.compile(fullgraph=True)``: one graph, no breaks, eager's numbers.

``fullgraph=True`` makes dynamo raise on any graph break, so a passing compile is the check;
``torch._dynamo.explain`` confirms one graph and zero breaks. Inductor (which needs a C
compiler) runs once, on the seed MLP; the CNN spec and the backward pass use ``aot_eager``,
which traces the same graphs (forward and backward) without generating C++, to stay fast.
"""
from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.nn as nn

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.core import registry


class TinyConvParams(jg.Params):
    channels: list[jg.DimInt] = [8]  # conv widths; each conv is 3x3, stride 1, same padding
    out: jg.DimInt  # representation width


class TinyConv(jg.BlockType):
    """Small conv encoder: (B, C, H, W) -> 3x3 conv/ReLU layers -> global mean pool -> Linear (B, out)."""

    Params = TinyConvParams
    input_names = ("image",)

    def infer(self, p, ins):
        t = ins[0]
        if not t.batched or len(t.shape) != 3 or t.dtype != "float":
            raise jg.ShapeMismatch("expects an image [B, C, H, W] on input 0", 0, "[B, C, H, W]")
        return jg.vec(p.out)

    def build(self, p, ins):
        c, layers = ins[0].shape[0], []
        for w in p.channels:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
            c = w
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, p.out))

    @classmethod
    def example(cls):
        return {"channels": [4], "out": 4}, [jg.TType((3, 8, 8))]


@pytest.fixture(scope="module", autouse=True)
def _tiny_conv():
    """Register encoder.compile_test_conv for this module's tests only (the registry smoke tests never see it)."""
    jg.register_block("compile_test_conv", kind="encoder")(TinyConv)
    yield
    del registry._REGISTRY[("encoder", "compile_test_conv")]


CNN_SPEC = """
name: tiny_cnn_jepa
dims: {C: 3, H: 8, W: 8, state: 16}
inputs:
  view1: {shape: [C, H, W]}
  view2: {shape: [C, H, W]}
blocks:
  enc:  {kind: encoder, type: compile_test_conv, in: [view1], with: {channels: [8, 8], out: state}}
  tgt:  {kind: encoder, ema_of: enc, in: [view2], with: {momentum: [0.99, 1.0]}}
  pred: {kind: predictor, type: mlp, in: [enc], with: {hidden: [32], out: state}}
  E:    {kind: energy, type: smooth_l1, in: [pred, tgt]}
objective: {E: 1.0}
"""


def _cnn_models() -> list:
    return [pytest.param(lambda: jg.compile(jg.loads(CNN_SPEC)), id="inline_cnn"),
            pytest.param(lambda: jg.compile(SPECS / "vicreg.jepa"), id="vicreg.jepa")]


def require(backend: str) -> None:
    """Skip where torch.compile (or inductor's C++ code generation) cannot run here."""
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile (dynamo) is not supported on this platform / Python")
    if backend == "inductor" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "clang++", "c++")):
        pytest.skip("inductor needs a C++ compiler; none found on PATH")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5, msg=k)


def test_seed_forward_is_one_graph_without_breaks():
    require("eager")
    model = jg.compile(SPECS / "seed_world_model.yaml")
    ex = torch._dynamo.explain(model)(**model.example_inputs(8))
    assert (ex.graph_count, ex.graph_break_count) == (1, 0), ex.break_reasons


# torch's own inductor imports torch.utils.mkldnn, which warns about its own use of torch.jit
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_seed_under_inductor_matches_eager():
    require("inductor")
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    inputs = model.example_inputs(16)
    compiled = torch.compile(model, fullgraph=True)  # raises on a graph break
    with torch.no_grad():
        _assert_same(compiled(**inputs), model(**inputs))


def test_seed_backward_under_compile_matches_eager():
    require("aot_eager")
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    inputs = model.example_inputs(16)

    def objective(out):  # reaches every block, so every parameter has a gradient to compare
        return out["loss"] + out["critic"].mean() + out["actor"].pow(2).mean()

    objective(model(**inputs)).backward()
    want = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    objective(compiled(**inputs)).backward()
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[k], msg=k)


def test_program_modules_compile_on_their_own():
    """Planning compiles ``step`` and ``cost`` by themselves; they are plain fx GraphModules."""
    require("aot_eager")
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    for name in ("step", "cost"):
        prog = model.program(name)
        inputs = model.example_inputs(8, name=name)
        _assert_same(torch.compile(prog, backend="aot_eager", fullgraph=True)(**inputs), prog(**inputs))


@pytest.mark.parametrize("make", _cnn_models())
def test_cnn_spec_compiles_without_breaks_and_matches_eager(make):
    require("aot_eager")
    model = make()
    inputs = model.example_inputs(4)
    ex = torch._dynamo.explain(model)(**inputs)
    assert (ex.graph_count, ex.graph_break_count) == (1, 0), ex.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    _assert_same(compiled(**inputs), model(**inputs))
