"""Checking needs no torch: loading, checking, formatting a spec, the JSON Schema and the block
list run in a fresh interpreter without importing it; ``jg.compile`` then imports it as usual.

Each test runs its script in a subprocess, so modules the rest of the suite imported don't count.
A meta-path hook records who imports torch first, so a failure names the import chain.
The names ``jepa_graph`` loads lazily all resolve, to the module its table says.
"""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import jepa_graph as jg
from conftest import ROOT, spec_files

# A composite from blocks/ (found on the library's own search path), from a string
COMPOSITE = """\
jepa two_levels
dims obs=4, s=8
input x, y : [obs]
low  = composite.mlp_jepa_level(x, y, obs=obs, state=s)
objective low.E + low.reg
"""

SCRIPT = """\
import sys, traceback

class Watch:  # records the stack of the first `import torch`, imports nothing itself
    first = None
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and Watch.first is None:
            Watch.first = "".join(traceback.format_stack(limit=30))
        return None

sys.meta_path.insert(0, Watch())

import jepa_graph as jg
from jepa_graph.frontend.schema import json_schema

def torch_free(what):
    assert "torch" not in sys.modules, f"{what} imported torch:\\n{Watch.first}"

torch_free("import jepa_graph")
for path in sys.argv[2:]:
    spec = jg.load(path)
    graph = jg.check(spec)
    assert graph.nodes, path
    for to in ("yaml", "jepa"):
        assert jg.format_spec(spec, to).strip(), (path, to)
composite = jg.loads(COMPOSITE, "two_levels.jepa")
assert "low/context_encoder" in jg.check(composite).nodes  # inlined from blocks/
jg.format_spec(composite, "yaml")
assert json_schema()["$defs"]
blocks = jg.list_blocks()
for cls in blocks:  # every family's shape rule
    example = cls.example()
    if example is not None:
        cls().infer(cls.Params.model_validate(example[0], context={"dims": {}}), example[1])
torch_free("loading and checking specs")

if sys.argv[1] == "compile":
    model = jg.compile(sys.argv[2], seed=0)
    out = model(**model.example_inputs(2))
    assert "torch" in sys.modules and out
print("ok", len(blocks))
"""


def _run(mode: str) -> str:
    specs = [str(p) for p in spec_files()]
    assert {p.rsplit(".", 1)[-1] for p in specs} == {"yaml", "jepa"}  # both syntaxes are covered
    script = SCRIPT.replace("COMPOSITE", repr(COMPOSITE))
    done = subprocess.run([sys.executable, "-c", script, mode, *specs], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_loading_and_checking_specs_imports_no_torch():
    out = _run("check")
    assert out.startswith("ok") and int(out.split()[1]) >= 20  # the registry's blocks were all loaded


def test_compile_after_checking_imports_torch_and_builds():
    assert _run("compile").startswith("ok")


# ------------------------------------------------- the lazy names on ``jepa_graph`` resolve
def test_a_lazy_name_whose_module_is_missing_is_an_import_error(monkeypatch):
    """A broken table entry fails loudly: hasattr() would hide an ImportError turned AttributeError."""
    monkeypatch.setitem(jg._LAZY, "nothing_here", "jepa_graph.no_such_module")
    with pytest.raises(ModuleNotFoundError, match=r"jepa_graph\.no_such_module"):
        jg.nothing_here
    with pytest.raises(AttributeError, match=r"no attribute 'not_a_name'"):
        jg.not_a_name


@pytest.mark.parametrize("name", sorted(set(jg.__all__) | set(jg._LAZY)))
def test_every_public_and_lazy_name_resolves(name):
    value = getattr(jg, name)
    assert value is not None
    if name in jg._LAZY:  # the name lives where the table says (a name in it, or the sub-package itself)
        module = importlib.import_module(jg._LAZY[name])
        assert value is (module if module.__name__ == f"jepa_graph.{name}" else getattr(module, name))
