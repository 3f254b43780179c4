"""The fork in the road: a binary latent lets a JEPA represent a bimodal future.

Both specs train on the same data (jepa_graph.data.fork): a car before a fork (x) and after it
(y), on the left or right branch at random. With z (specs/fork.jepa), F(x, y) = min_z E is low
on both branches and high between them, and the two modes Pred(s_x, z) sit on the branches.
Without z (specs/fork_no_latent.jepa) the predictor lands on the average of the branches.
Distances are measured in the frozen target encoder's space, relative to the branch separation.
"""
from __future__ import annotations

import pytest
import torch

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.data.fork import fork_batches, make_fork
from jepa_graph.inference.minimize import free_energy, loss_with_latents

STEPS, BATCH, LR = 200, 64, 3e-3


def train(spec: str, seed: int = 0):
    """The small explicit loop: free energy at a rising inverse temperature for the first half
    (every value of z gets gradient, so neither branch is left without a mode), then the
    zero-temperature F(x, y) = E(x, y, z*) with z* = argmin_z E found by enumeration."""
    model = jg.compile(SPECS / spec, seed=seed)
    latent = bool(model.spec.latents)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)
    data = fork_batches(BATCH, seed=seed)
    for i in range(STEPS):
        batch = next(data)
        if latent and i < STEPS // 2:
            loss = free_energy(model, batch, beta=10 ** (1 + 4 * i / STEPS)).mean()  # beta 10 -> 1000
        else:
            loss = loss_with_latents(model, batch)  # z* detached, then the objective at z*
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def fork():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest on a shared machine
    try:
        torch.manual_seed(0)
        models = {"latent": train("fork.jepa"), "plain": train("fork_no_latent.jepa")}
    finally:
        torch.set_num_threads(n)
    d = make_fork(256, seed=123, paired=True)  # held out; pairs share x: left, then right
    x, left, right = d["x"][::2], d["y_left"][::2], d["y_right"][::2]
    return models, {"x": x, "left": left, "right": right, "mid": (left + right) / 2}


def targets(model, d):
    with torch.no_grad():
        s = {k: model.blocks.target_encoder(d[k]) for k in ("left", "right", "mid")}
    return s, (s["left"] - s["right"]).norm(dim=1)  # (B, state) each, separation (B,)


def test_energy_is_low_on_both_branches_and_high_between(fork):
    models, d = fork
    model = models["latent"]
    with torch.no_grad():
        F = {k: jg.minimize_energy(model, {"x": d["x"], "y": d[k]}, over="z", method="enumerate")[1]
             for k in ("left", "right", "mid")}
        plain = {k: models["plain"].energy(x=d["x"], y=d[k]) for k in ("left", "right", "mid")}
    worst_branch = torch.maximum(F["left"], F["right"])
    assert (F["mid"] > 5 * worst_branch).float().mean() > 0.95
    assert F["mid"].mean() > 20 * worst_branch.mean()
    # the latent model fits each branch far better than the model without z can
    assert worst_branch.mean() < 0.05 * torch.minimum(plain["left"], plain["right"]).mean()


def test_modes_land_on_the_two_branches(fork):
    models, d = fork
    model = models["latent"]
    s, sep = targets(model, d)
    with torch.no_grad():
        modes = jg.predict_modes(model, {"x": d["x"]}, k=2)
    assert modes.pred.shape == (len(sep), 2, 8)
    dl = (modes.pred - s["left"][:, None]).norm(dim=2) / sep[:, None]  # (B, 2) relative distances
    dr = (modes.pred - s["right"][:, None]).norm(dim=2) / sep[:, None]
    assert (dl.argmin(1) != dr.argmin(1)).all()  # one mode per branch, never both on one
    assert dl.min(1).values.mean() < 0.15 and dr.min(1).values.mean() < 0.15
    assert (dl.min(1).values < 0.3).all() and (dr.min(1).values < 0.3).all()
    # and neither mode sits at the average, where no car goes
    dm = (modes.pred - s["mid"][:, None]).norm(dim=2) / sep[:, None]
    assert dm.min(1).values.mean() > 0.35


def test_without_a_latent_the_prediction_is_the_average(fork):
    models, d = fork
    model = models["plain"]
    s, sep = targets(model, d)
    with torch.no_grad():
        pred = model.blocks.predictor(model.blocks.context_encoder(d["x"]))
        E = {k: model.energy(x=d["x"], y=d[k]) for k in ("left", "right", "mid")}
    to_mid = (pred - s["mid"]).norm(dim=1) / sep
    assert to_mid.mean() < 0.15
    assert ((pred - s["left"]).norm(dim=1) / sep).mean() > 0.35
    assert (E["mid"] < E["left"]).float().mean() > 0.95 and (E["mid"] < E["right"]).float().mean() > 0.95
