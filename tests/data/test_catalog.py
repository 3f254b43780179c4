"""The data-source catalog (``jepa_graph.data.catalog``): what each source takes and yields, known
without torch, and ``train.data`` checked with it (``jepa_graph.data.check``, run by ``validate``).

The catalog must not lie: its sources are the registered ones with the same ``Params``, its
declared yields are the keys, per-sample shapes and dtypes of real batches (over settings and
spec inputs that change them), its "does not fit" reasons are the constructors' errors, and the
README's table is the one it generates. The checker reports each mistake located, with a hint,
and the way training would report it.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

import jepa_graph as jg
from jepa_graph.core.tensors import TType
from jepa_graph.data import _SOURCES, DataSource, SourceParams, get_source, graph_inputs, list_sources, make_source
from jepa_graph.data.catalog import CATALOG
from jepa_graph.data.describe import param_rows, readme_table
from jepa_graph.data.check import check_data, data_problems

from conftest import ROOT, SPECS

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine

DTYPES = {torch.float32: "float", torch.int64: "long", torch.bool: "bool"}
F = lambda *s: TType(tuple(s))  # noqa: E731
L = lambda *s: TType(tuple(s), "long")  # noqa: E731

# (source, with:, the spec's inputs): settings and inputs that change what a batch holds
CONFIGS = [
    ("two_rooms", {"episodes": 4, "length": 6}, {}),
    ("two_rooms", {"episodes": 4, "length": 6, "horizon": 3}, {"x": F(3, 16, 16)}),
    ("two_rooms", {"episodes": 4, "length": 6, "horizon": 2, "obs": "pixels"}, {}),
    ("two_rooms", {"episodes": 4, "length": 6, "obs": "state"}, {"x": F(3, 16, 16)}),
    ("two_rooms_wall", {"episodes": 4, "length": 8, "horizon": 5}, {}),
    ("two_rooms_wall", {"episodes": 2, "length": 4, "horizon": 2, "variant": "fixed"}, {"x": F(2, 65, 65)}),
    ("shapes", {}, {}),
    ("shapes", {"patch": 4}, {"image": F(3, 16, 16), "ctx_idx": L(5), "tgt_idx": L(3)}),
    ("shapes", {"size": 24}, {"x1": F(3, 16, 16), "x2": F(3, 16, 16)}),
    ("shapes", {"patch": 4}, {"x": F(3, 8, 8), "ctx_idx": L(2)}),  # one index input: no masks
    ("video", {}, {}),
    ("video", {"patch": 4}, {"clip": F(3, 4, 8, 8), "ctx_idx": L(6), "tgt_idx": L(2)}),
    ("fork", {}, {}),
    ("fork", {"paired": True}, {}),
]


def _batch_layout(batch: dict[str, torch.Tensor]) -> dict[str, TType]:
    return {k: TType(tuple(v.shape[1:]), DTYPES[v.dtype]) for k, v in batch.items()}


# ------------------------------------------------------------------------------ torch-free
PROBE = """\
import sys
import jepa_graph as jg
from jepa_graph.data import source_info, source_names
from jepa_graph.data.catalog import CATALOG
from jepa_graph.data.describe import param_rows, readme_table
from jepa_graph.data.check import data_problems
for name in source_names():
    info = source_info(name)
    param_rows(info.Params)
    info.yields(info.Params(), {})
readme_table()
problems = data_problems(jg.check(sys.argv[1]))
print(len(problems), "torch" in sys.modules)
from jepa_graph.data import list_sources  # the registry proper loads the sampling code
list_sources()
print("torch" in sys.modules)
"""


def test_the_catalog_and_the_check_import_no_torch(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text((SPECS / "two_rooms.yaml").read_text().replace("data: two_rooms", "data: {source: two_room}"))
    done = subprocess.run([sys.executable, "-c", PROBE, str(spec)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False", "True"]  # one problem found; torch only for the samplers


# ------------------------------------------------------------------------- catalog = registry
def test_every_registered_source_is_in_the_catalog_with_its_params():
    assert list_sources() == sorted(CATALOG)
    for name, info in CATALOG.items():
        cls = get_source(name)
        assert cls.Params is info.Params and issubclass(info.Params, SourceParams)
        assert cls.__module__ == f"jepa_graph.data.{info.module}"
        assert info.doc and "\n" not in info.doc
        assert set(info.main) <= set(info.Params.model_fields) and info.main


def test_every_parameter_has_a_one_line_doc():
    for name, info in CATALOG.items():
        for key, typ, default, doc in param_rows(info.Params):
            assert doc and "\n" not in doc and typ and default, (name, key)


def test_parameter_rows_show_types_bounds_and_defaults():
    rows = {r[0]: r[1:3] for r in param_rows(CATALOG["two_rooms"].Params)}
    assert rows["episodes"] == ("int >= 1", "512")
    assert rows["policy"] == ("random|expert|mixed", "mixed")
    assert rows["door"] == ("float > 0, <= 2", "0.4")
    rows = {r[0]: r[1:3] for r in param_rows(CATALOG["shapes"].Params)}
    assert rows["size"] == ("int >= 8 | null", "null") and rows["crop"] == ("[float, float]", "[0.5, 1]")
    assert rows["flip"] == ("bool", "true")


@pytest.mark.parametrize("source, params, inputs", CONFIGS, ids=lambda x: str(x) if isinstance(x, str) else "")
def test_declared_yields_are_what_batches_hold(source, params, inputs):
    info = CATALOG[source]
    batch = make_source(source, params, inputs, seed=1).batch(0, 4)
    declared = info.yields(info.Params(**params), inputs)
    assert _batch_layout(batch) == declared
    for key, t in declared.items():  # each key is described, with its dtype
        assert info.keys[key].dtype == t.dtype, key


def test_every_described_key_is_yielded_in_some_setting():
    for source, info in CATALOG.items():
        seen = set()
        for name, params, inputs in CONFIGS:
            if name == source:
                seen |= set(info.yields(info.Params(**params), inputs))
        assert seen == set(info.keys), source


@pytest.mark.parametrize("source, params, inputs", [
    ("two_rooms", {"horizon": 4, "length": 4}, {}),
    ("two_rooms_wall", {"horizon": 9, "length": 8}, {}),
    ("shapes", {"patch": 5}, {"image": F(3, 16, 16)}),
    ("video", {"tubelet": 3}, {}),
    ("video", {}, {"clip": F(3, 8, 8)}),  # a clip that is no video: the constructor's own error
    ("shapes", {}, {"image": F(3, 16, 16), "ctx_idx": L(3), "tgt_idx": L(2)}),  # 2x2 patches, 5 indices
    ("video", {"patch": 4}, {"clip": F(3, 4, 8, 8), "ctx_idx": L(5), "tgt_idx": L(2)}),  # 2 time steps
    ("video", {"patch": 4}, {"clip": F(3, 4, 8, 8), "ctx_idx": L(6), "tgt_idx": L(4)}),  # 2x2x2 tokens
])
def test_what_does_not_fit_is_the_constructors_error(source, params, inputs):
    info = CATALOG[source]
    try:
        why = info.fits(info.Params(**params), inputs)
    except ValueError as e:
        why = str(e)
    assert why
    with pytest.raises(jg.SpecError) as err:
        make_source(source, params, inputs)
    assert err.value.first.message == f"data source `{source}`: {why}"


def test_the_readme_table_is_the_catalogs():
    readme = (ROOT / "README.md").read_text()
    table = readme_table()
    assert table in readme, "README's data-source table is stale: paste jepa_graph.data.describe.readme_table()"
    rows = [ln for ln in table.splitlines()[2:]]
    assert [re.match(r"\| `(\w+)`", r).group(1) for r in rows] == list(CATALOG)
    assert all(f"`{k}`" in table for info in CATALOG.values() for k in info.keys)


# ------------------------------------------------------------------------------ train.data
TWO_ROOMS = (SPECS / "two_rooms.yaml").read_text()
TRAIN = "train: {steps: 1000, batch_size: 64, lr: 0.001, warmup: 100, data: two_rooms}"
LINE = TWO_ROOMS[:TWO_ROOMS.index(TRAIN)].count("\n") + 1


def _spec(data: str, ext: str = "yaml") -> tuple[jg.Spec, str]:
    assert TRAIN in TWO_ROOMS
    text = TWO_ROOMS.replace(TRAIN, "train: {steps: 10, data: " + data + "}")
    return jg.loads(text, f"spec.{ext}"), text


def _col(text: str, needle: str) -> int:
    line = text.splitlines()[LINE - 1]
    return line.index(needle) + 1


@pytest.mark.parametrize("data, message, at, hint", [
    ("{source: shape}", r"unknown data source `shape`", "shape}", "did you mean `shapes`?"),
    ("{source: fork_source}", r"unknown data source `fork_source`", "fork_source",
     "valid data sources: `fork`, `shapes`, `two_rooms`, `two_rooms_wall`, `video`"),
    ("{source: two_rooms, with: {horizn: 3}}", r"data source `two_rooms`: `horizn`: Extra inputs are not permitted",
     "3}", "did you mean `horizon`?"),
    ("{source: two_rooms, with: {policy: greedy}}", r"data source `two_rooms`: `policy`: String should match",
     "greedy", "`policy` is mixed unless set"),
    ("{source: two_rooms, with: {episodes: true}}", r"`episodes`: `true` is not a number", "true", "`episodes` is 512"),
    ("{source: two_rooms, with: {horizon: 40}}",
     r"data source `two_rooms`: horizon 40 needs trajectories longer than length 32", "{horizon",
     "adjust train.data.with or the spec's inputs"),
    ("{source: two_rooms, rename: {x_next: y_next}}",
     r"train.data.rename: `x_next` is renamed to `y_next`, which is no input of `two_rooms_world_model`", "y_next",
     "did you mean `x_next`?"),
    ("{source: two_rooms, rename: {state: s}}", r"`state` is renamed to `s`, which is no input", "s}",
     "rename maps names the data source yields to the spec's inputs: `x`, `x_next`, `goal`, `z`, `a`"),
    ("{source: two_rooms, rename: {obs: x}}", r"train.data.rename: data source `two_rooms` yields no `obs`", "obs",
     "`two_rooms` yields `x`, `a`"),
    ("{source: two_rooms, rename: {x_seq: x}}", r"data source `two_rooms` yields no `x_seq`", "x_seq",
     "`x_seq`: H+1 observations in a row (with horizon H > 0)"),
])
def test_train_data_problems_are_located_with_a_hint(data, message, at, hint):
    spec, text = _spec(data)
    (d,) = data_problems(jg.check(spec))
    assert re.search(message, d.message), d.message
    assert (d.loc.file, d.loc.line, d.loc.col) == ("spec.yaml", LINE, _col(text, at)), d.format()
    assert d.hint.startswith(hint), d.hint


def test_every_problem_is_listed_at_once():
    spec, _ = _spec("{source: two_rooms, with: {episodes: 0, horizn: 3}, rename: {obs: x, x_next: y}}")
    with pytest.raises(jg.SpecError) as err:
        check_data(jg.check(spec))
    assert [d.message.split(": ", 1)[-1] for d in err.value.diagnostics] == [
        "`episodes`: Input should be greater than or equal to 1", "`horizn`: Extra inputs are not permitted",
        "`x_next` is renamed to `y`, which is no input of `two_rooms_world_model`"]  # yields unknown: params bad


def test_the_jepa_syntax_is_located_too():
    text = (SPECS / "fork.jepa").read_text().replace("data=fork", "data={source=fork, with={paird=true}}")
    spec = jg.loads(text, "fork.jepa")
    (d,) = data_problems(jg.check(spec))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "paird" in ln)
    assert d.message == "data source `fork`: `paird`: Extra inputs are not permitted"
    assert d.hint == "did you mean `paired`?"
    assert (d.loc.line, d.loc.col) == (line, text.splitlines()[line - 1].index("true") + 1)


@pytest.mark.parametrize("data", ["{source: two_rooms, with: {policy: greedy}}", "{source: shapez}",
                                  "{source: two_rooms, with: {horizon: 40}}", "{source: fork, with: {noise: .inf}}"])
def test_validate_says_what_training_would_say(data):
    """The first problem is the one building the source reports, word for word and at the same place."""
    spec, _ = _spec(data)
    graph = jg.check(spec)
    first = data_problems(graph)[0]
    cfg = spec.train.data
    with pytest.raises(jg.SpecError) as err:
        make_source(cfg.source, dict(cfg.params), graph_inputs(graph), 0,
                    lambda *p: spec.source.at(("train", "data") + p))
    assert err.value.first.format() == first.format()


def test_good_train_data_and_none_pass():
    for path in SPECS.iterdir():  # every shipped spec
        if path.suffix in (".yaml", ".jepa"):
            assert data_problems(jg.check(path)) == [], path
    spec, _ = _spec("{source: two_rooms, with: {horizon: 4}, rename: {state: x, state_next: x_next, a_seq: a}}")
    assert data_problems(jg.check(spec)) == []


class _Mine(DataSource):
    """A user's source: registered in Python, its yields unknown until it runs."""

    class Params(SourceParams):
        noise: float = 0.1

    def sample(self, n, gen):
        return {"obs": torch.randn(n, 2, generator=gen)}


def test_a_users_registered_source_is_checked_by_its_params(monkeypatch):
    monkeypatch.setitem(_SOURCES, "mine", _Mine)
    spec, _ = _spec("{source: mine, with: {nois: 1}, rename: {obs: x}}")
    (d,) = data_problems(jg.check(spec))
    assert d.message == "data source `mine`: `nois`: Extra inputs are not permitted"
    assert d.hint == "did you mean `noise`?"
    spec, _ = _spec("{source: mine, rename: {obs: x}}")
    assert data_problems(jg.check(spec)) == []  # what it yields is not declared: rename's keys are not checked
