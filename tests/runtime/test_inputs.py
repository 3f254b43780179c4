"""One input check and one culprit locator: the same bad batch gets the same located message
from a model call, from training's first step and from energy minimisation; a block that fails
is named the same way by all three.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import jepa_graph as jg
from jepa_graph.runtime.inputs import InputError
from conftest import SPECS

pytestmark = pytest.mark.usefixtures("one_thread")
FORK = SPECS / "fork.jepa"
B = 8  # training's first batch is the whole (N = B) data set, so all three paths see B rows


def _batch(**over) -> dict:
    b = {"x": torch.randn(B, 4), "y": torch.randn(B, 4)}
    b.update(over)
    return {k: v for k, v in b.items() if v is not None}


def _z() -> torch.Tensor:
    return torch.eye(2)[torch.randint(0, 2, (B,))]  # fork's latent: a one-hot of discrete(2)


def _paths():
    """Each path, called on a batch of observations (x, y); a model call also takes the latent."""
    return {
        "model.energy": lambda m, b: m.energy(**b, z=_z()),
        "jg.train": lambda m, b: jg.train(m, b, steps=1, batch_size=B, progress=False, tensorboard=False),
        "jg.minimize_energy": lambda m, b: jg.minimize_energy(m, b, method="enumerate"),
    }


BAD = {
    "float64": (_batch(x=torch.randn(B, 4, dtype=torch.float64)),
                "input `x` is torch.float64 but the weights of `fork` are torch.float32", 10),
    "wrong shape": (_batch(y=torch.randn(B, 5)), "input `y` should be [B, 4], got [8, 5]", 11),
    "missing input": (_batch(y=None), "input `y` is missing", 11),
    "long": (_batch(x=torch.zeros(B, 4, dtype=torch.long)),
             "input `x` holds float values ([B, 4]), got a torch.int64 tensor", 10),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_a_bad_batch_gets_one_located_message_on_every_path(bad):
    batch, message, line = BAD[bad]
    seen = {}
    for path, call in _paths().items():
        model = jg.compile(FORK, seed=0)
        with pytest.raises(InputError) as e:
            call(model, batch)
        d = e.value.first
        seen[path] = (d.message, str(d.loc), d.hint)
        assert isinstance(e.value, jg.SpecError) and isinstance(e.value, jg.BlockRuntimeError), path
    assert len(set(seen.values())) == 1, seen
    message_, loc, hint = seen["model.energy"]
    assert message_ == message and loc.startswith(f"{FORK}:{line}:") and hint


def test_bad_inputs_are_refused_before_any_block_runs(monkeypatch):
    model = jg.compile(FORK, seed=0)

    def boom(*args, **kw):
        raise AssertionError("a block ran")

    monkeypatch.setattr(model.blocks.context_encoder, "forward", boom)
    for batch, message, _ in BAD.values():
        for call in _paths().values():
            with pytest.raises(InputError, match=rf"{message[:20]}"):
                call(model, batch)


def test_the_weights_dtype_follows_the_model():
    """After ``model.double()`` float64 inputs fit and float32 ones are the mismatch."""
    model = jg.compile(FORK, seed=0)
    batch = _batch()
    model.energy(**batch, z=_z())  # runs, and caches what each call checks
    model.double()
    with pytest.raises(InputError, match=r"input `x` is torch.float32 but the weights of `fork` are torch.float64"):
        model.energy(**batch, z=_z())
    assert model.energy(**{k: v.double() for k, v in batch.items()}, z=_z().double()).dtype == torch.float64


def test_rollout_step_inputs_are_checked():
    model = jg.compile(SPECS / "two_rooms.yaml", seed=0)
    feed = model.example_inputs(3, name="rollout", horizon=4)
    with pytest.raises(InputError) as e:
        model.rollout(**{**feed, "a": feed["a"][:, 0]})  # one step's action, not a sequence
    d = e.value.first
    assert d.message == "input `a` should be [B, H, 2], got [3, 2]" and "the horizon H" in d.hint
    with pytest.raises(InputError) as e:
        model.rollout(**{**feed, "z": feed["z"][:, :2]})
    assert e.value.first.message == "the inputs disagree on the horizon H: `z` has 2 steps, `a` has 4 steps"


def test_a_failing_block_is_named_the_same_way_on_every_path():
    """A fault no input check sees (a weight of the wrong size): each path names the block and its line."""
    where = {"model.energy": "in program `energy`", "jg.train": "at training step 1",
             "jg.minimize_energy": "in the energy"}
    for path, call in _paths().items():
        model = jg.compile(FORK, seed=0)
        model.blocks.context_encoder[0].weight = nn.Parameter(torch.randn(64, 5))
        with pytest.raises(jg.BlockRuntimeError) as e:
            call(model, _batch(z=_z()) if path == "jg.train" else _batch())  # z given: the training step itself runs
        assert not isinstance(e.value, jg.SpecError), path
        head = f"{FORK}:14:1: block `context_encoder` (encoder.mlp) failed {where[path]}"
        assert str(e.value).startswith(head), (path, str(e.value))
