"""Energy-minimisation audit: misuses that used to run silently or crash deep inside, and the
names DESIGN.md/README promise on ``jepa_graph``."""
from __future__ import annotations

import importlib

import pytest
import torch

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.inference import landscape, latents, minimize


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


# ---------------------------------------------------------------- batches checked before any block runs
def _fork_batch(**over):
    b = {"x": torch.randn(3, 4), "y": torch.randn(3, 4)}
    b.update(over)
    return b


BAD_BATCHES = {
    # name: (batch, message regex); each is refused at `x`'s (or `y`'s) declaration, with a hint
    "float64": (_fork_batch(x=torch.randn(3, 4, dtype=torch.float64)),
                r"input `x` is torch.float64 but the weights of `fork` are torch.float32"),
    "int": (_fork_batch(x=torch.randint(0, 3, (3, 4))),
            r"input `x` holds float values \(\[B, 4\]\), got a torch.int64"),
    "numpy": (_fork_batch(x=torch.randn(3, 4).numpy()),
              r"input `x` should be a torch tensor \[B, 4\], got numpy.ndarray"),
    "list": (_fork_batch(y=[[0.0] * 4] * 3), r"input `y` should be a torch tensor \[B, 4\], got list"),
    "shape": (_fork_batch(x=torch.randn(3, 5)), r"input `x` should be \[B, 4\], got \[3, 5\]"),
    "unbatched": (_fork_batch(x=torch.randn(4)), r"input `x` should be \[B, 4\], got \[4\].*\n(.*\n)*.*`x\[None\]`"),
    "scalar": (_fork_batch(x=torch.tensor(1.0)), r"input `x` has no batch dim"),
}


def _calls():
    from jepa_graph.inference.landscape import latent_landscape
    return {"enumerate": lambda m, b: jg.minimize_energy(m, b, method="enumerate"),
            "cem": lambda m, b: jg.minimize_energy(m, b, method="cem", samples=4, elites=2),
            "gradient": lambda m, b: jg.minimize_energy(m, b, method="gradient", steps=2),
            "free_energy": lambda m, b: jg.free_energy(m, b),
            "landscape": lambda m, b: latent_landscape(m, b),
            "modes": lambda m, b: jg.predict_modes(m, {"x": b["x"]}, y={"y": b["y"]})}


@pytest.mark.parametrize("call", ["enumerate", "cem", "gradient", "free_energy", "landscape", "modes"])
@pytest.mark.parametrize("bad", list(BAD_BATCHES), ids=list(BAD_BATCHES))
def test_bad_batches_are_located_spec_errors_before_any_block_runs(call, bad):
    fork = jg.compile(SPECS / "fork.jepa", seed=0)
    batch, match = BAD_BATCHES[bad]
    with pytest.raises(jg.SpecError, match=match) as e:
        _calls()[call](fork, batch)
    d = e.value.first
    assert d.loc is not None and d.loc.file.endswith("fork.jepa") and d.hint, str(e.value)


def test_batch_size_mismatch_names_each_input():
    fork = jg.compile(SPECS / "fork.jepa", seed=0)
    for call in _calls().values():
        with pytest.raises(jg.SpecError, match=r"disagree on the batch size: `x` has 3, `y` has 4") as e:
            call(fork, _fork_batch(y=torch.randn(4, 4)))
        assert e.value.first.hint


def test_a_block_failing_inside_a_search_is_named_with_its_spec_line():
    # a fault no up-front check sees (a weight of the wrong size): the hoisted encoder, the
    # predictor under predict_modes, and the latent encoder all name the block and its line
    fork = jg.compile(SPECS / "fork.jepa", seed=0)
    fork.blocks.context_encoder[0].weight = torch.nn.Parameter(torch.randn(64, 5))
    batch = _fork_batch()
    line = r"fork\.jepa:14:\d+: block `context_encoder` \(encoder\.mlp\) failed in the energy"
    with pytest.raises(jg.BlockRuntimeError, match=line):
        jg.minimize_energy(fork, batch, method="enumerate")
    with pytest.raises(jg.BlockRuntimeError, match=r"fork\.jepa:14:\d+: block `context_encoder` .*"
                                                   r"predictor `predictor`"):
        jg.predict_modes(fork, {"x": batch["x"]})


def test_a_failing_latent_encoder_is_named():
    from test_minimize import AMORTISED
    model = jg.compile(jg.loads(AMORTISED, "amortised.yaml"), seed=0)
    model.blocks.guess[0].weight = torch.nn.Parameter(torch.randn(16, 3))
    with pytest.raises(jg.BlockRuntimeError, match=r"amortised\.yaml:\d+:\d+: block `guess` .* "
                                                   r"failed in the encoder `guess`"):
        jg.minimize_energy(model, {"x": torch.randn(2, 4), "y": torch.randn(2, 4)})


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_predict_modes_needs_k_of_at_least_one(k):
    fork = jg.compile(SPECS / "fork.jepa", seed=0)
    with pytest.raises(jg.SpecError, match=r"keeps k >= 1 modes per sample, got k=") as e:
        jg.predict_modes(fork, torch.randn(3, 4), k=k)
    assert "leave k out" in e.value.first.hint
    assert jg.predict_modes(fork, torch.randn(3, 4), k=1).z.shape == (3, 1, 2)


def test_misuse_of_init_and_predict_modes_inputs_carries_a_hint(rooms):
    model, batch = rooms
    with pytest.raises(jg.SpecError, match=r"start point of latent `z` has shape \[2, 2\], expected \[3, 2\]") as e:
        jg.minimize_energy(model, batch, over="z", init=torch.zeros(2, 2))
    assert e.value.first.loc is not None and "one row per sample" in e.value.first.hint
    with pytest.raises(jg.SpecError, match=r"start point of latent `z` should be a torch tensor, got list"):
        jg.minimize_energy(model, batch, over="z", init={"z": [[0.0, 0.0]] * 3})
    with pytest.raises(jg.SpecError, match=r"`pred` takes \(x, a\); pass them as a dict") as e:
        jg.predict_modes(model, batch["x"])
    assert e.value.first.hint == 'e.g. predict_modes(model, {"x": ..., "a": ...})'
    from test_minimize import MIXED
    mixed = jg.compile(jg.loads(MIXED), seed=0)
    with pytest.raises(jg.SpecError, match=r"`init` must be a dict by latent name .* \(`c`, `u`\)") as e:
        jg.minimize_energy(mixed, {"x": torch.randn(2, 4), "y": torch.randn(2, 4)}, init=torch.zeros(2, 2))
    assert e.value.first.hint == 'e.g. init={"c": ..., "u": ...}'
