"""Gradient minimisation stops each sample on convergence, says which samples converged, and its
defaults reach a grid search's minimum.

The audit's cases: the fork model (specs/fork.jepa) with its binary latent made ``[1] box(-2, 2)``
and ``[2] real``, at initialisation and after a short training, 8 samples each; every sample's F
must lie within 1% of a dense grid's minimum (2001 points on the box; 401 x 401 over a square grown
until the minimiser lies inside it, then 401 x 401 around that minimiser)."""
from __future__ import annotations

import logging

import pytest
import torch

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.data.fork import make_fork
from jepa_graph.search import Continuous, descend

FORK = (SPECS / "fork.jepa").read_text()
LATENT = "latent z : [2] discrete(2) infer enumerate"
VARIANTS = {"box": "latent z : [1] box(-2, 2)", "real": "latent z : [2] real"}
QUAD = """
name: quad
dims: {obs: 6}
inputs: {y: {shape: [obs]}}
latents: {z: {shape: [3], regularizer: {l2: 0.1}}}
blocks:
  dec: {kind: predictor, type: mlp, in: [z], with: {hidden: [], out: obs}}
  E:   {kind: energy, type: l2, in: [dec, y]}
objective: {E: 1.0}
"""


# the old default search, 20 Adam steps at lr 0.1 from z = 0 (0, 0: no convergence test)
INNER = " infer gradient(optimizer=adam, steps=20, lr=0.1, restarts=1, tol_e=0, tol_z=0)"


def fork_variant(kind: str, infer: str = ""):
    assert LATENT in FORK
    return jg.loads(FORK.replace(LATENT, VARIANTS[kind] + infer), f"fork_{kind}.jepa")


def fork_batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    d = make_fork(n, seed=1000 + seed)
    return {"x": d["x"], "y": d["y"]}


@torch.inference_mode()
def _grid_min(model, batch, b: int, grid: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The lowest energy of sample ``b`` over the points ``grid`` (G, d), and where."""
    best, at = float("inf"), grid[0]
    for chunk in grid.split(40_000):
        e = model.energy(x=batch["x"][b:b + 1].expand(len(chunk), -1), y=batch["y"][b:b + 1].expand(len(chunk), -1),
                         z=chunk)
        i = int(e.argmin())
        if float(e[i]) < best:
            best, at = float(e[i]), chunk[i]
    return best, at


def _square(centre: torch.Tensor, half: float, n: int = 401) -> torch.Tensor:
    axes = [torch.linspace(float(c) - half, float(c) + half, n) for c in centre]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)


def grid_minimum(model, batch, kind: str) -> torch.Tensor:
    """Per sample (B,): the minimum of E over a dense grid holding the minimiser."""
    out = []
    for b in range(batch["x"].shape[0]):
        if kind == "box":
            out.append(_grid_min(model, batch, b, torch.linspace(-2, 2, 2001)[:, None])[0])
            continue
        half, n = 4.0, 101
        while True:  # the real latent is unbounded: grow the square until its minimiser is inside
            e, z = _grid_min(model, batch, b, _square(torch.zeros(2), half, n))
            if z.abs().max() >= 0.99 * half:
                half *= 2
                assert half <= 128, "no minimiser found"
            elif n == 101:  # found on a coarse grid: now the dense one over that square
                n = 401
            else:
                break
        out.append(min(e, _grid_min(model, batch, b, _square(z, 2 * half / 400))[0]))
    return torch.tensor(out)


@pytest.fixture(scope="module")
def forks():
    """(kind, trained, seed) -> (model, 8 samples, their grid minimum), built once for the module.
    Trained: 100 steps on the spec's `fork` data with the old inner search (cheap; the search under
    test runs on the trained weights, with the defaults)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cases = {}
    try:
        for kind in VARIANTS:
            for seed in (0, 1, 2):
                cases[kind, False, seed] = jg.compile(fork_variant(kind), seed=seed)
            for seed in (0, 1):
                trainee = jg.compile(fork_variant(kind, INNER), seed=seed)
                jg.train(trainee, steps=100, batch_size=16, seed=seed, progress=False)
                model = jg.compile(fork_variant(kind), seed=seed)
                model.load_state_dict(trainee.state_dict())
                cases[kind, True, seed] = model
        out = {}
        for (kind, trained, seed), model in cases.items():
            batch = fork_batch(8, seed)
            out[kind, trained, seed] = model, batch, grid_minimum(model, batch, kind)
        return out
    finally:
        torch.set_num_threads(threads)


CASES = [(k, False, s) for k in VARIANTS for s in (0, 1, 2)] + [(k, True, s) for k in VARIANTS for s in (0, 1)]


@pytest.mark.parametrize("kind,trained,seed", CASES)
def test_defaults_reach_the_grid_minimum(forks, kind, trained, seed):
    model, batch, F_grid = forks[kind, trained, seed]
    found = jg.minimize_energy(model, batch, over="z", return_info=True)
    F = found.F.detach()
    above = (F - F_grid) / F_grid.abs()
    assert (above <= 0.01).all(), f"samples above the grid's minimum by {above.tolist()}"
    assert found.converged.all() and (found.steps < 100).all()  # stopped by the tolerances, not the cap


@pytest.mark.parametrize("kind,trained,seed", [("box", False, 0), ("real", True, 0)])
def test_the_old_default_stops_far_from_the_minimum(forks, kind, trained, seed):
    """The audit's finding, so the test above can fail: Adam for 20 steps at lr 0.1 (the old
    default) ends above the grid's minimum, and says it did not converge."""
    model, batch, F_grid = forks[kind, trained, seed]
    found = jg.minimize_energy(model, batch, over="z", optimizer="adam", steps=20, lr=0.1, restarts=1,
                               return_info=True)
    assert ((found.F.detach() - F_grid) / F_grid.abs() > 0.01).any()
    assert not found.converged.any() and (found.steps == 20).all()


def quad():
    model = jg.compile(jg.loads(QUAD), seed=0)
    return model, torch.randn(5, 6, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("optimizer,cap", [("lbfgs", 100), ("adam", 400)])
def test_an_easy_quadratic_converges_well_before_the_cap(optimizer, cap):
    model, y = quad()
    found = jg.minimize_energy(model, {"y": y}, optimizer=optimizer, steps=cap, restarts=1, return_info=True)
    assert found.converged.all() and (found.steps < cap // 4).all() and (found.steps >= 2).all()
    if optimizer == "adam":  # (L-BFGS ends a quadratic exactly, its gradient gone, tolerances or not)
        again = jg.minimize_energy(model, {"y": y}, optimizer=optimizer, steps=cap, tol_e=0, tol_z=0, restarts=1,
                                   return_info=True)
        assert (again.steps > 2 * found.steps).all()  # without the test it runs on (to a fixed point, or the cap)
        assert (found.F <= again.F + 1e-4).all()  # to no lower energy


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_one_step_is_not_convergence_and_the_cap_is_logged(optimizer, caplog):
    model, y = quad()
    found = jg.minimize_energy(model, {"y": y}, optimizer=optimizer, steps=1, return_info=True)
    assert not found.converged.any() and (found.steps == 1).all() and found.capped == 5
    with caplog.at_level(logging.WARNING, logger="jepa_graph.inference"):
        jg.minimize_energy(model, {"y": y}, optimizer=optimizer, steps=1)
    assert f"5 of 5 sample(s) hit the step cap (steps=1, {optimizer})" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jepa_graph.inference"):
        jg.minimize_energy(model, {"y": y}, optimizer=optimizer, steps=500)
        jg.minimize_energy(model, {"y": y}, optimizer=optimizer, steps=1, tol_e=0, tol_z=0)  # to the cap, as asked
    assert "step cap" not in caplog.text


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_converged_row_stops_moving_while_the_others_go_on(optimizer):
    """Problem 0 starts at its minimum: it converges at once (L-BFGS: its gradient is 0; Adam:
    after `window` = 2 steps that change nothing) and keeps its point exactly; problem 1 starts
    far away and takes more steps. Each ends where it ends alone."""
    target = torch.tensor([[0.5, -0.3], [3.0, 2.0]])

    def f(p):
        a = p["a"]
        return ((a - target.repeat(a.shape[0] // 2, 1)) ** 2).sum(1)

    space = {"a": Continuous((2,))}
    kw = dict(steps=300, lr=1.0 if optimizer == "lbfgs" else 0.1, optimizer=optimizer, tol_e=1e-6, tol_z=1e-3)
    init = {"a": torch.tensor([[0.5, -0.3], [0.0, 0.0]])}
    best = descend(f, space, 2, init=init, **kw)
    assert best.converged.all()
    assert int(best.steps[0]) == (0 if optimizer == "lbfgs" else 2) and int(best.steps[1]) > 2
    assert torch.equal(best.params["a"][0], init["a"][0])
    for b in range(2):
        alone = descend(lambda p, b=b: ((p["a"] - target[b]) ** 2).sum(1), space, 1,
                        init={"a": init["a"][b:b + 1]}, **kw)
        torch.testing.assert_close(alone.params["a"][0], best.params["a"][b], atol=1e-6, rtol=0)
        assert int(alone.steps[0]) == int(best.steps[b])


def test_default_restarts_keep_a_sample_independent_of_its_batch(forks):
    """Without a generator, restart r starts every sample from the same fixed draw: a sample's
    result is the same alone, beside others, and on a second call."""
    model, batch, _ = forks["real", True, 0]
    z, F = jg.minimize_energy(model, batch, over="z")
    z2, _ = jg.minimize_energy(model, batch, over="z")
    assert torch.equal(z, z2)
    for b in (0, 5):
        zb, Fb = jg.minimize_energy(model, {k: v[b:b + 1] for k, v in batch.items()}, over="z")
        torch.testing.assert_close(Fb[0], F[b], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(zb[0], z[b], atol=1e-3, rtol=0)  # the same basin; within tol_z


def test_enumeration_is_converged_and_sampling_has_no_test():
    fork = jg.compile(SPECS / "fork.jepa", seed=0)
    batch = fork_batch(4, 0)
    found = jg.minimize_energy(fork, batch, method="enumerate", return_info=True)
    assert found.z.shape == (4, 2) and found.converged.all() and (found.steps == 0).all()
    z, F = jg.minimize_energy(fork, batch, method="enumerate")
    assert torch.equal(z, found.z) and torch.equal(F, found.F)  # the plain return is unchanged
    model, y = quad()
    for method in ("cem", "sample"):
        found = jg.minimize_energy(model, {"y": y}, method=method, return_info=True)
        assert found.converged is None and found.steps is None and found.capped == 0


def test_a_latent_declares_its_search():
    """`infer gradient(...)` sets the optimizer and the cap; a call overrides them."""
    model = jg.compile(fork_variant("real", " infer gradient(optimizer=adam, steps=3, restarts=2, tol_z=0.5)"), seed=0)
    batch = fork_batch(4, 0)
    found = jg.minimize_energy(model, batch, over="z", return_info=True)
    assert (found.steps <= 3).all() and not found.converged.any()  # Adam's 3 steps: not converged
    found = jg.minimize_energy(model, batch, over="z", optimizer="lbfgs", steps=100, tol_z=1e-3, return_info=True)
    assert found.converged.all()
    with pytest.raises(ValueError, match=r"optimizer must be 'adam' or 'lbfgs', got 'sgd'"):
        jg.minimize_energy(model, batch, over="z", optimizer="sgd")


def test_training_runs_the_same_search_and_logs_a_capped_one_once(caplog):
    """The trainer's inner z-minimisation is minimize_energy's, `train.latent_steps` its cap: a cap
    of 1 stops every sample unconverged, logged once a run; the default cap is not hit."""
    model = jg.compile(fork_variant("box"), seed=0)
    with caplog.at_level(logging.WARNING, logger="jepa_graph.training"):
        jg.train(model, steps=3, batch_size=8, latent_steps=1, progress=False)
    lines = [r.getMessage() for r in caplog.records if "step cap" in r.getMessage()]
    assert len(lines) == 1 and "latent inference stopped 8 of 8 sample(s) at its step cap (1)" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        jg.train(jg.compile(fork_variant("box"), seed=0), steps=3, batch_size=8, progress=False)
    assert "step cap" not in caplog.text
