"""Every example runs on its own and exits 0 (smallest first)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    doc = path.read_text().lstrip()
    assert doc.startswith('"""'), f"{path.name} must open with a docstring saying what it shows"
    res = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
