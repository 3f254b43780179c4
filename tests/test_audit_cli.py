"""CLI audit: `info --blocks` (the registry, and one type's inputs and parameters), `demo --quick`
(the table of every spec in a folder), and a reader that leaves a pipe early."""
from __future__ import annotations

import io
import re
import shutil

import pytest

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.cli import main
from jepa_graph.core.registry import list_blocks


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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
    assert code == 0 and out.count("energy.") == 4
    code, _, err = run(capsys, "info", "--blocks", "mpl")
    assert code == 2 and "no block type matches `mpl`" in err and "did you mean `mlp`" in err


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


@pytest.mark.parametrize("where", ["missing folder", "a directory"])
def test_an_unusable_output_path_is_a_message_not_a_traceback(capsys, tmp_path, where):
    target = tmp_path / "no" / "such" / "folder" / "s.json" if where == "missing folder" else tmp_path
    code, _, err = run(capsys, "schema", "-o", str(target))
    assert code == 2
    assert f"error: cannot use `{target}`: " in err and "hint: check the path" in err
