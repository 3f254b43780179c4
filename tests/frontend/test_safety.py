"""Safety: a spec is data. Loading one never constructs objects, imports modules or runs code.

- YAML tags that would build Python objects are refused (and nothing runs while refusing).
- The library never calls ``yaml.load``, ``eval``, ``exec`` or an unsafe ``torch.load``.
- Alias expansion and nesting are bounded ("billion laughs").
- Block types come from the registry: a spec naming an import path gets a clean "unknown type".
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import jepa_graph as jg
import jepa_graph.frontend.parse_yaml as parse_yaml

PKG = Path(jg.__file__).resolve().parent

SPEC = """\
name: safe
inputs:
  x: {shape: [4]}
blocks:
  enc: {kind: encoder, type: mlp, in: [x], with: {out: 8}}
  tgt: {kind: encoder, share: enc, in: [x]}
  E: {kind: energy, type: l2, in: [enc, tgt]}
objective: {E: 1.0}
"""


# ------------------------------------------------------------------------------- YAML tags
@pytest.mark.parametrize("value, tag", [
    ("!!python/object/apply:builtins.exec [\"open('{marker}', 'w').write('ran')\"]", "!!python/object/apply:builtins.exec"),
    ("!!python/object/new:builtins.open ['{marker}', 'w']", "!!python/object/new:builtins.open"),
    ("!!python/object:collections.OrderedDict {{}}", "!!python/object:collections.OrderedDict"),
    ("!!python/name:os.system", "!!python/name:os.system"),
    ("!!python/module:os", "!!python/module:os"),
    ("!!python/tuple [1, 2]", "!!python/tuple"),
    ("!!set {{a, b}}", "!!set"),
    ("!!omap [a: 1]", "!!omap"),
    ("!custom thing", "!custom"),
    ("!!binary aGVsbG8=", "!!binary"),  # decoded to bytes before: the only scalar tag that built a non-text value
    ("!!timestamp 2024-01-01", "!!timestamp"),
])
def test_object_tags_are_refused_and_nothing_runs(value, tag, tmp_path):
    if tag == "!!timestamp":  # an explicit timestamp tag reads as the text written, like a plain date
        assert jg.loads(SPEC.replace("name: safe", "name: safe\ndescription: " + value), "t.yaml").description == "2024-01-01"
        return
    marker = tmp_path / "PWNED"
    text = SPEC.replace("name: safe", "name: " + value.format(marker=marker))
    with pytest.raises(jg.SpecError) as info:
        jg.loads(text, "tagged.yaml")
    d = info.value.first
    assert d.message == f"unsupported YAML tag `{tag}`"
    assert (d.loc.line, d.loc.col) == (1, 7)
    assert d.hint == "specs are plain data: remove the tag"
    assert not marker.exists()


def test_tags_are_refused_anywhere_in_the_tree():
    text = SPEC.replace("with: {out: 8}", "with: !!python/object:builtins.dict {out: 8}")
    with pytest.raises(jg.SpecError, match=r"unsupported YAML tag `!!python/object:builtins.dict`") as info:
        jg.loads(text, "deep.yaml")
    assert (info.value.first.loc.line, info.value.first.loc.col) == (5, 50)


def test_standard_scalar_tags_still_work():
    spec = jg.loads(SPEC.replace("{E: 1.0}", "{E: !!float 1}").replace("name: safe", "name: !!str safe"), "std.yaml")
    assert spec.objective == {"E": 1.0} and spec.name == "safe"


@pytest.mark.parametrize("value, text", [("!!int ", ""), ("!!float ", ""), ("!!bool maybe", "maybe"),
                                         ("!!int 0x", "0x"), ("!!float x", "x")])
def test_standard_tags_on_text_not_of_their_type_are_located_errors(value, text):
    # were an IndexError or KeyError traceback (`!!int` alone, `!!bool maybe`), or "number with 1 digits is too long"
    with pytest.raises(jg.SpecError) as info:
        jg.loads(SPEC.replace("{E: 1.0}", f"{{E: {value}}}"), "typed.yaml")
    d = info.value.first
    assert d.message == f"`{text}` is not a valid `{value.split()[0]}` value"
    assert (d.loc.line, d.loc.col) == (8, 16)
    assert d.hint == "remove the tag, or write a value of that type"


def test_yes_and_no_keys_stay_names():
    """YAML 1.1 would read `on:`/`yes:` keys as booleans; a spec keeps the name as written."""
    spec = jg.loads(SPEC.replace("  x: {shape: [4]}", "  x: {shape: [4]}\n  on: {shape: [2]}"), "on.yaml")
    assert "on" in spec.inputs


# ----------------------------------------------------------------------- duplicate keys
def test_duplicate_keys_anywhere_are_errors():
    text = SPEC.replace("with: {out: 8}", "with: {out: 8, out: 16}")
    with pytest.raises(jg.SpecError, match="duplicate key `out`") as info:
        jg.loads(text, "dup.yaml")
    d = info.value.first
    assert str(d.loc) == "dup.yaml:5:59" and [str(loc) for _, loc in d.related] == ["dup.yaml:5:51"]


# ---------------------------------------------------------------------------- alias bombs
def _bomb(levels: int, fan: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_where_it_explodes():
    with pytest.raises(jg.SpecError) as info:
        jg.loads(_bomb(9), "bomb.yaml")  # 9**9 ~ 387 million values if expanded
    d = info.value.first
    assert d.message == f"YAML expands to more than {parse_yaml.MAX_NODES:,} values (an alias bomb?)"
    # the first anchor whose expansion passes the limit: 9**6 > 200,000 > 9**5
    assert (d.loc.line, d.loc.col) == (6, 5)  # at the anchor `&l5`
    assert "aliases" in d.hint


def test_alias_limit_is_a_count_of_expanded_values(monkeypatch):
    monkeypatch.setattr(parse_yaml, "MAX_NODES", 120)
    small = SPEC.replace("name: safe", "name: safe\ndescription: small")
    jg.loads(small, "ok.yaml")  # about 30 values
    shared = small + "extra: &e [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nmore: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    with pytest.raises(jg.SpecError, match="more than 120 values"):
        jg.loads(shared, "aliases.yaml")


def test_reasonable_aliases_are_fine():
    text = SPEC.replace("with: {out: 8}", "with: &w {out: 8}").replace(
        "tgt: {kind: encoder, share: enc, in: [x]}", "tgt: {kind: encoder, type: mlp, in: [x], with: *w}")
    model = jg.compile(jg.loads(text, "alias.yaml"))
    assert model.graph.nodes["tgt"].params.out == 8


def test_nesting_is_bounded():
    deep = "name: x\nblocks: " + "[" * 200 + "]" * 200 + "\n"
    with pytest.raises(jg.SpecError, match=f"nested more than {parse_yaml.MAX_DEPTH} levels deep"):
        jg.loads(deep, "deep.yaml")


# ---------------------------------------------------------------- specs cannot name code
@pytest.mark.parametrize("kind, type_, message", [
    ("encoder", "os.system", r"`os\.system` is not a block type"),
    ("encoder", "jepa_graph.cli.main", r"`jepa_graph\.cli\.main` is not a block type"),
    ("encoder", "torch.nn.Linear", r"`torch\.nn\.Linear` is not a block type"),
    ("encoder", "__import__", r"unknown encoder type `__import__`"),
    ("op", "system", r"unknown op type `system`"),
    ("composite", "../../etc/passwd", r"`\.\./\.\./etc/passwd` is not a block type"),
    ("composite", "os", r"unknown composite block `os`"),
])
def test_import_paths_are_unknown_types(kind, type_, message):
    text = f"name: code\ninputs:\n  x: {{shape: [4]}}\nblocks:\n  b: {{kind: {kind}, type: '{type_}', in: [x]}}\n"
    with pytest.raises(jg.SpecError, match=message) as info:
        jg.check(jg.loads(text, "code.yaml"))
    d = info.value.first
    assert str(d.loc) == "code.yaml:5:" + str(text.splitlines()[4].index(f"'{type_}'") + 1)  # the quoted value
    assert d.hint


def test_unknown_type_answers_with_registry_names():
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.loads(SPEC.replace("type: mlp", "type: mpl"), "typo.yaml"))
    assert info.value.first.hint == "did you mean `mlp`?"


# ------------------------------------------------------------------------ the source itself
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f"{ast.unparse(f.value)}.{f.attr}" if isinstance(f, ast.Attribute) else ""
            yield name, node


SOURCES = sorted(PKG.rglob("*.py"))

# Every dynamic import in the library, with the expression it imports. A spec must never reach
# one: each imports a name from a fixed table in the library. Add a new one here only after
# checking that no spec value flows into it.
IMPORT_SITES = {
    ("__init__.py", "_LAZY[name]"),
    ("core/registry.py", "'jepa_graph.primitives'"),
    ("data/__init__.py", "f'{__name__}.{mod}'"),
}


def test_library_never_evaluates_code_or_loads_unsafely():
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(PKG).as_posix()
        for name, call in _calls(tree):
            where = f"{rel}:{call.lineno}"
            if name in ("eval", "exec", "__import__", "builtins.eval", "builtins.exec"):
                problems.append(f"{where}: {name}()")
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
                        "pickle.load", "pickle.loads", "marshal.loads"):
                problems.append(f"{where}: {name}()")
            if name == "torch.load":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in call.keywords)
                if not safe:
                    problems.append(f"{where}: torch.load without weights_only=True")
            if name in ("importlib.import_module", "import_module"):
                if (rel, ast.unparse(call.args[0])) not in IMPORT_SITES:
                    problems.append(f"{where}: import_module({ast.unparse(call.args[0])}) is not a reviewed import site")
    assert not problems, "\n".join(problems)


def test_the_scan_sees_the_library():
    names = {p.relative_to(PKG).as_posix() for p in SOURCES}
    assert {"frontend/parse_yaml.py", "core/registry.py", "cli/main.py", "training/checkpoint.py"} <= names
    # the YAML front end composes nodes with the safe loader, it never constructs tagged objects
    calls = {name for name, _ in _calls(ast.parse((PKG / "frontend" / "parse_yaml.py").read_text()))}
    assert "yaml.compose_all" in calls and not {"yaml.load", "yaml.safe_load"} & calls


def test_plain_dates_stay_text():
    spec = jg.loads(SPEC.replace("name: safe", "name: safe\ndescription: 2024-01-01"), "dated.yaml")
    assert spec.description == "2024-01-01"


def test_fullwidth_digits_are_not_numbers():
    text = "jepa wide\ndims emb=\uff16\uff14\ninput x : [emb]\n"
    with pytest.raises(jg.SpecError, match="unexpected character") as info:
        jg.loads(text, "wide.jepa")
    assert (info.value.first.loc.line, info.value.first.loc.col) == (2, 10)


# ------------------------------------------------------------------ files that are not spec files
@pytest.mark.parametrize("make, message", [
    (lambda p: os.symlink("/dev/zero", p), "is not a regular file"),
    (lambda p: os.mkfifo(p), "is not a regular file"),  # opening it would block until a writer came
    (lambda p: p.write_bytes(b"#" * (17 * 2**20)), "is larger than 16 MiB"),
])
def test_devices_pipes_and_huge_files_are_refused(tmp_path, make, message):
    path = tmp_path / "spec.yaml"
    make(path)
    with pytest.raises(jg.SpecError, match=message) as info:
        jg.load(path)
    assert info.value.first.hint


def test_from_dict_with_code_is_a_spec_error():
    data = {"name": "x", "blocks": {"e": {"kind": "encoder", "with": {"act": print}}}}
    with pytest.raises(jg.SpecError, match=r"`blocks\.e\.with\.act` holds builtin_function_or_method") as info:
        jg.from_dict(data)
    assert "plain data" in info.value.first.hint


def test_binary_metrics_log_is_a_clear_error(tmp_path):
    from jepa_graph.training.metrics import read_metrics
    (tmp_path / "metrics.jsonl").write_bytes(bytes(range(128, 256)))
    with pytest.raises(jg.SpecError, match="is not a metrics log"):
        read_metrics(tmp_path)
