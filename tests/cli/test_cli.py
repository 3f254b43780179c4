"""The command line: exit codes, what each command prints, and robustness against garbage input.

Commands run in-process through ``jepa_graph.cli.main`` (fast, output captured by ``capsys``);
one test runs the installed ``jepa-graph`` console script in a subprocess, as a user would.
Every bad input must exit 2 with a located, readable message and never a Python traceback.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jepa_graph as jg
from jepa_graph.cli import main
from conftest import SPECS

SEED = SPECS / "seed_world_model.yaml"

BAD = """\
name: bad
inputs:
  x: {shape: [4]}
blocks:
  enc: {kind: encoder, type: mlp, in: [xs], with: {out: 8}}
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bad(tmp_path) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    return p


# ------------------------------------------------------------------------------ validate
def test_validate_good_spec_exits_0(capsys):
    code, out, err = run(capsys, "validate", SEED)
    assert code == 0
    assert out.startswith(f"ok: {SEED} (6 blocks, 3 variables)")
    assert err == ""


def test_validate_bad_spec_exits_2_with_located_error(capsys, bad):
    code, out, err = run(capsys, "validate", bad)
    assert code == 2 and out == ""
    assert err.splitlines()[0] == f"{bad}:5:40: error: unknown reference `xs` (input 0 of `enc`)"
    assert "    5 |   enc: {kind: encoder" in err
    assert "hint: did you mean `x`?" in err
    assert "Traceback" not in err


def test_validate_reports_every_file(capsys, bad):
    code, out, err = run(capsys, "validate", SEED, bad, SEED)
    assert code == 2
    assert out.count("ok: ") == 2
    assert err.count("error:") == 1


# ---------------------------------------------------------------------------------- info
def test_info_shows_blocks_shapes_and_parameter_counts(capsys):
    code, out, err = run(capsys, "info", SEED)
    assert code == 0
    model = jg.compile(SEED)
    assert out.splitlines()[0] == f"seed_world_model: {model.num_parameters():,} parameters " \
                                  f"({model.num_parameters(trainable_only=True):,} trainable)"
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line and not line.startswith(("programs", "objective"))}
    for r in model.summary():
        line = rows[r["name"]]
        assert r["what"] in line and r["shape"] in line and f"{r['params']:,}" in line
    assert "shares encoder" in rows["target"]
    assert "programs: forward, energy, loss" in out


def test_info_blocks_lists_the_registry(capsys):
    code, out, _ = run(capsys, "info", "--blocks")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()]
    assert listed == [f"{c.kind}.{c.name}" for c in jg.list_blocks()]
    assert "encoder.mlp" in listed and "energy.l2" in listed


def test_info_without_spec_exits_2(capsys):
    code, _, err = run(capsys, "info")
    assert code == 2 and "give a SPEC" in err


def test_info_bad_spec_exits_2(capsys, bad):
    code, out, err = run(capsys, "info", bad)
    assert code == 2 and out == "" and f"{bad}:5:40: error:" in err


# ------------------------------------------------------------------------------- compile
def test_compile_print_code_prints_fx_code(capsys):
    code, out, _ = run(capsys, "compile", SEED, "--print-code")
    assert code == 0
    model = jg.compile(SEED)
    for name in model.program_names():
        assert f"# program: {name}\n" in out
    assert out.count("def forward(self") == len(model.program_names())
    assert "blocks_encoder" in out or "blocks.encoder" in out


def test_compile_one_program(capsys):
    code, out, _ = run(capsys, "compile", SEED, "--print-code", "--program", "step")
    assert code == 0
    assert out.startswith("# program: step\n") and out.count("# program:") == 1


def test_compile_without_print_lists_programs(capsys):
    code, out, _ = run(capsys, "compile", SEED)
    assert code == 0 and out.startswith(f"ok: {SEED} compiles to programs: forward")


def test_compile_unknown_program_exits_2(capsys):
    code, out, err = run(capsys, "compile", SEED, "--print-code", "--program", "dream")
    assert code == 2 and "has no program `dream`" in err and "programs here:" in err
    assert out == ""  # no `# program: dream` header before the error


# -------------------------------------------------------------------------------- schema
def test_schema_is_json_with_the_spec_sections(capsys, tmp_path):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    props = schema["properties"]
    assert {"name", "dims", "inputs", "latents", "actions", "blocks", "objective", "world_model", "costs"} <= set(props)
    assert "blocks" in schema["required"]
    target = tmp_path / "spec.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == schema


# ------------------------------------------------------------------------ the real command
def test_console_script_in_a_subprocess(tmp_path):
    script = shutil.which("jepa-graph", path=str(Path(sys.executable).parent))
    cmd = [script] if script else [sys.executable, "-m", "jepa_graph.cli"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    proc = subprocess.run(cmd + ["validate", str(SEED), str(bad)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert f"ok: {SEED}" in proc.stdout
    assert f"{bad}:5:40: error: unknown reference `xs`" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------ garbage in, exit 2
def _alias_bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


GARBAGE = {
    # name: (file content (bytes), or None for "make a directory", or "missing"; message regex)
    "binary": (bytes(range(256)) * 8, r"spec files must be UTF-8 text: byte 0x80 is not valid UTF-8"),
    "invalid utf-8": (b"name: caf\xe9\nblocks: {}\n", r":1:10: error: spec files must be UTF-8 text"),
    "empty": (b"", r":1:1: error: the spec file is empty"),
    "whitespace only": (b"\n\n   \n", r"the spec file is empty"),
    "nul byte": (b"name: x\x00\nblocks: {}\n", r":1:8: error: invalid character U\+0000"),
    "directory": (None, r"is a directory, not a spec file"),
    "missing": ("missing", r"no such spec file"),
    "10,000 nested brackets": (b"name: x\nblocks: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
                               r":2:73: error: YAML nested more than 64 levels deep"),
    "10,000 nested braces": (b"name: x\nblocks: " + b"{a: " * 10_000 + b"1" + b"}" * 10_000 + b"\n",
                             r"YAML nested more than 64 levels deep"),
    "5,000-digit integer": (b"name: x\ndims: {obs: " + b"9" * 5000 + b"}\nblocks: {}\n",
                            r":2:13: error: number with 5,000 digits is too long"),
    "5,000-digit integer in .jepa": (b"jepa x\ndims obs = " + b"9" * 5000 + b"\n",
                                     r":2:12: error: number with 5,000 digits is too long"),
    "10,000 unclosed brackets": (b"name: x\nblocks: " + b"[" * 10_000 + b"\n", r"invalid YAML|nested more than"),
    "1 MB single line": (b'{name: x, description: "' + b"a" * 1_000_000 + b'", blocks: {}, oops: 1}\n',
                         r":1:1000040: error: unknown key `oops` in the spec"),
    "alias bomb": (_alias_bomb().encode(), r"YAML expands to more than 200,000 values \(an alias bomb\?\)"),
    "yaml python object": (b"!!python/object/apply:os.system ['echo hi']\n", r"unsupported YAML tag `!!python/object/apply"),
    "a bare number": (b"42\n", r"a spec must be a mapping of sections"),
    "json array": (b"[1, 2, 3]\n", r"a spec must be a mapping of sections"),
    "unknown extension": (b"name: x\n", r"unknown spec file type"),
    # the .jepa front end gets the same treatment
    "binary .jepa": (bytes(range(256)) * 8, r"spec files must be UTF-8 text"),
    "empty .jepa": (b"", r":1:1: error: the spec file is empty"),
    "10,000 nested brackets in .jepa": (b"jepa x\n\nenc = encoder.mlp(" + b"[" * 10_000 + b"]" * 10_000 + b")\n",
                                        r":3:19: error: "),
    "10,000 nested parentheses in .jepa": (b"jepa x\n\nenc = " + b"(" * 10_000 + b"x" + b")" * 10_000 + b"\n",
                                           r":3:7: error: "),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_exits_2_without_traceback(name, tmp_path, capsys):
    content, message = GARBAGE[name]
    path = tmp_path / ("spec.txt" if name == "unknown extension" else "spec.jepa" if ".jepa" in name else "spec.yaml")
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content)
    code, out, err = run(capsys, "validate", path)
    assert code == 2, err
    assert out == ""
    assert re.search(message, err), err[:2000]
    assert "Traceback" not in err
    assert max(len(line) for line in err.splitlines()) < 400  # long lines are clipped around the caret
    if ".jepa" not in name or "binary" in name or "empty" in name:  # (.jepa syntax hints: tests/test_dsl*)
        assert "hint: " in err


# ------------------------------------------------------------------ bad command-line values
_BOMB = ("{a: &a [1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], "
         "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]}")

BAD_ARGS = {  # argv -> (exit code, message on stderr)
    "alias bomb in an override": (["train", "specs/two_rooms.yaml", f"train.data.with={_BOMB}"],
                                  2, r"<command line>:1:\d+: error: YAML expands to more than 200,000 values"),
    "alias bomb as description": (["train", "specs/two_rooms.yaml", "description=" + _BOMB],
                                  2, r"YAML expands to more than 200,000 values"),
    "alias bomb in rename": (["train", "specs/two_rooms.yaml", f"train.data.rename={_BOMB}"],
                             2, r"YAML expands to more than 200,000 values"),
    "object tag in an override": (["train", "specs/two_rooms.yaml", "train.lr=!!python/object/apply:os.system [ls]"],
                                  2, r"<command line>:1:\d+: error: unsupported YAML tag"),
    "alias bomb in energy --with": (["energy", "specs/fork.jepa", "--with", f"x={_BOMB}"],
                                    2, r"`--with x=.*`: YAML expands to more than 200,000 values"),
    "energy to a non-PNG file": (["energy", "specs/fork.jepa", "-o", "e.exe"], 2, r"the energy plot is a PNG"),
    "demo batch 0": (["demo", "--quick", "--batch", "0"], 2, r"argument --batch: must be at least 1, got 0"),
    "render timeout 0": (["render", "specs/fork.jepa", "--timeout", "0"], 2, r"argument --timeout: must be a finite"),
}


@pytest.mark.parametrize("name", list(BAD_ARGS))
def test_bad_command_line_values_exit_without_traceback(name, capsys):
    argv, want, message = BAD_ARGS[name]
    try:
        code = main([a.replace("specs/", str(SPECS) + "/", 1) if a.startswith("specs/") else a for a in argv])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == want and re.search(message, err), err[-2000:]
    assert "Traceback" not in err


def test_energy_reads_the_spec_renamed_inputs(tmp_path, capsys):
    text = (SPECS / "fork.jepa").read_text()
    text = text.replace("input  x : [obs]", "input  before : [obs]").replace("encoder.mlp(x,", "encoder.mlp(before,")
    assert "data=fork\n" in text
    text = text.replace("data=fork\n", "data={source=fork, rename={x=before}}\n")
    spec = tmp_path / "renamed.jepa"
    spec.write_text(text)
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err
    code = main(["energy", str(spec), "-o", str(tmp_path / "e.png")])
    assert code == 0, capsys.readouterr().err
    assert "8 samples of `fork`" in capsys.readouterr().out
