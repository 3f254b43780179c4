"""`jepa-graph fmt`: canonical layout, in-place formatting, --check, conversion, comments kept."""
from __future__ import annotations

import re
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jepa_graph as jg
from conftest import ROOT
from jepa_graph.cli import main
from jepa_graph.format.convert import format_text

SPEC_FILES = sorted(p for d in ("specs", "blocks") for p in (ROOT / d).glob("*") if p.suffix in (".yaml", ".yml", ".jepa"))



@pytest.mark.parametrize("path", SPEC_FILES, ids=[f"{p.parent.name}/{p.name}" for p in SPEC_FILES])
def test_every_spec_file_is_canonical(path):
    """`jepa-graph fmt --check specs blocks` passes: the shipped files are what `fmt` writes."""
    text = path.read_text()
    assert format_text(text, str(path)) == text, f"run `jepa-graph fmt {path.relative_to(ROOT)}`"


def test_specs_come_in_both_syntaxes():
    """Hand-written specs are .jepa; the two the tour and the API examples name stay YAML."""
    suffixes = {p.suffix for p in SPEC_FILES if p.parent.name == "specs"}
    assert suffixes == {".yaml", ".jepa"} and all(p.suffix == ".jepa" for p in SPEC_FILES if p.parent.name == "blocks")


COMMENTED_YAML = """\
# header: what this spec is
name: tiny
dims: {obs: 4,   # inside a flow mapping: moves to the `dims` line
       state: 8}
inputs:
  # the observation
  x: {shape: [obs]}
  y: {shape: [obs]}   # the next observation
blocks:
  enc:  {kind: encoder, type: mlp, in: [x], with: {out: state}}
  # a shared copy
  tgt:  {kind: encoder, share: enc, in: [y]}
  E:    {kind: energy, type: l2, in: [enc, {ref: tgt, stop_grad: true}]}  # stop-grad on the target
objective: {E: 1.0}
# trailing remark
"""


def test_comments_survive_both_ways():
    as_jepa = format_text(COMMENTED_YAML, "tiny.yaml", "jepa")
    assert as_jepa == textwrap.dedent("""\
        # header: what this spec is
        jepa tiny

        dims obs=4, state=8  # inside a flow mapping: moves to the `dims` line

        # the observation
        input  x : [obs]
        input  y : [obs]  # the next observation

        enc = encoder.mlp(x, out=state)
        # a shared copy
        tgt = enc(y)
        E   = energy.l2(enc, sg(tgt))  # stop-grad on the target

        objective E
        # trailing remark
        """)
    back = format_text(as_jepa, "tiny.jepa", "yaml")
    for line in COMMENTED_YAML.splitlines():
        if "#" in line:
            assert line[line.index("#"):] in back
    assert format_text(back, "tiny.yaml") == back
    assert format_text(back, "tiny.yaml", "jepa") == as_jepa


def test_comment_before_a_grouped_input_keeps_it_on_its_own_line():
    text = "jepa g\ninput x : [4]\n# y is special\ninput y : [4]\ne = encoder.mlp(x)\n"
    out = format_text(text, "g.jepa")
    assert "input  x : [4]\n# y is special\ninput  y : [4]\n" in out
    assert format_text("jepa g\ninput x : [4]\ninput y : [4]\ne = encoder.mlp(x)\n", "g.jepa").startswith(
        "jepa g\n\ninput  x, y : [4]\n")


def test_cli_converts_and_formats_in_place(tmp_path, capsys):
    src = tmp_path / "tiny.yaml"
    src.write_text(COMMENTED_YAML)
    assert main(["fmt", str(src), "--to", "jepa"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# header: what this spec is\njepa tiny\n")
    out = tmp_path / "tiny.jepa"
    assert main(["fmt", str(src), "-o", str(out)]) == 0  # syntax from the extension
    assert out.read_text() == printed
    assert jg.load(out).model_dump() == jg.load(src).model_dump()

    assert main(["fmt", "--check", str(src)]) == 1  # the flow mapping over two lines is not canonical
    assert "would reformat" in capsys.readouterr().err
    assert src.read_text() == COMMENTED_YAML  # --check changes nothing
    assert main(["fmt", str(src)]) == 0
    assert src.read_text() != COMMENTED_YAML
    assert main(["fmt", "--check", str(src), str(out)]) == 0
    assert main(["fmt", "--check", str(tmp_path)]) == 0  # a folder: the specs in it
    assert src.read_text().count("#") == COMMENTED_YAML.count("#")
    capsys.readouterr()
    assert main(["fmt", str(src), "--to", "yaml", "-o", str(tmp_path / "x.jepa")]) == 2  # YAML into a .jepa file
    assert "names a jepa file" in capsys.readouterr().err and not (tmp_path / "x.jepa").exists()


def test_cli_reports_bad_specs_with_locations(tmp_path, capsys):
    bad = tmp_path / "bad.jepa"
    bad.write_text("jepa bad\nenc = encoder.mlp(x, out: 4)\n")
    assert main(["fmt", str(bad), "--to", "yaml"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:25: error: parameters are written `key=value`" in err and "Traceback" not in err
    assert main(["fmt", str(bad), str(bad), "--to", "yaml"]) == 2  # --to takes one file


def test_format_spec_api(tmp_path):
    spec = jg.load(ROOT / "specs" / "seed_world_model.yaml")
    text = jg.format_spec(spec, to="jepa")
    assert "target    = encoder(x_next)" in text and "E         = energy.l2(predictor, sg(target))" in text
    built = jg.from_dict({"name": "d", "inputs": {"x": {"shape": [2]}},
                          "blocks": {"e": {"kind": "encoder", "type": "mlp", "in": ["x"]}}})
    assert jg.format_spec(built, to="jepa").endswith("input  x : [2]\n\ne = encoder.mlp(x)\n")


def test_long_lines_wrap_and_still_read_back():
    params = ", ".join(f"p{i}: {i}" for i in range(30))
    text = f"name: w\ninputs: {{x: {{shape: [4]}}}}\nblocks:\n  e: {{kind: encoder, type: mlp, in: [x], with: {{{params}}}}}\n"
    for to in ("yaml", "jepa"):
        out = format_text(text, "w.yaml", to)
        assert max(map(len, out.splitlines())) <= 120
        assert format_text(out, f"w.{to}") == out
        assert jg.loads(out, f"w.{to}").model_dump() == jg.loads(text, "w.yaml").model_dump()


def test_what_jepa_cannot_write_is_refused_with_its_location(tmp_path, capsys):
    src = tmp_path / "dated.yaml"
    src.write_text("name: d\ninputs: {x: {shape: [2]}}\nblocks:\n  e: {kind: encoder, type: mlp, in: [x], "
                   "with: {since: 2024-01-01, table: {1: one}}}\n")
    assert main(["fmt", str(src), "--to", "jepa"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:4:79: error: cannot write the key `1` (a int) in .jepa" in err
    assert main(["fmt", str(src), "--to", "yaml"]) == 0  # YAML itself can hold it
    out = capsys.readouterr().out
    assert "since: '2024-01-01'" in out and "1: one" in out  # a date stays the text written


BASE = """\
jepa base
dims obs=4, state=8
input  x, y : [obs]
latent z : [2] ~ l1(0.1)
enc  = encoder.mlp(x, hidden=[16], out=state)
tgt  = ema(enc)(y, momentum=0.99..1.0)
pred = predictor.mlp(enc, z, a_long_parameter_name=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
                     out=state)
E    = energy.l2(pred, sg(tgt))
objective E + 0.5 * z.l1
world_model encoder=enc, predictor=pred, latent=z
train {
  steps = 10
  data = {source = shapes, with = {size = 32}}
}
"""


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_comments_are_never_lost(data):
    lines = BASE.splitlines()
    n = data.draw(st.integers(1, 6))
    for i in range(n):
        at = data.draw(st.integers(0, len(lines)))
        if data.draw(st.booleans()) and at < len(lines) and lines[at].strip():
            lines[at] += f"  # t{i}"
        else:
            lines.insert(at, f"# c{i}")
    text = "\n".join(lines) + "\n"
    want = sorted(f"# {c}" for c in re.findall(r"# (\w+)", text))
    spec = jg.loads(text, "c.jepa").model_dump()
    for to in ("jepa", "yaml"):
        out = format_text(text, "c.jepa", to)
        assert sorted(re.findall(r"# \w+", out)) == want
        assert jg.loads(out, f"c.{to}").model_dump() == spec
        assert format_text(out, f"c.{to}") == out


def test_empty_sums_and_the_deepest_nesting_convert_both_ways():
    """`objective: {}` is the default (nothing written in .jepa); a `with:` value nested as deep as
    YAML allows (60 lists) converts, and the .jepa limit refuses what YAML would refuse."""
    empty = "name: a\ninputs: {x: {shape: [4]}}\nblocks:\n  e: {kind: encoder, type: mlp, in: [x], with: {out: 4}}\n"
    jepa = format_text(empty + "objective: {}\ncosts: {}\n", "a.yaml", to="jepa")
    assert "objective" not in jepa and format_text(jepa, "a.jepa", to="yaml") == format_text(empty, "a.yaml")
    deep = "[" * 60 + "1" + "]" * 60
    yaml_text = empty.replace("{out: 4}", "{out: 4, h: " + deep + "}")
    assert format_text(format_text(yaml_text, "a.yaml", to="jepa"), "a.jepa", to="yaml") == format_text(yaml_text, "a.yaml")
    for text, file in ((yaml_text.replace(deep, "[" + deep + "]"), "a.yaml"),
                       ("jepa a\ninput x : [4]\ne = encoder.mlp(x, out=4, h=[" + deep + "])\n", "a.jepa")):
        with pytest.raises(jg.SpecError, match="nested more than"):
            format_text(text, file, to="yaml")
