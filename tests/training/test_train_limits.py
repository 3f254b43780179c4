"""Settings that are numbers but no setting: infinite rates and noise, step counts past a billion,
data sources that would not fit in memory. Each is refused, located, before training starts."""
from __future__ import annotations

import pytest

import jepa_graph as jg
from jepa_graph.data import _SOURCES, DataSource, SourceParams, make_source

from conftest import SPECS

TWO_ROOMS = (SPECS / "two_rooms.yaml").read_text()


TRAIN = "train: {steps: 1000, batch_size: 64, lr: 0.001, warmup: 100, data: two_rooms}"


@pytest.mark.parametrize("setting, message", [
    ("lr: .inf", r"`train.lr`: Input should be a finite number"),
    ("lr: 0.001, weight_decay: .inf", r"`train.weight_decay`: Input should be a finite number"),
    ("lr: 0.001, steps: 99999999999999999999999", r"`train.steps`: .*less than or equal to 1000000000"),
])
def test_infinite_or_endless_settings_are_refused(setting, message):
    assert TRAIN in TWO_ROOMS
    text = TWO_ROOMS.replace(TRAIN, "train: {batch_size: 64, data: two_rooms, " + setting + "}")
    with pytest.raises(jg.SpecError, match=message) as info:
        jg.loads(text, "two_rooms.yaml")
    assert info.value.first.loc is not None and info.value.first.loc.line == TWO_ROOMS[:TWO_ROOMS.index(TRAIN)].count("\n") + 1


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_data_source_numbers_must_be_finite(value):
    with pytest.raises(jg.SpecError, match="`noise`: Input should be a finite number"):
        make_source("two_rooms", {"noise": value}, {})


class _Hungry(DataSource):
    """Collects everything up front, like the Two Rooms source; ``fail`` says how."""

    class Params(SourceParams):
        fail: str = "alloc"

    def __init__(self, params, inputs, seed=0):
        super().__init__(params, inputs, seed)
        if params.fail == "alloc":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory")
        raise RuntimeError("shape '[2, 3]' is invalid for input of size 5")

    def sample(self, n, gen):
        return {}


def test_a_source_that_cannot_allocate_is_a_located_error(monkeypatch):
    monkeypatch.setitem(_SOURCES, "hungry", _Hungry)
    with pytest.raises(jg.SpecError, match="could not be built: .*can't allocate memory") as info:
        make_source("hungry", {}, {})
    assert "reduce them" in info.value.first.hint


def test_a_bug_inside_a_source_is_not_disguised(monkeypatch):
    monkeypatch.setitem(_SOURCES, "hungry", _Hungry)
    with pytest.raises(RuntimeError, match="is invalid for input"):
        make_source("hungry", {"fail": "bug"}, {})


def test_a_collect_once_source_too_big_for_memory_is_refused_before_collecting():
    with pytest.raises(jg.SpecError, match=r"episodes x \(length \+ 1\) = 33,000,000,000 steps is more than"):
        make_source("two_rooms", {"episodes": 1_000_000_000}, {})
    with pytest.raises(jg.SpecError, match=r"`noise`: Input should be less than or equal to 10"):
        make_source("two_rooms", {"noise": 1e308}, {})  # finite, but no noise level: the expert would be random
