"""The command line: exit codes, what each command prints, and robustness against garbage input.

Commands run in-process through ``jepa_graph.cli.main`` (fast, output captured by ``capsys``);
one test runs the installed ``jepa-graph`` console script in a subprocess, as a user would.
Every bad input must exit 2 with a located, readable message and never a Python traceback;
a reader that leaves a pipe early is no traceback either. `info --blocks` lists the registry and
one type's inputs and parameters; `demo --quick` prints the table of every spec in a folder.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jepa_graph as jg
from jepa_graph.cli import main
from jepa_graph.core.registry import list_blocks
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


def test_info_blocks_lists_every_registered_type(capsys):
    code, out, err = run(capsys, "info", "--blocks")
    assert code == 0
    blocks = list_blocks()
    for c in blocks:
        assert re.search(rf"^{c.kind}\.{c.name} +\S", out, re.M), f"{c.kind}.{c.name} missing"
    assert f"{len(blocks)} block types" in err  # the footer; stdout is one line per type


@pytest.mark.parametrize("cls", list_blocks(), ids=lambda c: f"{c.kind}.{c.name}")
def test_info_blocks_name_shows_inputs_and_every_parameter(capsys, cls):
    code, out, _ = run(capsys, "info", "--blocks", f"{cls.kind}.{cls.name}")
    assert code == 0
    assert out.startswith(f"{cls.kind}.{cls.name}: {cls.doc()}")
    assert "  inputs: " in out
    for field, info in cls.Params.model_fields.items():
        key = info.alias or field
        line = next((ln for ln in out.splitlines() if ln.startswith(f"  with.{key}: ")), None)
        assert line is not None, f"with.{key} missing"
        assert line.endswith("required") == info.is_required()
    if not cls.Params.model_fields:
        assert "with: (no parameters)" in out


def test_info_blocks_by_name_or_kind_and_unknown(capsys):
    code, out, _ = run(capsys, "info", "--blocks", "encoder.mlp")
    assert code == 0
    assert "  inputs: 1 (x)" in out and "  with.out: int | dim, required" in out
    assert "  with.hidden: list[int | dim], default []" in out
    code, out, _ = run(capsys, "info", "--blocks", "mlp")  # every kind's mlp
    assert code == 0 and {"encoder.mlp:", "predictor.mlp:", "critic.mlp:", "actor.mlp:"} <= set(out.split())
    code, out, _ = run(capsys, "info", "--blocks", "energy")
    assert code == 0 and out.count("energy.") == 5  # l2, l1, smooth_l1, cosine, discounted
    code, _, err = run(capsys, "info", "--blocks", "mpl")
    assert code == 2 and "no block type matches `mpl`" in err and "did you mean `mlp`" in err


def test_info_blocks_composite_lists_the_library_and_the_search_path(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("JEPA_GRAPH_PATH", raising=False)
    code, out, _ = run(capsys, "info", "--blocks", "composite")
    assert code == 0
    assert [ln.split()[0] for ln in out.splitlines()] == [
        "composite.ac_jepa_level", "composite.masked_target", "composite.mlp_jepa_level"]
    assert "One action-conditioned JEPA level" in out
    mine = tmp_path / "my_level.yaml"
    mine.write_text("# My level. More words.\nname: my_level\ndims: {d: 3}\ninputs: {x: {shape: [d]}}\n"
                    "blocks:\n  e: {kind: encoder, type: mlp, in: [x], with: {out: d}}\noutputs: {state: e}\n")
    code, out, _ = run(capsys, "info", "--blocks", "composite.my_level", "--path", str(tmp_path))
    assert code == 0
    assert out.splitlines() == ["composite.my_level  My level.", f"  file: {mine}", "  inputs: x [d]",
                                "  outputs: state", "  with (dims): d=3"]
    code, _, err = run(capsys, "info", "--blocks", "composite.my_levl", "--path", str(tmp_path))
    assert code == 2 and "no composite block `my_levl`" in err and "did you mean `my_level`" in err


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


@pytest.mark.parametrize("where", ["missing folder", "a directory"])
def test_an_unusable_output_path_is_a_message_not_a_traceback(capsys, tmp_path, where):
    target = tmp_path / "no" / "such" / "folder" / "s.json" if where == "missing folder" else tmp_path
    code, _, err = run(capsys, "schema", "-o", str(target))
    assert code == 2
    assert f"error: cannot use `{target}`: " in err and "hint: check the path" in err


# ---------------------------------------------------------------------------------- demo
def test_demo_table_over_a_folder(capsys, tmp_path):
    for name in ("seed_world_model.yaml", "fork.jepa"):
        shutil.copy(SPECS / name, tmp_path / name)
    code, out, err = run(capsys, "demo", "--specs", str(tmp_path), "--batch", "4", "--quick")
    assert code == 0, err
    lines = out.splitlines()
    lines = lines[lines.index(next(ln for ln in lines if ln.startswith("spec "))):]  # after part 1's title
    assert lines[0].split()[:4] == ["spec", "blocks", "params", "outputs"] and lines[0].endswith("forward ms")
    rows = {ln.split()[0]: ln for ln in lines[2:4]}
    assert re.search(r"^seed_world_model\.yaml +6 +19,477 +predictor\[4, 8\], actor\[4, 4\], energy\[4\], loss\[\] +\d+\.\d\d$",
                     rows["seed_world_model.yaml"])
    assert re.search(r"^fork\.jepa +4 +6,264 +predictor\[4, 8\], energy\[4\], loss\[\] +\d+\.\d\d$", rows["fork.jepa"])
    assert "2 specs compiled and ran; 0 failed" in out


def test_demo_reports_a_broken_spec_and_exits_2(capsys, tmp_path):
    shutil.copy(SPECS / "fork.jepa", tmp_path / "fork.jepa")
    (tmp_path / "bad.yaml").write_text(jg.format_spec(SPECS / "fork.jepa", to="yaml").replace("in: [x]", "in: [xx]", 1))
    code, out, err = run(capsys, "demo", "--specs", str(tmp_path), "--batch", "2")  # stops after part 1
    assert code == 2
    assert "bad.yaml:" in err and "unknown reference `xx`" in err and "Traceback" not in err
    assert "fork.jepa" in out and "1 specs compiled and ran; 1 failed" in out


# ------------------------------------------------------------------------ the real command
def test_a_closed_pipe_is_not_a_traceback(monkeypatch, tmp_path):
    class Closed(io.StringIO):
        """stdout of `jepa-graph ... | head -1` after head has gone."""

        def __init__(self, fd):
            super().__init__()
            self.fd = fd

        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return self.fd

    with open(tmp_path / "sink", "w") as sink:
        monkeypatch.setattr("sys.stdout", Closed(sink.fileno()))
        assert main(["info", "--blocks"]) == 0


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
    if ".jepa" not in name or "binary" in name or "empty" in name:  # (.jepa syntax hints: tests/frontend/test_dsl*)
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
