"""The .jepa front end builds exactly what the YAML front end builds, with positions in the .jepa file."""
from __future__ import annotations

import textwrap

import pytest

import jepa_graph as jg
from jepa_graph.cli import main
from jepa_graph.frontend.parse_dsl import parse_dsl

TWO_ROOMS_JEPA = """\
# the DESIGN.md example, as written there
jepa two_rooms_world_model

dims obs = 2, state = 32, act = 2

input  x, x_next, goal : [obs]
action a : [act] in [-1, 1]
latent z : [2] real ~ l1(0.05)

enc    = encoder.mlp(x, hidden=[64, 64], out=state)
target = ema(enc)(x_next, momentum=0.99..1.0)
pred   = predictor.mlp(enc, a, z, hidden=[128, 128], out=state)
E      = energy.smooth_l1(pred, target)
reg    = regularizer.vicreg(enc)
reach  = cost.goal_distance(pred, enc(goal))

objective E + reg + z.l1
world_model encoder=enc predictor=pred action=a latent=z
costs reach
"""

TWO_ROOMS_YAML = """\
name: two_rooms_world_model
dims: {obs: 2, state: 32, act: 2}
inputs:
  x:      {shape: [obs]}
  x_next: {shape: [obs]}
  goal:   {shape: [obs]}
actions:
  a: {shape: [act], bounds: [-1, 1]}
latents:
  z: {shape: [2], domain: real, regularizer: {l1: 0.05}}
blocks:
  enc:      {kind: encoder,   type: mlp, in: [x], with: {hidden: [64, 64], out: state}}
  target:   {kind: encoder,   ema_of: enc, in: [x_next], with: {momentum: [0.99, 1.0]}}
  pred:     {kind: predictor, type: mlp, in: [enc, a, z], with: {hidden: [128, 128], out: state}}
  E:        {kind: energy,    type: smooth_l1, in: [pred, target]}
  reg:      {kind: regularizer, type: vicreg, in: [enc]}
  enc_goal: {kind: encoder,   share: enc, in: [goal]}
  reach:    {kind: cost,      type: goal_distance, in: [pred, enc_goal]}
objective: {E: 1.0, reg: 1.0, z.l1: 1.0}
world_model: {encoder: enc, predictor: pred, action: a, latent: z}
costs: {reach: 1.0}
"""


def test_design_example_equals_its_yaml():
    a = jg.loads(TWO_ROOMS_JEPA, "two_rooms.jepa")
    b = jg.loads(TWO_ROOMS_YAML, "two_rooms.yaml")
    assert a.model_dump() == b.model_dump()
    assert list(a.blocks) == list(b.blocks)  # the inline `enc(goal)` sits just before its user


def test_jepa_file_loads_checks_and_compiles(tmp_path):
    path = tmp_path / "two_rooms.jepa"
    path.write_text(TWO_ROOMS_JEPA)
    model = jg.compile(path)
    out = model(**model.example_inputs(3))
    assert out["energy"].shape == (3,)
    assert model.graph.nodes["target"].ema_of == "enc"
    assert main(["validate", str(path)]) == 0


def test_sugar_expands_to_yaml_data():
    raw = parse_dsl(textwrap.dedent("""\
        jepa sugar
        input  x, y : [4]
        input  idx : [3] long
        latent z : [2] box(-1, 1) ~ l1(0.1) + l2(0.01) infer cem(steps=5, lr=0.5)
        latent k : [4] discrete(4) {inference = {method = enumerate}}
        action a : [2] in [-0.5, 0.5]
        enc  = frozen encoder.mlp(x, out=8)
        tgt  = ema(enc)(y)
        g    = enc(y)
        E    = energy.l2(enc, sg(tgt))
        raw  = {kind=op, type=concat, in=[enc, {ref=g, stop_grad=true}]}
        level low encoder=enc, predictor=enc, stride=2
        level high encoder=enc predictor=enc subgoal=cosine
        objective E - 0.5 * z.l1 + 2 * k.l2
        costs -E
        outputs state=enc, energy=E
        """), "s.jepa").data
    assert raw["inputs"] == {"x": {"shape": [4]}, "y": {"shape": [4]}, "idx": {"shape": [3], "dtype": "long"}}
    assert raw["latents"]["z"] == {"shape": [2], "domain": {"box": [-1, 1]}, "regularizer": {"l1": 0.1, "l2": 0.01},
                                   "inference": {"method": "cem", "steps": 5, "lr": 0.5}}
    assert raw["latents"]["k"] == {"shape": [4], "domain": {"discrete": 4}, "inference": {"method": "enumerate"}}
    assert raw["actions"]["a"] == {"shape": [2], "bounds": [-0.5, 0.5]}
    b = raw["blocks"]
    assert b["enc"] == {"kind": "encoder", "type": "mlp", "in": ["x"], "with": {"out": 8}, "frozen": True}
    assert b["tgt"] == {"kind": "encoder", "ema_of": "enc", "in": ["y"]}
    assert b["g"] == {"kind": "encoder", "share": "enc", "in": ["y"]}
    assert b["E"]["in"] == ["enc", {"ref": "tgt", "stop_grad": True}]
    assert b["raw"] == {"kind": "op", "type": "concat", "in": ["enc", {"ref": "g", "stop_grad": True}]}
    assert raw["levels"] == [{"name": "low", "encoder": "enc", "predictor": "enc", "stride": 2},
                             {"name": "high", "encoder": "enc", "predictor": "enc", "subgoal": "cosine"}]
    assert raw["objective"] == {"E": 1.0, "z.l1": -0.5, "k.l2": 2.0}
    assert raw["costs"] == {"E": -1.0}
    assert raw["outputs"] == {"state": "enc", "energy": "E"}


def test_values_keep_their_types():
    raw = parse_dsl('jepa v\ne = op.t(a=1, b=1.0, c=-2.5e-3, d=inf, e=-inf, f=true, g=null, h="1", i="x y\\n", '
                    'j=state, k=lvl.out, l=[1, [2]], m={p=1, "q r"=2}, n=0..1, o="true", p=[])\n', "v.jepa").data
    w = raw["blocks"]["e"]["with"]
    assert w["a"] == 1 and type(w["a"]) is int and type(w["b"]) is float
    assert w["c"] == -2.5e-3 and w["d"] == float("inf") and w["e"] == float("-inf")
    assert w["f"] is True and w["g"] is None and w["h"] == "1" and w["i"] == "x y\n"
    assert w["j"] == "state" and w["k"] == "lvl.out" and w["l"] == [1, [2]] and w["m"] == {"p": 1, "q r": 2}
    assert w["n"] == [0, 1] and w["o"] == "true" and w["p"] == []


def test_generic_sections_nest_and_span_lines():
    raw = parse_dsl(textwrap.dedent("""\
        jepa s
        e = encoder.mlp(
            x,      # newlines inside ( ) are ignored
            out=4,
        )
        dims obs=4
        dims state=8
        extra {
          lr = 3e-4
          data = {
            source = two_rooms
            episodes = [1,
                        2]
          }
        }
        """), "s.jepa")
    assert raw.data["dims"] == {"obs": 4, "state": 8}
    assert raw.data["extra"] == {"lr": 3e-4, "data": {"source": "two_rooms", "episodes": [1, 2]}}
    assert raw.data["blocks"]["e"] == {"kind": "encoder", "type": "mlp", "in": ["x"], "with": {"out": 4}}
    assert (raw.at(("extra", "data", "episodes", 1)).line, raw.at(("extra", "data", "episodes", 1)).col) == (13, 17)


def test_keywords_are_still_valid_block_names():
    raw = parse_dsl("jepa k\ninput = encoder.mlp(x)\nlevel = input(y)\nobjective input + level\n", "k.jepa").data
    assert raw["blocks"]["level"] == {"kind": "encoder", "share": "input", "in": ["y"]}
    assert raw["objective"] == {"input": 1.0, "level": 1.0}


@pytest.mark.parametrize("text, path, line, col", [
    (TWO_ROOMS_JEPA, ("blocks", "target", "with", "momentum"), 11, 36),
    (TWO_ROOMS_JEPA, ("blocks", "reach", "in", 1), 15, 35),
    (TWO_ROOMS_JEPA, ("latents", "z", "regularizer", "l1"), 8, 26),
    (TWO_ROOMS_JEPA, ("world_model", "action"), 18, 47),
    (TWO_ROOMS_JEPA, ("inputs", "goal"), 6, 19),
])
def test_every_path_has_its_position(text, path, line, col):
    loc = parse_dsl(text, "t.jepa").at(path)
    assert (loc.line, loc.col) == (line, col)


def test_later_errors_point_into_the_jepa_file(tmp_path):
    bad = tmp_path / "bad.jepa"
    bad.write_text(TWO_ROOMS_JEPA.replace("cost.goal_distance(pred, enc(goal))", "cost.goal_distance(prd, enc(goal))"))
    with pytest.raises(jg.SpecError) as e:
        jg.check(bad)
    d = e.value.first
    assert (d.loc.file, d.loc.line, d.loc.col) == (str(bad), 15, 29)
    assert "did you mean `pred`" in d.hint
    assert "reach  = cost.goal_distance(prd" in str(e.value)
    schema = tmp_path / "schema.jepa"
    schema.write_text("jepa s\ninput x : [4] float64\n")
    with pytest.raises(jg.SpecError) as e:
        jg.load(schema)
    assert (e.value.first.loc.line, e.value.first.loc.col) == (2, 15)
    assert "inputs.x.dtype" in e.value.first.message


def test_composites_written_in_jepa(tmp_path):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "tiny_level.jepa").write_text(textwrap.dedent("""\
        jepa tiny_level
        dims obs=4, state=8
        input x, y : [obs]
        enc  = encoder.mlp(x, hidden=[16], out=state)
        tgt  = enc(y)
        pred = predictor.mlp(enc, out=state)
        E    = energy.l2(pred, sg(tgt))
        outputs state=enc, E=E
        """))
    top = tmp_path / "top.jepa"
    top.write_text(textwrap.dedent("""\
        jepa top
        input x, y : [6]
        low  = composite.tiny_level(x, y, obs=6, state=12)
        up   = encoder.mlp(low.state, out=4)
        objective low.E
        """))
    model = jg.compile(top)
    assert model.graph.nodes["low/enc"].ttype.shape == (12,)
    assert model.graph.nodes["low/E"].inputs[1].stop_grad


def test_editor_grammar_knows_every_keyword_and_kind():
    """editors/vscode highlights .jepa files; it must follow the grammar and the block kinds."""
    import json
    import re

    from conftest import ROOT
    from jepa_graph.frontend.parse_dsl import parser
    from jepa_graph.frontend.spec import KINDS

    tm = json.loads((ROOT / "editors/vscode/syntaxes/jepa.tmLanguage.json").read_text())
    pkg = json.loads((ROOT / "editors/vscode/package.json").read_text())
    assert pkg["contributes"]["languages"][0]["extensions"] == [".jepa"]
    statement = tm["repository"]["statement"]["match"]
    words = {t.pattern.value for t in parser().terminals if t.pattern.type == "str" and t.pattern.value.isalpha()}
    statements = {w for w in words if re.search(rf"\b{w}\b", statement)}
    modifiers = json.dumps(tm["repository"]["expression"])
    for w in words:
        assert w in statements or re.search(rf"\b{w}\b", modifiers), f"`{w}` is not highlighted"
    for kind in KINDS:
        assert kind in modifiers


def test_syntax_reference_examples_parse():
    """docs/jepa_syntax.md: every `.jepa` example in its table and code blocks parses."""
    import re

    from conftest import ROOT

    doc = (ROOT / "docs" / "jepa_syntax.md").read_text()
    rows = [m.group(1) for m in re.finditer(r"^\| `([^`]+)`", doc, re.M) if m.group(1) != ".jepa"]
    blocks = re.findall(r"```jepa\n(.*?)```", doc, re.S)
    assert len(rows) >= 25 and blocks
    for snippet in rows + blocks:
        context = "" if snippet.startswith(("jepa ", "enc =")) else "enc = encoder.mlp(x)\n"  # copied below
        text = snippet if snippet.startswith("jepa ") else f"jepa doc\n{context}{snippet}\n"
        parse_dsl(text, "doc.jepa")


def test_syntax_reference_error_examples_are_the_tools_output(tmp_path):
    """docs/jepa_syntax.md: each error example is what `jepa-graph validate` prints for its line."""
    import re

    from conftest import ROOT

    doc = (ROOT / "docs" / "jepa_syntax.md").read_text()
    examples = [b for b in re.findall(r"```text\n(.*?)```", doc, re.S) if ": error: " in b]
    assert examples
    for block in examples:
        head = re.match(r"(\S+\.jepa):(\d+):\d+: error: ", block)
        file, line = head.group(1), int(head.group(2))
        code = re.search(rf"^ *{line} \| (.*)$", block, re.M).group(1)
        filler = ["jepa doc"] + ["# ..."] * (line - 2) if line > 1 else []
        (tmp_path / file).write_text("\n".join(filler + [code]) + "\n")
        with pytest.raises(jg.SpecError) as e:
            parse_dsl((tmp_path / file).read_text(), file)
        assert str(e.value).splitlines()[0] == block.splitlines()[0]
        assert str(e.value) == block.rstrip("\n")


def test_readme_shows_one_spec_in_both_syntaxes():
    """The tour's YAML and .jepa blocks are the same model as specs/seed_world_model.yaml."""
    import re
    from conftest import ROOT
    readme = (ROOT / "README.md").read_text()
    yaml_block = re.search(r"```yaml\n(name: seed_world_model\n.*?)```", readme, re.S).group(1)
    jepa_block = re.search(r"```\n(jepa seed_world_model\n.*?)```", readme, re.S).group(1)
    want = jg.load(ROOT / "specs/seed_world_model.yaml").model_dump()
    assert jg.loads(yaml_block, "README.yaml").model_dump() == want
    assert jg.loads(jepa_block, "README.jepa").model_dump() == want
