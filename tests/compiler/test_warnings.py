"""Warnings: things that are legal but probably a mistake (an input nothing reads, an energy
left out of the objective). They are located like errors, carry a hint, never stop a compile,
and ``jepa-graph validate`` prints them but exits 0.
"""
from __future__ import annotations

import logging

import pytest

import jepa_graph as jg
from jepa_graph.cli import main
from conftest import SPECS

SPEC = """\
name: warn
dims: {obs: 4, state: 8}
inputs:
  x: {shape: [obs]}
  y: {shape: [obs]}
  extra: {shape: [obs]}
actions:
  a: {shape: [2]}
latents:
  z: {shape: [2]}
blocks:
  enc: {kind: encoder, type: mlp, in: [x], with: {out: state}}
  tgt: {kind: encoder, ema_of: enc, in: [y]}
  pred: {kind: predictor, type: mlp, in: [enc], with: {out: state}}
  E: {kind: energy, type: l2, in: [pred, tgt]}
  E2: {kind: energy, type: l1, in: [pred, tgt]}
  side: {kind: encoder, type: mlp, in: [y], with: {out: state}}
objective: {E: 1.0}
"""

# (line, col, message, hint) of every warning SPEC gets, in file order
EXPECTED = [
    (6, 3, "input `extra` is not used by any block", "remove it, or wire it into a block"),
    (8, 3, "action `a` is not used by any block", "remove it, or wire it into a block"),
    (10, 3, "latent `z` is not used by any block", "remove it, or wire it into a block"),
    (16, 3, "energy `E2` is not in the objective or the costs", "add `E2: 1.0` to `objective:`"),
    (17, 3, "block `side` does not contribute to the objective, costs or world model", "remove it, or use its output"),
]


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "warn.yaml"
    p.write_text(SPEC)
    return p


def test_unused_things_are_located_warnings_with_hints(path):
    g = jg.check(path)  # no SpecError: warnings never stop a compile
    got = [(w.loc.line, w.loc.col, w.message, w.hint) for w in g.warnings]
    assert got == EXPECTED
    assert all(w.severity == "warning" and w.loc.file == str(path) for w in g.warnings)
    first = g.warnings[0].format().splitlines()
    assert first == [f"{path}:6:3: warning: input `extra` is not used by any block",
                     "    6 |   extra: {shape: [obs]}",
                     "      |   ^",
                     "hint: remove it, or wire it into a block"]


def test_compile_logs_warnings_and_still_builds(path, caplog):
    with caplog.at_level(logging.WARNING, logger="jepa_graph"):
        model = jg.compile(path)
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * len(EXPECTED)
    assert "warning: energy `E2` is not in the objective" in caplog.text
    out = model(**model.example_inputs(2))
    assert "side" in out and "E2" in out  # unused blocks still compute in `forward`
    assert set(model.input_names("loss")) == {"x", "y"}  # but the loss program prunes them


def test_validate_prints_warnings_and_exits_0(path, capsys):
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"ok: {path}")
    assert err.count(": warning: ") == len(EXPECTED)
    assert "error" not in err
    for line, col, message, hint in EXPECTED:
        assert f"{path}:{line}:{col}: warning: {message}\n" in err
        assert f"hint: {hint}\n" in err


def test_a_block_used_only_by_an_unused_block_is_reported_once():
    """Only the end of an unused chain is reported, not everything upstream of it."""
    text = SPEC.replace("  side:", "  side0: {kind: encoder, type: mlp, in: [y], with: {out: state}}\n  side:").replace(
        "side: {kind: encoder, type: mlp, in: [y]", "side: {kind: encoder, type: mlp, in: [side0]")
    g = jg.check(jg.loads(text, "chain.yaml"))
    named = [w.message.split("`")[1] for w in g.warnings]
    assert "side" in named and "side0" not in named
    assert g.warnings[-1].hint == "remove it (and `side0`, which only feeds it), or use its output"


def test_an_ema_source_used_only_through_its_target_is_not_unused():
    text = SPEC.replace("in: [pred, tgt]}\n  E2", "in: [pred, tgt]}\n  E2").replace(
        "pred: {kind: predictor, type: mlp, in: [enc]", "pred: {kind: predictor, type: mlp, in: [x]")
    g = jg.check(jg.loads(text, "ema.yaml"))
    assert not any("`enc`" in w.message for w in g.warnings)


@pytest.mark.parametrize("spec", sorted(p for p in SPECS.iterdir() if p.suffix in (".yaml", ".jepa")), ids=lambda p: p.name)
def test_shipped_specs_have_no_warnings(spec, capsys):
    assert main(["validate", str(spec)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_unused_energy_hint_is_in_the_files_syntax():
    jepa = "jepa w\ninput x, y : [2]\nenc = encoder.mlp(x, out=2)\nE = energy.l2(enc, y)\nE2 = energy.l2(enc, y)\nobjective E\n"
    (w,) = _warnings(jepa, "w.jepa")
    assert w.message == "energy `E2` is not in the objective or the costs" and w.hint == "add `+ E2` to the `objective` line"
    yaml_text = jg.format_spec(jg.loads(jepa, "w.jepa"), "yaml")
    (w,) = _warnings(yaml_text, "w.yaml")
    assert w.hint == "add `E2: 1.0` to `objective:`"


def _warnings(text, file):
    return jg.check(jg.loads(text, file)).warnings
