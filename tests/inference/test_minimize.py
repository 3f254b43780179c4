"""Energy minimisation over latents: every method against a reference (closed form or a per-sample
loop), domains, several latents, gradients through F, amortised inference, non-finite energies;
then misuses that used to run silently or crash deep inside (a search that cannot run, bad batches,
a failing block named with its spec line), and the names DESIGN.md/README promise on ``jepa_graph``."""
from __future__ import annotations

import logging

import pytest
import torch

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.inference import landscape, latents, minimize
from jepa_graph.inference.latents import NonFiniteEnergyError
from jepa_graph.inference.minimize import free_energy, infer_latents, latent_encoder_loss, loss_with_latents



pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine


# E(y, z) = mean_j (W z + b - y)_j^2 + R(z): a ridge regression in z, solvable in closed form.
QUAD = """
name: quad
dims: {obs: 6, zd: 3}
inputs: {y: {shape: [obs]}}
latents: {z: {shape: [zd], regularizer: {l2: 0.1}}}
blocks:
  dec: {kind: predictor, type: mlp, in: [z], with: {out: obs}}
  E:   {kind: energy, type: l2, in: [dec, y]}
objective: {E: 1.0, z.l2: 1.0}
"""

# One discrete and one real latent feeding one predictor.
MIXED = """
name: mixed
dims: {obs: 4}
inputs: {x: {shape: [obs]}, y: {shape: [obs]}}
latents:
  c: {shape: [3], domain: {discrete: 3}}
  u: {shape: [2], regularizer: {l1: 0.05}}
blocks:
  enc:  {kind: encoder, type: mlp, in: [x], with: {out: obs}}
  pred: {kind: predictor, type: mlp, in: [enc, c, u], with: {hidden: [16], out: obs}}
  E:    {kind: energy, type: l2, in: [pred, y]}
objective: {E: 1.0}
"""


def quad():
    model = jg.compile(jg.loads(QUAD), seed=0)
    y = torch.randn(5, 6)
    lin = model.blocks.dec[0]
    W, b = lin.weight.detach(), lin.bias.detach()  # (6, 3), (6,)
    d = W.shape[0]
    A = W.T @ W / d + 0.1 * torch.eye(3)
    z_ref = torch.linalg.solve(A, (W.T @ (y - b).T) / d).T  # (5, 3)
    return model, y, z_ref


def energy_at(model, batch, z):
    with torch.no_grad():
        return model.energy(**batch, z=z)


def test_regulariser_carries_its_declared_coefficient():
    model, y, _ = quad()
    z = torch.randn(5, 3)
    with torch.no_grad():
        plain = (model.blocks.dec(z) - y).pow(2).mean(1)
    torch.testing.assert_close(energy_at(model, {"y": y}, z), plain + 0.1 * z.pow(2).sum(1))


@pytest.mark.parametrize("optimizer,steps,lr,tol", [("adam", 400, 0.05, 2e-2), ("lbfgs", 30, None, 1e-3)])
def test_gradient_reaches_the_closed_form_minimum(optimizer, steps, lr, tol):
    model, y, z_ref = quad()
    z, F = jg.minimize_energy(model, {"y": y}, over="z", method="gradient", optimizer=optimizer, steps=steps, lr=lr)
    assert z.shape == (5, 3) and F.shape == (5,)
    torch.testing.assert_close(z, z_ref, atol=tol, rtol=0)
    F_ref = energy_at(model, {"y": y}, z_ref)
    assert (F >= F_ref - 1e-5).all() and (F - F_ref).max() < tol
    assert (F < energy_at(model, {"y": y}, torch.zeros(5, 3))).all()


def test_cem_and_sample_improve_on_the_start_and_cem_gets_close():
    model, y, z_ref = quad()
    F_ref, F0 = energy_at(model, {"y": y}, z_ref), energy_at(model, {"y": y}, torch.zeros(5, 3))
    _, F_s = jg.minimize_energy(model, {"y": y}, method="sample", samples=32)
    assert (F_s <= F0 + 1e-6).all()  # the start point is one of the candidates
    z_c, F_c = jg.minimize_energy(model, {"y": y}, method="cem", steps=15, samples=64, elites=8)
    assert (F_c < F0).all() and (F_c - F_ref).max() < 1e-3
    torch.testing.assert_close(z_c, z_ref, atol=5e-2, rtol=0)
    assert (F_c <= F_s + 1e-6).mean(dtype=torch.float) >= 0.8


@pytest.mark.parametrize("method,optimizer,steps", [("gradient", "adam", 50), ("gradient", "lbfgs", 5),
                                                     ("cem", "adam", 50), ("sample", "adam", 50)])
def test_box_domain_is_respected(method, optimizer, steps):
    text = QUAD.replace("regularizer: {l2: 0.1}}", "domain: {box: [-0.05, 0.05]}, regularizer: {l2: 0.1}}")
    model = jg.compile(jg.loads(text), seed=0)
    y = 3 * torch.randn(6, 6)  # the unconstrained minimum lies far outside the box
    # L-BFGS's line search evaluates unprojected points; none of them may be returned
    z, F = jg.minimize_energy(model, {"y": y}, method=method, optimizer=optimizer, steps=steps)
    assert z.min() >= -0.05 and z.max() <= 0.05
    assert (z.abs() > 0.049).any()  # pushed onto the boundary
    torch.testing.assert_close(F, energy_at(model, {"y": y}, z))  # F is the energy at the z* returned
    assert (F <= energy_at(model, {"y": y}, torch.zeros(6, 3)) + 1e-6).all()


# MIXED made smooth for L-BFGS: a tanh predictor and an L2 R(u) (ReLU and L1 kinks stall it)
SMOOTH = MIXED.replace("regularizer: {l1: 0.05}", "regularizer: {l2: 0.05}") \
              .replace("hidden: [16], out: obs}", "hidden: [16], out: obs, act: tanh}")


def mixed_batch(gen, n=8, spread=1.0):
    """x, y and c for MIXED; each sample's y scaled by 10^u, u uniform in [-spread, spread]."""
    y = torch.randn(n, 4, generator=gen) * 10 ** (spread * (2 * torch.rand(n, 1, generator=gen) - 1))
    return {"x": torch.randn(n, 4, generator=gen), "y": y, "c": torch.eye(3)[torch.randint(0, 3, (n,), generator=gen)]}


@pytest.mark.parametrize("restarts", [1, 4])
def test_lbfgs_through_a_concatenated_latent_matches_adam(restarts):
    """The latent reaches the predictor through a concat (a strided gradient slice). Every row runs
    its own L-BFGS, so on a smooth energy each sample reaches Adam's minimum in a tenth of the steps,
    also beside samples of a hundred times its scale (one L-BFGS over the batch's summed energy,
    steered by the large ones, stalled up to 0.7 above it)."""
    model = jg.compile(jg.loads(SMOOTH), seed=0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        batch = mixed_batch(gen, spread=1.0)
        kw = dict(over="u", method="gradient", restarts=restarts)
        _, F_adam = jg.minimize_energy(model, batch, optimizer="adam", steps=400, lr=0.05,
                                       generator=torch.Generator().manual_seed(1), **kw)
        u, F_lbfgs = jg.minimize_energy(model, batch, optimizer="lbfgs", steps=40,
                                        generator=torch.Generator().manual_seed(1), **kw)
        assert u.shape == (8, 2)
        with torch.no_grad():  # R(u) = 0.05 |u|^2 is declared, not in the objective: minimisation adds it
            torch.testing.assert_close(F_lbfgs, model.energy(**batch, u=u) + 0.05 * u.pow(2).sum(1))
            F0 = model.energy(**batch, u=torch.zeros(8, 2))
        assert (F_lbfgs < F0).all()
        assert (F_lbfgs <= F_adam + 1e-4).all(), (F_lbfgs - F_adam).max()


def test_lbfgs_result_of_a_sample_does_not_depend_on_the_batch():
    """Each row (sample, restart, value of a discrete latent) keeps its own curvature history and
    line search: a sample minimised in a batch ends where it ends alone (up to the rounding that
    the batch size changes), and where it ends beside other samples in a batch of the same size."""
    model = jg.compile(jg.loads(SMOOTH), seed=0)
    gen = torch.Generator().manual_seed(0)
    batch = mixed_batch(gen, spread=0.0)
    del batch["c"]  # enumerated: 3 rows per sample and restart
    zs, F = jg.minimize_energy(model, batch, over=["c", "u"], method="gradient", optimizer="lbfgs", steps=40)
    for b in range(8):
        z1, F1 = jg.minimize_energy(model, {k: v[b:b + 1] for k, v in batch.items()}, over=["c", "u"],
                                    method="gradient", optimizer="lbfgs", steps=40)
        assert torch.equal(z1["c"][0], zs["c"][b])
        torch.testing.assert_close(z1["u"][0], zs["u"][b], atol=1e-5, rtol=0)
        torch.testing.assert_close(F1[0], F[b], atol=1e-5, rtol=0)
    kw = dict(over=["c", "u"], method="gradient", optimizer="lbfgs", steps=40, restarts=2)
    za, Fa = jg.minimize_energy(model, batch, generator=torch.Generator().manual_seed(1), **kw)
    other = {k: torch.cat([v[:1], torch.randn(7, 4, generator=gen)]) for k, v in batch.items()}
    zb, Fb = jg.minimize_energy(model, other, generator=torch.Generator().manual_seed(1), **kw)
    torch.testing.assert_close(zb["u"][0], za["u"][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(Fb[0], Fa[0], atol=1e-6, rtol=0)


def test_projected_lbfgs_reaches_the_box_constrained_minimum():
    """QUAD in the box [0, 1]^3: some coordinates end on a bound, some inside. The reference is
    projected gradient descent in float64, run to convergence."""
    model = jg.compile(jg.loads(QUAD.replace("regularizer: {l2: 0.1}}", "domain: {box: [0.0, 1.0]}, "
                                             "regularizer: {l2: 0.1}}")), seed=0)
    y = 3 * torch.randn(32, 6, generator=torch.Generator().manual_seed(0))
    lin = model.blocks.dec[0]
    W, b = lin.weight.detach().double(), lin.bias.detach().double()
    A = W.T @ W / 6 + 0.1 * torch.eye(3, dtype=torch.float64)  # E = z'Az - 2 c'z + const per sample
    c = (y.double() - b) @ W / 6
    z_ref = torch.zeros(32, 3, dtype=torch.float64)
    for _ in range(5000):
        z_ref = (z_ref - (z_ref @ A - c) / torch.linalg.eigvalsh(A).max()).clamp(0.0, 1.0)
    assert ((z_ref == 0) | (z_ref == 1)).any() and ((z_ref > 0.01) & (z_ref < 0.99)).any()
    z, F = jg.minimize_energy(model, {"y": y}, method="gradient", optimizer="lbfgs", steps=30)
    torch.testing.assert_close(z.double(), z_ref, atol=1e-5, rtol=0)
    assert z.min() >= 0 and z.max() <= 1
    torch.testing.assert_close(F, energy_at(model, {"y": y}, z))


@pytest.mark.parametrize("method", ["enumerate", "gradient", "cem", "sample"])
def test_discrete_latent_matches_a_per_sample_loop(method):
    model = jg.compile("specs/fork.jepa", seed=0)
    batch = {"x": torch.randn(7, 4), "y": torch.randn(7, 4)}
    z, F = jg.minimize_energy(model, batch, over="z", method=method, steps=3, samples=16, elites=4)
    for b in range(7):
        one = {k: v[b:b + 1] for k, v in batch.items()}
        e = torch.stack([energy_at(model, one, torch.eye(2)[k:k + 1])[0] for k in range(2)])
        assert int(z[b].argmax()) == int(e.argmin()) and z[b].sum() == 1
        torch.testing.assert_close(F[b].detach(), e.min())


def test_several_latents_at_once_and_a_subset_with_the_rest_given():
    model = jg.compile(jg.loads(MIXED), seed=0)
    batch = {"x": torch.randn(4, 4), "y": torch.randn(4, 4)}
    zs, F = jg.minimize_energy(model, batch, over=["c", "u"], method="gradient", steps=150, lr=0.05)
    assert set(zs) == {"c", "u"} and zs["c"].shape == (4, 3) and zs["u"].shape == (4, 2)
    per_value = []
    for k in range(3):  # the discrete latent given, minimise over the real one only
        c = torch.eye(3)[k].expand(4, 3)
        _, Fk = jg.minimize_energy(model, {**batch, "c": c}, over="u", steps=150, lr=0.05)
        per_value.append(Fk.detach())
    per_value = torch.stack(per_value)  # (3, B)
    torch.testing.assert_close(F.detach(), per_value.min(0).values, atol=1e-5, rtol=0)
    assert (zs["c"].argmax(1) == per_value.argmin(0)).all()
    # the declared l1 on u is not in the objective; inference adds it anyway
    with torch.no_grad():
        manual = model.energy(**batch, c=zs["c"], u=zs["u"]) + 0.05 * zs["u"].abs().sum(1)
    torch.testing.assert_close(F.detach(), manual)


def test_gradients_flow_to_the_weights_through_F_not_through_z():
    model = jg.compile(jg.loads(MIXED), seed=0)
    batch = {"x": torch.randn(6, 4), "y": torch.randn(6, 4)}
    zs, F = jg.minimize_energy(model, batch, method="gradient", steps=20)
    assert not zs["c"].requires_grad and not zs["u"].requires_grad and F.requires_grad
    F.sum().backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    (model.energy(**batch, **zs) + 0.05 * zs["u"].abs().sum(1)).sum().backward()
    for g, p in zip(got, model.parameters()):
        torch.testing.assert_close(g, p.grad)
    assert any(g.abs().sum() > 0 for g in got)


def test_inner_search_leaves_weight_gradients_alone():
    model, y, _ = quad()
    infer_latents(model, {"y": y}, method="gradient", steps=5)
    assert all(p.grad is None for p in model.parameters())


def test_free_energy_lies_between_min_and_mean():
    model = jg.compile("specs/fork.jepa", seed=0)
    batch = {"x": torch.randn(5, 4), "y": torch.randn(5, 4)}
    with torch.no_grad():
        e = torch.stack([model.energy(**batch, z=torch.eye(2)[k].expand(5, 2)) for k in range(2)])
        _, F = jg.minimize_energy(model, batch)
        for beta in (0.1, 10.0):
            Fb = free_energy(model, batch, beta=beta)
            assert (Fb >= F - 1e-6).all() and (Fb <= e.mean(0) + 1e-6).all()
        torch.testing.assert_close(free_energy(model, batch, beta=1e5), F, atol=1e-4, rtol=0)


def test_predict_modes_discrete_and_continuous():
    model = jg.compile("specs/fork.jepa", seed=0)
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    modes = jg.predict_modes(model, x, k=2)
    assert modes.pred.shape == (3, 2, 8) and modes.z.shape == (3, 2, 2) and modes.ranked_by == "prior"
    with torch.no_grad():
        for j in range(2):
            ref = model.blocks.predictor(model.blocks.context_encoder(x), modes.z[:, j])
            torch.testing.assert_close(modes.pred[:, j], ref)
    ranked = jg.predict_modes(model, {"x": x}, y={"y": y})
    assert ranked.ranked_by == "energy" and (ranked.score[:, 0] <= ranked.score[:, 1]).all()
    with torch.no_grad():
        torch.testing.assert_close(ranked.score[:, 0], model.energy(x=x, y=y, z=ranked.z[:, 0]))
    cont = jg.compile(jg.loads(MIXED), seed=0)
    m = jg.predict_modes(cont, {"x": x, "c": torch.eye(3)[:3]}, k=5, over="u", samples=20)
    assert m.z.shape == (3, 5, 2) and m.ranked_by == "prior"
    assert (m.z[:, 0] == 0).all() and (m.score[:, :-1] <= m.score[:, 1:]).all()


def test_predict_modes_refuses_non_finite_predictions():
    model = jg.compile("specs/fork.jepa", seed=0)
    with torch.no_grad():
        model.blocks.predictor[0].weight[0, -1] = float("nan")  # only a z input column: one mode goes NaN
    with pytest.raises(NonFiniteEnergyError, match=r"predictions of `predictor` are NaN.*block `predictor` \(predictor"):
        jg.predict_modes(model, torch.randn(3, 4), k=2)


AMORTISED = MIXED.replace("u: {shape: [2], regularizer: {l1: 0.05}}",
                          "u: {shape: [2], regularizer: {l1: 0.05}, encoder: guess}") \
                 .replace("objective:", "  guess: {kind: predictor, type: mlp, in: [x, y], with: {hidden: [16], out: 2}}\n"
                          "objective:")


def test_amortised_inference_starts_from_the_encoder_and_learns_z_star():
    model = jg.compile(jg.loads(AMORTISED), seed=0)
    assert not model.graph.warnings
    batch = {"x": torch.randn(64, 4), "y": torch.randn(64, 4), "c": torch.eye(3)[torch.arange(64) % 3]}
    with torch.no_grad():
        guess = model.blocks.guess(batch["x"], batch["y"])
    z, _ = jg.minimize_energy(model, batch, over="u", method="sample", samples=1)
    torch.testing.assert_close(z, guess)  # the start point is the encoder's guess
    opt = torch.optim.Adam(model.blocks.guess.parameters(), lr=1e-2)
    target = infer_latents(model, batch, over="u", steps=50, lr=0.05, use_encoder=False)
    first = latent_encoder_loss(model, target).item()
    for _ in range(150):
        loss = latent_encoder_loss(model, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert latent_encoder_loss(model, target).item() < 0.3 * first
    total = loss_with_latents(model, batch, over="u", steps=5)
    assert total.dim() == 0 and total.requires_grad


@pytest.mark.parametrize("text,match", [
    (AMORTISED.replace("encoder: guess", "encoder: gues"), r"did you mean `guess`"),
    (AMORTISED.replace("encoder: guess", "encoder: y"), r"must name an encoder or predictor block; `y` is a input"),
    (AMORTISED.replace("out: 2}", "out: 3}"), r"latent `u` is \[B, 2\], but its encoder `guess` gives \[B, 3\]"),
    (AMORTISED.replace("in: [x, y], with: {hidden: [16], out: 2}", "in: [x, u], with: {hidden: [16], out: 2}"),
     r"its encoder `guess` depends on `u` itself"),
    (MIXED.replace("c: {shape: [3]", "c: {shape: [4]"), r"latent `c` is discrete\(3\) but has shape \[B, 4\]"),
])
def test_latent_spec_errors_are_located(text, match):
    with pytest.raises(jg.SpecError, match=match) as e:
        jg.compile(jg.loads(text))
    assert e.value.first.loc is not None and e.value.first.hint


def test_bad_calls_name_what_is_wrong():
    model = jg.compile(jg.loads(MIXED), seed=0)
    batch = {"x": torch.randn(2, 4), "y": torch.randn(2, 4)}
    with pytest.raises(jg.SpecError, match=r"`uu` is not a latent.*\n.*did you mean `u`"):
        jg.minimize_energy(model, batch, over="uu")
    with pytest.raises(jg.SpecError, match=r"needs inputs `c` in the batch"):
        jg.minimize_energy(model, batch, over="u")
    with pytest.raises(jg.SpecError, match=r"unknown minimisation method `newton`"):
        jg.minimize_energy(model, batch, method="newton")
    with pytest.raises(jg.SpecError, match=r"input `y` should be \[B, 4\], got \[2, 5\]"):
        jg.minimize_energy(model, {"x": batch["x"], "y": torch.randn(2, 5)})


def test_nan_from_a_block_is_reported_by_name_never_picked():
    model = jg.compile("specs/fork.jepa", seed=0)
    with torch.no_grad():
        model.blocks.predictor[0].weight[0, 0] = float("nan")
    batch = {"x": torch.randn(3, 4), "y": torch.randn(3, 4)}
    with pytest.raises(NonFiniteEnergyError, match=r"fork.jepa:\d+:\d+: energy is NaN .*block `predictor` "
                                                   r"\(predictor.mlp\)"):
        jg.minimize_energy(model, batch)
    hoisted = jg.compile("specs/fork.jepa", seed=0)  # the encoders run once, before the search
    with torch.no_grad():
        hoisted.blocks.context_encoder[0].bias[1] = float("inf")
    with pytest.raises(NonFiniteEnergyError, match=r"block `context_encoder` \(encoder.mlp\)"):
        jg.minimize_energy(hoisted, batch)
    clean = jg.compile("specs/fork.jepa", seed=0)
    with pytest.raises(NonFiniteEnergyError, match=r"input `y` contains NaN"):
        jg.minimize_energy(clean, {"x": batch["x"], "y": torch.full((3, 4), float("nan"))})


def test_diverging_descent_is_reported():
    # Adam takes whatever step lr gives: z jumps to 1e30 and the energy overflows
    model, y, _ = quad()
    with pytest.raises(NonFiniteEnergyError, match=r"block `E` \(energy.l2\) gives non-finite.*"
                                                   r"`z` reached \|z\| = [0-9.e+]+: the minimiser diverged; lower `lr`"):
        jg.minimize_energy(model, {"y": y}, method="gradient", optimizer="adam", lr=1e30, steps=5)
    # every block finite (a tanh predictor), the sum overflows through R(u): still "diverged"
    bounded = jg.compile(jg.loads(MIXED.replace("out: obs}}\n  E:", "out: obs, act: tanh}}\n  E:")
                                  .replace("{l1: 0.05}", "{l2: 0.1}")), seed=0)
    batch = {"x": torch.randn(2, 4), "y": torch.randn(2, 4), "c": torch.eye(3)[[0, 1]]}
    with pytest.raises(NonFiniteEnergyError, match=r"every block is finite; the sum of the energy terms overflows "
                                                   r"\(R\(z\) of u\); `u` reached \|u\| = 1e\+30: "
                                                   r"the minimiser diverged"):
        jg.minimize_energy(bounded, batch, over="u", method="gradient", optimizer="adam", lr=1e30, steps=5)


@pytest.mark.parametrize("lr", [1e10, 1e30])
def test_lbfgs_backtracks_from_a_huge_lr_to_the_minimum(lr):
    # a first step of 1e30 overflows (a non-finite trial only shortens the step) and one of 1e10
    # needs more than ten shrinks: the line search keeps shrinking until the step moves nothing
    model, y, z_ref = quad()
    z, F = jg.minimize_energy(model, {"y": y}, method="gradient", optimizer="lbfgs", lr=lr, steps=30, restarts=1)
    torch.testing.assert_close(z, z_ref, atol=1e-4, rtol=1e-4)


def test_lbfgs_warns_when_a_row_cannot_leave_its_start(caplog):
    model, y, _ = quad()
    with torch.no_grad():
        model.blocks.dec[0].weight.fill_(1e30)  # any z != 0 overflows; z = 0 (the start) is finite
    with caplog.at_level(logging.WARNING, logger="jepa_graph.search"):  # one start: a prior draw would overflow
        z, F = jg.minimize_energy(model, {"y": y}, method="gradient", optimizer="lbfgs", steps=5, restarts=1)
    assert (z == 0).all() and torch.isfinite(F).all()
    assert "L-BFGS left 5 of 5 row(s) at their start point" in caplog.text
    caplog.clear()
    fresh, y, _ = quad()
    with caplog.at_level(logging.WARNING, logger="jepa_graph.search"):
        jg.minimize_energy(fresh, {"y": y}, method="gradient", optimizer="lbfgs", steps=5)
    assert "start point" not in caplog.text  # a row that moves is not warned about


def test_skip_ranks_non_finite_candidates_last_and_logs_the_block(caplog):
    model, y, _ = quad()
    with torch.no_grad():
        model.blocks.dec[0].weight.fill_(3e38)  # any z != 0 overflows; z = 0 (the start) is fine
    with caplog.at_level(logging.WARNING, logger="jepa_graph.inference"):
        z, F = jg.minimize_energy(model, {"y": y}, method="sample", samples=8, on_nonfinite="skip")
    assert (z == 0).all() and torch.isfinite(F).all()
    assert "skipped" in caplog.text and "block `dec` (predictor.mlp) gives non-finite" in caplog.text


# ------------------------------------------------------------ misuses, refused with a message
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
    mixed = jg.compile(jg.loads(MIXED), seed=0)
    with pytest.raises(jg.SpecError, match=r"`init` must be a dict by latent name .* \(`c`, `u`\)") as e:
        jg.minimize_energy(mixed, {"x": torch.randn(2, 4), "y": torch.randn(2, 4)}, init=torch.zeros(2, 2))
    assert e.value.first.hint == 'e.g. init={"c": ..., "u": ...}'
