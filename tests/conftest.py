"""Strict test setup: warnings are errors (pyproject), seeds fixed, paths to the repo's files."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny tensors run fastest so, and the CI machine is shared
    (more threads would oversubscribe its cores). Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spec_path(stem: str) -> Path:
    """The spec file called ``stem`` in specs/, whichever syntax it is written in."""
    found = [p for p in spec_files() if p.stem == stem]
    assert len(found) == 1, f"specs/{stem}.*: {found}"
    return found[0]


def spec_files() -> list[Path]:
    return sorted(p for p in SPECS.iterdir() if p.suffix in (".yaml", ".yml", ".jepa"))
