""".jepa parse errors: the table of common mistakes, errors in words, and no traceback for any input."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jepa_graph as jg
from jepa_graph.cli import main
from jepa_graph.frontend.dsl_mistakes import CHECKED, MISTAKES
from jepa_graph.core.errors import SpecError
from jepa_graph.frontend.parse_dsl import parse_dsl, parser

PREFIX = "jepa demo\ninput x : [4]  # a comment\n\n"
# lark's terminal names (RPAR, _NL, __ANON_0, ...) must never reach the user; `jepa NAME` is prose
RAW_TOKEN = re.compile(r"(?<![\w$])(" + "|".join(sorted(
    (re.escape(t.name) for t in parser().terminals if t.name != "NAME"), key=len, reverse=True)) + r"|\$END)(?!\w)")
EXAMPLES = [(key, ex) for key, m in MISTAKES.items() for ex in m.examples]


def test_the_table_covers_at_least_twenty_mistakes():
    assert len(MISTAKES) >= 20
    assert len(MISTAKES) + len(CHECKED) >= 40


@pytest.mark.parametrize("key, example", EXAMPLES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(EXAMPLES)])
@pytest.mark.parametrize("prefix", ["", "jepa demo\n", PREFIX], ids=["first", "second", "later"])
def test_each_mistake_gets_its_message(key, example, prefix):
    with pytest.raises(SpecError) as e:
        parse_dsl(prefix + example, "bad.jepa")
    d = e.value.first
    first = example.split()[0].rstrip(":=") if example.split() else ""
    assert d.message == MISTAKES[key].message.format(first=first), str(e.value)
    assert d.loc.file == "bad.jepa" and d.loc.line == prefix.count("\n") + 1
    assert d.hint
    text = str(e.value)
    assert f"bad.jepa:{d.loc.line}:{d.loc.col}: error: " in text
    assert example.splitlines()[0] in text and "^" in text  # the line and a caret
    assert not RAW_TOKEN.search(d.message + d.hint), d.hint


@pytest.mark.parametrize("text, fragment", CHECKED, ids=[f"checked-{i}" for i in range(len(CHECKED))])
def test_mistakes_found_after_parsing(text, fragment):
    with pytest.raises(SpecError) as e:
        parse_dsl(text, "bad.jepa")
    assert fragment in str(e.value)
    assert e.value.first.loc is not None and e.value.first.hint


@pytest.mark.parametrize("text", [
    "jepa a\n@@@\n", "jepa a\nenc = encoder.mlp(x) extra\n", "jepa a\ninput x : [4] ~\n", "jepa a\n)\n",
    "jepa a\ne = encoder.mlp(x, y=[1, 2}\n", "jepa a\nobjective E +\n", "jepa a\nlatent z : [2] ~ l1(0.1) +\n",
])
def test_other_errors_say_what_was_expected_in_words(text):
    with pytest.raises(SpecError) as e:
        parse_dsl(text, "bad.jepa")
    msg = str(e.value)
    assert "bad.jepa:" in msg and "^" in msg
    assert not RAW_TOKEN.search(e.value.first.message + (e.value.first.hint or "")), msg


def test_unknown_statement_suggests_the_keyword():
    with pytest.raises(SpecError) as e:
        parse_dsl("jepa a\nlatnet z : [2]\n", "bad.jepa")
    assert "did you mean `latent`?" in e.value.first.hint


@pytest.mark.parametrize("data", [
    b"", b"   \n\n# nothing but a comment\n", b"\x00\x01\x02\xff\xfe", bytes(range(256)), b"jepa a\n\x00",
    b"jepa a\ne = op.t(x=" + b"[" * 10_000 + b"]" * 10_000 + b")\n",
    b"jepa a\ne = op.t(x=" + b"(" * 10_000 + b"\n",
    b"jepa a\ne = op.t(x=[" + b"1, " * 100_000 + b"2)\n",
    b"jepa " + b"a" * 200_000 + b" b\n",
    "jepa a\ne = op.t(s=\"\u2028\x85\") ?\n".encode(),  # line separators inside a string
])
def test_no_traceback_for_garbage(tmp_path, data, capsys):
    path = tmp_path / "g.jepa"
    path.write_bytes(data)
    with pytest.raises(SpecError) as e:
        jg.load(path)
    assert len(str(e.value)) < 2000  # long lines are clipped in the snippet
    assert main(["validate", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


GOOD = """\
jepa fuzz
dims obs=4, state=8
input  x, y : [obs]
latent z : [2] ~ l1(0.1)
enc  = encoder.mlp(x, hidden=[16], out=state)
tgt  = ema(enc)(y, momentum=0.99..1.0)
pred = predictor.mlp(enc, z, out=state)
E    = energy.l2(pred, sg(tgt))
objective E + 0.5 * z.l1
world_model encoder=enc, predictor=pred, latent=z
"""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_specs_fail_only_with_located_errors(data):
    text = GOOD
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 6)))
        text = text[:i] + data.draw(st.text(alphabet="()[]{},:=.~*+-#\"'\\\n xz0123456789enc_", max_size=4)) + text[j:]
    try:
        jg.loads(text, "fuzz.jepa")
    except SpecError as e:
        assert e.diagnostics and all(d.loc is None or d.loc.file == "fuzz.jepa" for d in e.diagnostics)
        str(e)


def test_every_parse_error_of_a_mutated_spec_has_a_location_and_a_hint():
    """400 random edits of GOOD (fixed seed): whatever breaks, the error says where and how to fix it."""
    import random

    rng = random.Random(34)
    pieces = ["(", ")", "[", "]", "{", "}", ",", ":", "=", "..", ".", "~", "*", "+", "-", ";", "'", '"', "\n", " ",
              "sg", "ema", "in", "infer", "objective", "level", "input", "0.5", "x", '"s"']
    alphabet = "()[]{},:=.~*+-#\"'\\\n xz0123456789enc_;"
    failed = 0
    for _ in range(400):
        text = GOOD
        for _ in range(rng.randint(1, 3)):
            i = rng.randint(0, len(text))
            j = rng.randint(i, min(len(text), i + 6))
            new = rng.choice(pieces) if rng.random() < 0.5 else "".join(rng.choices(alphabet, k=rng.randint(0, 3)))
            text = text[:i] + new + text[j:]
        try:
            parse_dsl(text, "fuzz.jepa")
        except SpecError as e:
            failed += 1
            for d in e.diagnostics:
                assert d.loc is not None and d.loc.file == "fuzz.jepa", f"{text}\n{e}"
                assert d.hint, f"no hint for:\n{text}\n{e}"
                assert not RAW_TOKEN.search(d.message + d.hint), str(e)
    assert failed > 200  # the edits do break most specs


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_random_text_fails_only_with_located_errors(text):
    try:
        parse_dsl(text, "r.jepa")
    except SpecError as e:
        assert e.first.loc is not None
        str(e)


@pytest.mark.parametrize("line, hint", [
    ("énc = encoder.mlp(x)", "names are ASCII letters, digits and `_`"),
    ("input y : [4]\x0b", "remove the control character"),
])
def test_a_stray_character_gets_a_hint(line, hint):
    with pytest.raises(SpecError) as e:
        parse_dsl(PREFIX + line + "\n", "bad.jepa")
    assert e.value.first.loc.line == 4 and hint in e.value.first.hint


@pytest.mark.parametrize("end", ["\r\n", "\r"], ids=["windows", "old-mac"])
def test_line_ends_of_other_systems_read_as_lines(end):
    text = "jepa a\ninput x : [4]\ne = encoder.mlp(x, out=2)\nE = energy.l2(e, e(x))\n".replace("\n", end)
    spec = parse_dsl(text, "a.jepa")
    assert spec.data["blocks"]["E"]["type"] == "l2"
    with pytest.raises(SpecError) as e:
        parse_dsl(text.replace("out=2", "out=2,,"), "a.jepa")
    assert e.value.first.loc.line == 3


@pytest.mark.parametrize("line, col, message, hint", [
    ("inptu z : [obs]", 1, "`inptu` is not a statement", "did you mean `input`?"),  # the caret on the word it names
    ("objectve E", 1, "`objectve` is not a statement", "did you mean `objective`?"),
    ('description "unterminated', 13, "this string is not closed", 'add the closing `"`'),
    ("E = energy.l2(x, sg y)", 21, "`sg` takes its input in parentheses", "write `sg(y)`"),
    ("costs c * 0.5", 9, "the weight comes before the term", "write `costs "),
    ("objective 0.5 E", 15, "a weight is joined to its term with `*`", "write `objective 0.5 * E`"),
    ("latent z : [2] ~ real l1(0.1)", 23, "the domain goes before `~`", "write `latent z : [2] real ~ l1(0.05)`"),
    ("level low encoder=enc, stride=2 extra", 33, "`level` entries are written `key=value`", "remove `extra`"),
    ("t = ema(e)(y, momentum=[0.99 1.0])", 30, "missing `,` between list items", "`[64, 64]`"),
    ("t = ema(e)(y, momentum=0.99...1.0)", 30, "a range is written with two dots", "`momentum=0.99..1.0`"),
])
def test_audited_mistakes(line, col, message, hint):
    with pytest.raises(SpecError) as e:
        parse_dsl(PREFIX + line + "\n", "bad.jepa")
    d = e.value.first
    assert (d.loc.line, d.loc.col) == (4, col), str(e.value)
    assert message in d.message and hint in d.hint, str(e.value)
    if line.startswith(("description", "inptu")):  # no "[found; expected ...]" note contradicting the hint
        assert "expected" not in d.hint, d.hint


def test_commas_between_section_entries_may_be_left_out():
    """DESIGN.md writes `world_model encoder=enc predictor=pred ...`: on section and level lines commas are optional."""
    with_commas = parse_dsl("jepa a\ndims a=1, b=2\nlevel low encoder=e, stride=2\n", "a.jepa").data
    without = parse_dsl("jepa a\ndims a=1 b=2\nlevel low encoder=e stride=2\n", "a.jepa").data
    assert with_commas == without


@pytest.mark.parametrize("text, hint", [
    ("jepa t\ninput x : [4]\nlatent z : [2] reall\ne = encoder.mlp(x, z, out=2)\n", "write `real` or `box(lo, hi)` or `discrete(K)`"),
    ("jepa t\ninput x : [4]\nlatent z : [3] discrete(2)\ne = predictor.mlp(x, z, out=2)\n",
     "write `latent z : [2] discrete(2)`"),
    ("jepa t\ninput x, y : [4]\nlatent z : [2]\np = predictor.mlp(x, z, out=4)\nE = energy.l2(p, y)\nobjective E + z.l2\n",
     "declare it on `z`: `latent z : [...] ~ l2(w)`"),
    ("jepa t\ninput x, y : [4]\ne = encoder.mlp(x, out=4)\np = predictor.mlp(e, out=4)\nE = energy.l2(p, y)\n"
     "objective E\nlevel low encoder=e\n", "add `predictor=...` to the `level` line"),
])
def test_shared_checks_hint_in_jepa_syntax(text, hint):
    """Checks shared with YAML (the spec model, shapes, objective terms) word their hints in the
    syntax of the file the error is in."""
    with pytest.raises(SpecError) as e:
        jg.check(jg.loads(text, "t.jepa"))
    assert any(hint in d.hint for d in e.value.diagnostics), str(e.value)
