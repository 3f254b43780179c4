"""The package's layout: the layers of docs/architecture.md, kept by import-linter; one directory
per layer and no loose modules; and imports inside functions only with a stated reason.

An import inside a function is there to keep ``import jepa_graph`` and the CLI's start-up light
(no torch, matplotlib, graphviz, lark until needed) or to break a cycle inside a sub-package. Its
reason is a comment: on the import itself, on the line above it, on the function's ``def`` line,
or on the first of a run of imports that directly follow one another.
"""
from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "jepa_graph"
# tool directives, not reasons
MARKERS = re.compile(r"#\s*(noqa|type:|pragma|pylint|isort|fmt:)")


def _comments(source: str) -> dict[int, str]:
    """Line -> the comment on it (real comments only, not a ``#`` inside a string)."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not MARKERS.match(tok.string):
            out[tok.start[0]] = tok.string
    return out


def unreasoned_imports(source: str) -> list[tuple[int, str]]:
    """(line, import) for each import inside a function that carries no reason (module docstring)."""
    comments, lines = _comments(source), source.splitlines()

    def full_line_comment(n: int) -> bool:
        return n in comments and lines[n - 1].lstrip().startswith("#")

    bad: list[tuple[int, str]] = []

    def visit(stmts: list[ast.stmt], fn: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        reasoned_run = False  # the statement before this one is an import with a reason
        for st in stmts:
            if isinstance(st, (ast.Import, ast.ImportFrom)) and fn is not None:
                ok = (reasoned_run or fn.lineno in comments or full_line_comment(st.lineno - 1)
                      or any(n in comments for n in range(st.lineno, st.end_lineno + 1)))
                if not ok:
                    bad.append((st.lineno, lines[st.lineno - 1].strip()))
                reasoned_run = ok
                continue
            reasoned_run = False
            inner = st if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            for field in ("body", "orelse", "finalbody"):
                if isinstance(getattr(st, field, None), list):
                    visit(getattr(st, field), inner)
            for part in getattr(st, "handlers", []) + getattr(st, "cases", []):  # except: / case:
                visit(part.body, inner)

    visit(ast.parse(source).body, None)
    return bad


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_inside_functions_state_their_reason():
    bad = [f"{p.relative_to(ROOT)}:{line}: {text}"
           for p in _modules() for line, text in unreasoned_imports(p.read_text(encoding="utf-8"))]
    assert not bad, ("imports inside functions without a `# reason` (hoist them to the top unless they keep "
                     "`import jepa_graph` light or break a cycle):\n" + "\n".join(bad))


@pytest.mark.parametrize("source, flagged", [
    ("import torch\n", []),  # module level: no reason needed
    ("def f():\n    import torch\n", [2]),
    ("def f():\n    import torch  # torch: only when a model is built\n", []),
    ("def f():\n    # torch: only when a model is built\n    import torch\n", []),
    ("def f():  # torch: only when a model is built\n    import torch\n    x = 1\n    import numpy\n", []),
    ("def f():\n    import torch  # torch: only here\n    from . import a\n\n    from . import b\n", []),  # one run
    ("def f():\n    import torch  # torch: only here\n    x = 1\n    from . import a\n", [4]),  # run broken
    ("def f():\n    import torch  # noqa: F401\n", [2]),  # a tool directive is not a reason
    ("def f():\n    s = '# not a comment'\n    import torch\n", [3]),
    ("def f():\n    x = 1  # about x\n    import torch\n", [3]),  # a comment ending the line above
    ("def f():\n    try:\n        import torch\n    except ImportError:\n        import numpy\n", [3, 5]),
    ("class A:\n    def f(self):\n        if True:\n            def g():\n                import torch\n", [5]),
    ("def f():\n    from .x import (\n        a,  # a: a cycle otherwise\n        b)\n", []),
])
def test_the_reason_rule(source, flagged):
    """The rule above can fail: each case is flagged or accepted as the module docstring says."""
    assert [line for line, _ in unreasoned_imports(source)] == flagged


def _layers_in_docs() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    lines = re.findall(r"`(cli > [a-z_ |>]+)`", text)
    assert lines, "docs/architecture.md states the layers as `cli > ... > core`"
    assert len(set(lines)) == 1, f"docs/architecture.md states the layers differently: {lines}"
    return [layer.strip() for layer in lines[0].split(">")]


def test_docs_and_the_contract_state_the_same_layers():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in contracts["contracts"] if c["type"] == "layers"]
    assert [" | ".join(p.strip() for p in layer.split("|")) for layer in layers] == _layers_in_docs()


def test_one_directory_per_layer_and_no_loose_modules():
    named = {p.strip() for layer in _layers_in_docs() for p in layer.split("|")}
    packages = {d.name for d in PACKAGE.iterdir() if d.is_dir() and any(d.rglob("*.py"))}
    assert not named - packages, f"layers without a sub-package: {sorted(named - packages)}"
    assert not packages - named, (f"sub-packages in no layer: {sorted(packages - named)}; give each a place in "
                                  "docs/architecture.md's layer line and pyproject.toml's contract")
    assert all((PACKAGE / name / "__init__.py").is_file() for name in named)
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules outside the sub-packages: {loose}"


def test_the_layer_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.is_file():
        pytest.skip(f"import-linter is not installed next to {sys.executable} (pip install -e '.[dev]')")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b[1-9]\d* kept, 0 broken", done.stdout), done.stdout
