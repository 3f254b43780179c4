"""The CLI's layout: one module per command, listed in ``cli.main.COMMANDS`` and imported
normally, so a missing module is an ImportError rather than a command that quietly vanishes; and
the checking commands start without torch, matplotlib or graphviz."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from jepa_graph.cli.main import COMMANDS, build_parser
from conftest import ROOT, SPECS

CLI = ROOT / "jepa_graph" / "cli"
NOT_COMMANDS = {"__init__", "__main__", "main", "common"}
# DESIGN.md's command table, as far as it exists today, plus `plot` and `energy`
DESIGN_COMMANDS = {"validate", "info", "compile", "render", "fmt", "schema", "train", "demo", "plot", "energy", "plan"}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _name(module) -> str:
    return module.__name__.rpartition(".")[2]


@pytest.mark.parametrize("module", COMMANDS, ids=_name)
def test_each_command_module_registers_its_subcommand(module):
    assert module.__name__ == f"jepa_graph.cli.{_name(module)}"
    assert isinstance(module.HELP, str) and module.HELP
    sub = _subcommands(build_parser())[_name(module)]
    assert sub.get_default("func") is module.run
    assert sub.format_usage().startswith(f"usage: jepa-graph {_name(module)}")


def test_the_command_modules_are_the_files_in_cli():
    """Every file in cli/ but the plumbing is a listed command, and every listed command is a file."""
    files = {p.stem for p in CLI.glob("*.py")} - NOT_COMMANDS
    assert files == {_name(m) for m in COMMANDS}
    assert list(_subcommands(build_parser())) == [_name(m) for m in COMMANDS]


def test_the_commands_design_lists_are_present():
    assert DESIGN_COMMANDS <= set(_subcommands(build_parser()))


def test_a_missing_command_module_is_an_import_error():
    """Blocking one command module's import breaks the CLI loudly (it used to drop the command)."""
    probe = ("import sys\n"
             "sys.modules['jepa_graph.cli.energy'] = None  # as if the file were gone\n"
             "try:\n"
             "    import jepa_graph.cli.main\n"
             "except ImportError as e:\n"
             "    print('ImportError', e.name)\n"
             "else:\n"
             "    print('imported')\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "ImportError jepa_graph.cli.energy"


# Runs the CLI's main in a fresh interpreter and prints its exit status and which heavy modules
# were imported by then; output is swallowed so it cannot interleave with the report.
PROBE = """\
import contextlib, io, sys
from jepa_graph.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        rc = main(sys.argv[1:])
    except SystemExit as e:
        rc = e.code
print(rc, sorted(m for m in ("torch", "matplotlib", "graphviz") if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["validate", str(SPECS / "two_rooms.yaml")],
    ["fmt", "--check", str(SPECS / "two_rooms.yaml")],
    ["schema"],
    ["info", "--blocks"],
    ["info", "--blocks", "mlp"],
], ids=" ".join)
def test_checking_commands_import_no_torch(argv):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 []", f"jepa-graph {' '.join(argv)}: exit status, heavy modules: {done.stdout}"


def test_the_probe_sees_torch_when_a_command_needs_it():
    """The probe above can fail: `compile` builds a torch model, and the probe reports torch."""
    argv = ["compile", str(SPECS / "two_rooms.yaml")]
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True)
    rc, heavy = done.stdout.split(" ", 1)
    assert rc == "0" and "'torch'" in heavy, done.stdout + done.stderr


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "jepa_graph.cli", "validate", str(SPECS / "two_rooms.yaml")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {SPECS / 'two_rooms.yaml'} (")
