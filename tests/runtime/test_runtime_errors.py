"""Run-time failures name the culprit: a block that raises while a program runs is re-raised as
``jg.BlockRuntimeError`` with the block's name, its ``kind.type``, the program, and the
``file:line:col`` where the block is written; bad inputs are named before any block runs.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import jepa_graph as jg
from jepa_graph.core import registry
from jepa_graph.core.tensors import TType
from conftest import SPECS

SPEC = """\
name: boom
inputs:
  x: {shape: [4]}
  y: {shape: [4]}
blocks:
  enc: {kind: encoder, type: mlp, in: [x], with: {out: 4}}
  guard: {kind: op, type: test_guard, in: [enc], with: {limit: 100.0}}
  tgt: {kind: encoder, share: enc, in: [y]}
  E: {kind: energy, type: l2, in: [guard, tgt]}
objective: {E: 1.0}
"""

LEVEL = """\
name: guarded
inputs:
  s: {shape: [4]}
blocks:
  check: {kind: op, type: test_guard, in: [s], with: {limit: 100.0}}
outputs: {out: check}
"""


class Guard(nn.Module):
    """Passes its input through; raises on values past ``limit`` (a data-dependent failure)."""

    def __init__(self, limit: float):
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().max() > self.limit:
            raise ValueError(f"activation above {self.limit}")
        return x


@pytest.fixture(autouse=True)
def guard_block():
    """Register op.test_guard for this module's tests only (the registry smoke test never sees it)."""

    class GuardParams(jg.Params):
        limit: float

    class GuardBlock(jg.BlockType):
        """Identity that raises on large values (test only)."""
        Params = GuardParams

        def infer(self, p, ins: list[TType]) -> TType:
            return ins[0]

        def build(self, p, ins):
            return Guard(p.limit)

    jg.register_block("test_guard", kind="op")(GuardBlock)
    yield
    del registry._REGISTRY[("op", "test_guard")]


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "boom.yaml"
    path.write_text(SPEC)
    return jg.compile(path, seed=0)


def _inputs(b: int = 3) -> dict[str, torch.Tensor]:
    return {"x": torch.randn(b, 4), "y": torch.randn(b, 4)}


def test_normal_inputs_run(model):
    out = model(**_inputs())
    assert out["energy"].shape == (3,)


@pytest.mark.parametrize("program", ["forward", "energy", "loss"])
def test_a_raising_block_is_named_with_type_program_and_location(model, program):
    inputs = _inputs()
    inputs["x"] = inputs["x"] * 1e6  # the encoder's output passes the guard's limit
    with pytest.raises(jg.BlockRuntimeError) as info:
        model.run(program, inputs)
    path = model.spec.path
    assert str(info.value) == (f"{path}:7:3: block `guard` (op.test_guard) failed in program `{program}`: "
                               "ValueError: activation above 100.0")
    assert isinstance(info.value.__cause__, ValueError)  # the original error is kept, not swallowed
    assert isinstance(info.value, RuntimeError)


def test_a_failure_inside_a_composite_points_at_the_composite_file(tmp_path):
    (tmp_path / "guarded.yaml").write_text(LEVEL)
    top = SPEC.replace("  guard: {kind: op, type: test_guard, in: [enc], with: {limit: 100.0}}",
                       "  guard: {kind: composite, type: guarded, in: [enc]}")
    (tmp_path / "top.yaml").write_text(top)
    model = jg.compile(tmp_path / "top.yaml")
    inputs = _inputs()
    inputs["x"] = inputs["x"] * 1e6
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(**inputs)
    assert str(info.value).startswith(f"{tmp_path / 'guarded.yaml'}:5:3: block `guard/check` (op.test_guard) failed")


def _located(info, message: str, hint: str | None = None, at: str | None = None) -> None:
    """A bad input is an InputError: a located SpecError (and a BlockRuntimeError) whose first
    diagnostic says ``message`` at ``at`` (file:line:col) with a hint (containing ``hint``)."""
    assert isinstance(info.value, jg.SpecError) and isinstance(info.value, jg.BlockRuntimeError)
    d = info.value.first
    assert d.message == message and d.hint and (hint is None or hint in d.hint), d.format()
    assert at is None or str(d.loc) == at, d.format()


def test_wrong_input_shape_names_the_input_and_its_declaration(model):
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(x=torch.randn(3, 5), y=torch.randn(3, 4))
    _located(info, "input `x` should be [B, 4], got [3, 5]", "the batch dim comes first", f"{model.spec.path}:3:3")
    assert str(info.value).startswith(f"{model.spec.path}:3:3: error: input `x` should be [B, 4], got [3, 5]\n")


def test_missing_batch_dim_gets_a_hint():
    seed = jg.compile(SPECS / "seed_world_model.yaml")  # the predictor concatenates [state, action] per sample
    inputs = seed.example_inputs(1)
    inputs["x"] = inputs["x"][0]
    with pytest.raises(jg.BlockRuntimeError) as info:
        seed(**inputs)
    _located(info, "input `x` should be [B, 16], got [16]", "a batch of one is `x[None]`", f"{seed.spec.path}:7:3")


def test_different_batch_sizes_are_named(model):
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(x=torch.randn(3, 4), y=torch.randn(5, 4))
    _located(info, "the inputs disagree on the batch size: `x` has 3, `y` has 5", "B rows", f"{model.spec.path}:4:3")


def test_missing_and_unexpected_inputs(model):
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(x=torch.randn(3, 4), z=torch.randn(3, 4))
    _located(info, "input `y` is missing", "add `y` [B, 4] to the batch; program `forward` of `boom` takes no `z`",
             f"{model.spec.path}:4:3")
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(x=torch.randn(3, 4), y=torch.randn(3, 4), z=torch.randn(3, 4))
    _located(info, "unexpected input `z`", "program `forward` of `boom` takes (x, y)")


def test_wrong_dtype_names_the_input_before_any_block_runs(model):
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(x=torch.ones(3, 4, dtype=torch.long), y=torch.randn(3, 4))
    _located(info, "input `x` holds float values ([B, 4]), got a torch.int64 tensor", "`x.float()`", f"{model.spec.path}:3:3")
    with pytest.raises(jg.BlockRuntimeError) as info:
        model.energy(x=torch.ones(3, 4, dtype=torch.float64), y=torch.randn(3, 4))
    _located(info, "input `x` is torch.float64 but the weights of `boom` are torch.float32", "`x.to(torch.float32)`")


def test_a_wrong_weight_names_the_block_that_fails(model):
    """A fault no input check sees (a weight of the wrong size) names the block that raises."""
    model.blocks.enc[0].weight = nn.Parameter(torch.randn(4, 5))
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(**_inputs())
    msg = str(info.value)
    assert msg.startswith(f"{model.spec.path}:6:3: block `enc` (encoder.mlp) failed in program `forward`: RuntimeError:")
    assert isinstance(info.value.__cause__, RuntimeError) and not isinstance(info.value, jg.SpecError)


def test_non_tensor_input(model):
    with pytest.raises(jg.BlockRuntimeError) as info:
        model(x=[[0.0] * 4], y=torch.randn(1, 4))
    _located(info, "input `x` should be a torch tensor [B, 4], got list", "torch.as_tensor(x, dtype=torch.float32)")


def test_the_model_still_works_after_a_failure(model):
    bad = _inputs()
    bad["x"] = bad["x"] * 1e6
    with pytest.raises(jg.BlockRuntimeError):
        model(**bad)
    good = _inputs()
    torch.testing.assert_close(model.energy(**good), model(**good)["energy"])


def test_inputs_that_would_broadcast_are_refused_before_running():
    """[1, 16] next to [4, 16] would broadcast into a wrong energy; it is named instead."""
    model = jg.compile(SPECS / "seed_world_model.yaml")
    with pytest.raises(jg.BlockRuntimeError, match=r"disagree on the batch size: `x` has 4, `x_next` has 1, `a` has 4"):
        model(x=torch.randn(4, 16), x_next=torch.randn(1, 16), a=torch.randn(4, 4))
    with pytest.raises(jg.BlockRuntimeError, match=r"input `x_next` should be \[B, 16\], got \[4, 1, 16\]"):
        model.energy(x=torch.randn(4, 16), x_next=torch.randn(4, 1, 16), a=torch.randn(4, 4))
