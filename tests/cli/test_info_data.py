"""``jepa-graph info --data [NAME]``: the data sources, and one's ``with:`` keys and yields, printed
from the catalog without torch; and ``jepa-graph validate`` reporting a bad ``train.data``
(it used to pass ``data: {source: fork_source}`` and leave it to ``train`` to fail)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import Field

from jepa_graph.cli import main
from jepa_graph.data import _SOURCES, DataSource, SourceParams
from jepa_graph.data.catalog import CATALOG
from jepa_graph.data.describe import param_rows

from conftest import ROOT, SPECS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_data_lists_every_source_with_its_description(capsys):
    code, out, err = run(capsys, "info", "--data")
    assert code == 0
    rows = [ln.split(None, 1) for ln in out.splitlines()]
    assert [r[0] for r in rows] == sorted(CATALOG)
    assert all(r[1] == CATALOG[r[0]].doc for r in rows)
    assert err.startswith(f"{len(CATALOG)} data sources; `jepa-graph info --data NAME`")


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_info_data_name_shows_each_parameter_and_what_it_yields(capsys, name):
    code, out, err = run(capsys, "info", "--data", name)
    assert code == 0 and err == ""
    info = CATALOG[name]
    lines = out.splitlines()
    assert lines[0] == f"{name}: {info.doc}"
    for key, typ, default, doc in param_rows(info.Params):  # name, type, default, doc on one line
        assert any(ln.split() == [key, *typ.split(), *default.split(), *doc.split()] for ln in lines), key
    start = lines.index("  yields, per batch of B samples:")
    for key, y in info.keys.items():
        assert any(ln.split()[:1] == [key] and y.about in ln for ln in lines[start:]), key
    assert lines[-1].startswith("  with the defaults and no spec inputs: ")


def test_info_data_two_rooms_in_full(capsys):
    code, out, _ = run(capsys, "info", "--data", "two_rooms")
    assert code == 0
    assert "    horizon   int >= 0             0      > 0: also yield x_seq, a_seq of this many steps" in out
    assert "    x_seq       [B, H+1, obs]  H+1 observations in a row (with horizon H > 0)" in out
    assert out.rstrip().endswith("with the defaults and no spec inputs: x [B, 2], a [B, 2], x_next [B, 2], "
                                 "goal [B, 2], state [B, 2], state_next [B, 2]")


class _Mine(DataSource):
    """My own source, registered in Python."""

    class Params(SourceParams):
        noise: float = Field(0.1, ge=0, description="how noisy")

    def sample(self, n, gen):
        raise AssertionError("info does not sample")


def test_info_data_shows_a_registered_users_source(capsys, monkeypatch):
    monkeypatch.setitem(_SOURCES, "mine", _Mine)
    code, out, _ = run(capsys, "info", "--data")
    assert code == 0 and "mine            My own source, registered in Python." in out.splitlines()
    code, out, _ = run(capsys, "info", "--data", "mine")
    assert code == 0 and out.splitlines() == [
        "mine: My own source, registered in Python.", "  with:", "    noise  float >= 0  0.1  how noisy",
        "  yields: what its sample() returns (not declared)"]


@pytest.mark.parametrize("argv, message", [
    (["info", "--data", "shape"], "error: no data source `shape`\nhint: did you mean `shapes`?"),
    (["info", "--data", "fork_source"], "error: no data source `fork_source`\nhint: valid data sources: `fork`,"),
    (["info", "--data", "--blocks"], "error: give --blocks or --data, not both"),
])
def test_info_data_mistakes_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(message), err


def test_validate_reports_an_unknown_source(capsys, tmp_path):
    text = (SPECS / "two_rooms.yaml").read_text()
    assert "data: two_rooms}" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("data: two_rooms}", "data: {source: fork_source, with: {nosie: 1}}}"))
    code, out, err = run(capsys, "validate", bad, SPECS / "two_rooms.yaml")
    assert code == 2 and out.startswith(f"ok: {SPECS / 'two_rooms.yaml'}")  # the good one still passes
    assert err.startswith(f"{bad}:29:77: error: unknown data source `fork_source`\n"), err
    assert "hint: valid data sources: `fork`, `shapes`, `two_rooms`, `two_rooms_wall`, `video`" in err


def test_validate_reports_data_errors_after_the_specs_warnings(capsys, tmp_path):
    text = (SPECS / "two_rooms.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("data: two_rooms}", "data: {source: two_rooms, with: {horizn: 4}}}")
                   .replace("inputs:\n", "inputs:\n  unused: {shape: [3]}\n", 1))
    code, out, err = run(capsys, "validate", bad)
    assert code == 2 and out == ""
    warning, error = err.index("warning: "), err.index("error: data source `two_rooms`: `horizn`")
    assert warning < error and "hint: did you mean `horizon`?" in err


PROBE = """\
import contextlib, io, sys
from jepa_graph.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [main(argv) for argv in (["info", "--data"], ["info", "--data", "video"], ["validate", sys.argv[1]])]
print(codes, "torch" in sys.modules)
"""


def test_info_data_and_validating_train_data_import_no_torch():
    done = subprocess.run([sys.executable, "-c", PROBE, str(SPECS / "vjepa.jepa")], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 0, 0] False"
