"""Sizes are positive integers up to 2**31 - 1, never YAML booleans: `validate` refuses the rest,
located, and the exported JSON Schema refuses them too (JSON Schema's `integer` excludes booleans).

Without these checks pydantic took `true` as 1, and a size past int64 passed `validate` and then
crashed torch in `info`/`compile` ("Overflow when unpacking long long").
"""
from __future__ import annotations

import pytest
import yaml

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.cli import main
from jepa_graph.frontend.schema import json_schema

SEED = (SPECS / "seed_world_model.yaml").read_text()
HUGE = "99999999999999999999"
MISTAKES = {
    # name: (old, new) in the seed spec, and the message `validate` gives
    "dim true": ("obs: 16,", "obs: true,", "`dims.obs` is `true`, not a number"),
    "dim too big": ("obs: 16,", f"obs: {HUGE},", f"`dims.obs` is {HUGE}; sizes go up to 2,147,483,647"),
    "shape entry true": ("x:      {shape: [obs]}", "x:      {shape: [true]}", "`inputs.x.shape.0`: `true` is not valid here"),
    "shape entry too big": ("x:      {shape: [obs]}", f"x:      {{shape: [{HUGE}]}}", "`inputs.x.shape.0` is " + HUGE),
    "width true": ("hidden: [64, 32], out: state}", "hidden: [64, 32], out: true}", "parameter `out`: `true` is not a number"),
    "hidden width true": ("hidden: [64, 32], out: state}", "hidden: [true, 32], out: state}", "parameter `hidden`: `true`"),
    "width too big": ("hidden: [64, 32], out: state}", f"hidden: [64, 32], out: {HUGE}}}", f"parameter `out`: {HUGE} is too big"),
}


@pytest.mark.parametrize("old,new,message", list(MISTAKES.values()), ids=list(MISTAKES))
def test_validate_refuses_the_size_located(tmp_path, capsys, old, new, message):
    assert SEED.count(old) == 1
    text = SEED.replace(old, new)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    line = text[:text.index(new)].count("\n") + 1
    assert err.startswith(f"{path}:{line}:") and message in err and "\nhint: " in err and "Traceback" not in err


@pytest.mark.parametrize("old,new,message", list(MISTAKES.values()), ids=list(MISTAKES))
def test_the_schema_refuses_them_too(old, new, message):
    jsonschema = pytest.importorskip("jsonschema", reason="dev extra: pip install -e '.[dev]'")
    validator = jsonschema.Draft202012Validator(json_schema())
    assert list(validator.iter_errors(yaml.safe_load(SEED.replace(old, new)))), "the schema let this through"


def test_the_largest_size_is_allowed_and_one_more_is_not():
    ok = jg.loads(SEED.replace("obs: 16,", "obs: 2147483647,"), "ok.yaml")
    assert ok.dims["obs"] == 2**31 - 1
    with pytest.raises(jg.SpecError, match="sizes go up to 2,147,483,647"):
        jg.loads(SEED.replace("obs: 16,", "obs: 2147483648,"), "bad.yaml")


def test_yes_no_parameters_still_take_booleans():
    text = SEED.replace("hidden: [64, 32], out: state}", "hidden: [64, 32], out: state, norm: true}")
    g = jg.check(jg.loads(text, "ok.yaml"))
    assert g.nodes["encoder"].params.norm is True


def test_a_composite_dim_too_big_is_reported_at_its_use(tmp_path):
    spec = tmp_path / "uses.yaml"
    spec.write_text("name: uses\ninputs: {x: {shape: [2]}, y: {shape: [2]}, a: {shape: [2]}}\nblocks:\n"
                    f"  low: {{kind: composite, type: ac_jepa_level, in: [x, y, a], with: {{state: {HUGE}}}}}\n"
                    "objective: {low.E: 1.0}\n")
    with pytest.raises(jg.SpecError) as e:
        jg.check(spec)
    d = e.value.first
    assert d.message == f"dim `state` of `low` is {HUGE}; sizes go up to 2,147,483,647"
    assert str(d.loc) == f"{spec}:4:76"  # the value
