"""The exported JSON Schema (`jepa-graph schema`) describes the YAML syntax an editor sees.

Every spec in the repo validates against it; the mistakes an editor should underline (a typo in
a `with:` key, an unregistered type, an unknown section) fail it, and the compiler refuses the
same specs. A spec may name the schema in a `$schema` key or a yaml-language-server comment.
"""
from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

import jepa_graph as jg
from conftest import ROOT, SPECS
from jepa_graph.cli import main
from jepa_graph.format.convert import format_spec
from jepa_graph.frontend.schema import json_schema

FILES = sorted(p for d in (SPECS, ROOT / "blocks") for p in d.iterdir() if p.suffix in (".yaml", ".jepa"))


@pytest.fixture(scope="module")
def validator():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_repo_spec_validates_against_the_schema(validator, path):
    # a .jepa file is checked as the YAML data it stands for (`jepa-graph fmt --to yaml`)
    data = yaml.safe_load(path.read_text() if path.suffix == ".yaml" else format_spec(path, to="yaml"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors


SEED = (SPECS / "seed_world_model.yaml").read_text()
MISTAKES = {
    # name: (old, new) in the seed spec; each is an error for the schema and for the compiler
    "with key typo": ("with: {hidden: [64, 32], out: state}", "with: {hiden: [64, 32], out: state}"),
    "type not registered": ("type: mlp, in: [x]", "type: mpl, in: [x]"),
    "type of another kind": ("type: mlp, in: [x]", "type: ac_mlp, in: [x]"),
    "size not positive": ("with: {hidden: [64, 32], out: state}", "with: {hidden: [64, 32], out: 0}"),
    "hidden size a float": ("with: {hidden: [64, 32], out: state}", "with: {hidden: [64.5, 32], out: state}"),
    "unknown section": ("objective:", "objectives: {}\nobjective:"),
    "unknown kind": ("kind: critic", "kind: critics"),
    "edge with an unknown key": ("{ref: target, stop_grad: true}", "{ref: target, stopgrad: true}"),
    "EMA with an unknown key": ("{kind: encoder, share: encoder, in: [x_next]}",
                                "{kind: encoder, ema_of: encoder, in: [x_next], with: {momentm: 0.9}}"),
    "EMA schedule typo": ("{kind: encoder, share: encoder, in: [x_next]}",
                          "{kind: encoder, ema_of: encoder, in: [x_next], with: {schedule: cosin}}"),
}


@pytest.mark.parametrize("old,new", list(MISTAKES.values()), ids=list(MISTAKES))
def test_schema_and_compiler_agree_on_mistakes(validator, old, new):
    assert SEED.count(old) >= 1
    text = SEED.replace(old, new, 1)
    assert list(validator.iter_errors(yaml.safe_load(text))), "the schema let this through"
    with pytest.raises(jg.SpecError):
        jg.compile(jg.loads(text, "bad.yaml"))


def test_named_dims_and_shorthands_are_valid(validator):
    # sizes may name a dim; EMA targets take momentum/schedule; train shorthands; composites stay open
    good = SEED.replace("{kind: encoder, share: encoder, in: [x_next]}",
                        "{kind: encoder, ema_of: encoder, in: [x_next], with: {momentum: [0.99, 1.0], schedule: cosine}}")
    good += "train: {steps: 10, lr: 0.001, warmup: 2, optimizer: sgd, data: two_rooms}\n"
    assert not list(validator.iter_errors(yaml.safe_load(good)))
    jg.compile(jg.loads(good, "good.yaml"))


def test_a_spec_can_point_at_the_schema(validator, tmp_path, capsys):
    target = tmp_path / "jepa.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == json_schema()
    for head in ("$schema: ./jepa.schema.json\n", "# yaml-language-server: $schema=./jepa.schema.json\n"):
        spec = tmp_path / "spec.yaml"
        spec.write_text(head + SEED)
        assert not list(validator.iter_errors(yaml.safe_load(spec.read_text())))
        assert main(["validate", str(spec)]) == 0
        assert jg.compile(spec).num_parameters() == jg.compile(SPECS / "seed_world_model.yaml").num_parameters()
    capsys.readouterr()
