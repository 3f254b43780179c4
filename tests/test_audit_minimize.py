"""Energy-minimisation audit: misuses that used to run silently or crash deep inside, and the
names DESIGN.md/README promise on ``jepa_graph``."""
from __future__ import annotations

import pytest
import torch

import jepa_graph as jg
from conftest import SPECS
from jepa_graph import landscape, latents, minimize


@pytest.fixture(scope="module")
def rooms():
    """two_rooms has one real latent `z` [2]; the batch leaves it out so it is minimised."""
    model = jg.compile(SPECS / "two_rooms.yaml", seed=0)
    torch.manual_seed(0)
    batch = {k: v for k, v in model.example_inputs(3, name="energy").items() if k != "z"}
    return model, batch


def test_enumerate_over_a_real_latent_is_refused_not_silently_gradient(rooms):
    model, batch = rooms
    with pytest.raises(jg.SpecError, match=r"`enumerate` needs a discrete latent; `z` is real"):
        jg.minimize_energy(model, batch, over="z", method="enumerate")
    # the discrete fork latent still enumerates
    fork = jg.compile(SPECS / "fork.jepa", seed=0)
    z, F = jg.minimize_energy(fork, {"x": torch.randn(3, 4), "y": torch.randn(3, 4)}, method="enumerate")
    assert z.shape == (3, 2) and torch.equal(z.sum(1), torch.ones(3)) and F.shape == (3,)


def test_a_spec_declaring_enumerate_on_a_real_latent_is_a_located_error():
    text = (SPECS / "two_rooms.yaml").read_text()
    bad = text.replace("z: {shape: [2]", "z: {inference: {method: enumerate}, shape: [2]", 1)
    assert bad != text
    with pytest.raises(jg.SpecError, match=r"latent `z` is not discrete, so `enumerate` has no values") as e:
        jg.compile(jg.loads(bad, "rooms.yaml"))
    d = e.value.first
    line = bad.splitlines()[d.loc.line - 1]
    assert line[d.loc.col - 1:].startswith("enumerate") and "gradient" in d.hint


@pytest.mark.parametrize("kw", [{"method": "sample", "samples": 0}, {"method": "cem", "samples": 0},
                                {"method": "gradient", "restarts": 0}])
def test_empty_searches_are_refused(rooms, kw):
    model, batch = rooms
    with pytest.raises(ValueError, match=r"samples >= 1 and restarts >= 1"):
        jg.minimize_energy(model, batch, over="z", **kw)


def test_every_method_on_a_real_latent_beats_the_start(rooms):
    model, batch = rooms
    with torch.no_grad():
        start = model.energy(**batch, z=torch.zeros(3, 2))
    for method in ("gradient", "cem", "sample"):
        z, F = jg.minimize_energy(model, batch, over="z", method=method, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            again = model.energy(**batch, z=z)
        assert (F <= start + 1e-6).all(), method  # the start point is among the candidates
        assert torch.isfinite(F).all() and not z.requires_grad
        # F is E + R(z) at z*: at least the plain energy there (R >= 0)
        assert (F.detach() >= again - 1e-6).all(), method


def test_top_level_names():
    assert jg.minimize_energy is minimize.minimize_energy and jg.predict_modes is minimize.predict_modes
    assert jg.infer_latents is minimize.infer_latents and jg.free_energy is minimize.free_energy
    assert jg.NonFiniteEnergyError is latents.NonFiniteEnergyError
    assert issubclass(jg.NonFiniteEnergyError, jg.BlockRuntimeError)
    for name in ("latent_landscape", "energy_along", "plot_latent_landscape", "plot_energy_along"):
        assert getattr(jg, name) is getattr(landscape, name)


def test_a_lazy_name_whose_module_is_missing_is_an_attribute_error(monkeypatch):
    monkeypatch.setitem(jg._LAZY, "nothing_here", "jepa_graph.no_such_module")
    assert not hasattr(jg, "nothing_here")
    with pytest.raises(AttributeError, match=r"jepa_graph\.nothing_here is not available: jepa_graph\.no_such_module"):
        jg.nothing_here
