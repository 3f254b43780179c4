"""Energy landscapes: grid energies match the energy program, plots are written, the CLI runs."""
from __future__ import annotations

import pytest
import torch

import jepa_graph as jg
from jepa_graph.cli import main
from jepa_graph.inference.landscape import energy_along, latent_landscape, plot, plot_latent_landscape

REAL2 = """
name: real2
dims: {obs: 4}
inputs: {x: {shape: [obs]}, y: {shape: [obs]}}
latents: {u: {shape: [3], regularizer: {l2: 0.1}}}
blocks:
  enc:  {kind: encoder, type: mlp, in: [x], with: {out: obs}}
  pred: {kind: predictor, type: mlp, in: [enc, u], with: {hidden: [16], out: obs}}
  E:    {kind: energy, type: l2, in: [pred, y]}
objective: {E: 1.0, u.l2: 1.0}
"""
PNG = b"\x89PNG\r\n\x1a\n"


def test_map_over_two_coordinates_matches_the_energy(tmp_path):
    model = jg.compile(jg.loads(REAL2), seed=0)
    batch = {"x": torch.randn(3, 4), "y": torch.randn(3, 4)}
    land = latent_landscape(model, batch, sample=1, dims=(0, 2), lim=(-2, 2), resolution=100)
    assert land.kind == "map" and land.energy.dim() == 2 and land.labels == ["u[0]", "u[2]"]
    z_star, _ = jg.minimize_energy(model, {k: v[1:2] for k, v in batch.items()})
    i, j = 7, 31
    z = z_star.clone()
    z[0, 0], z[0, 2] = land.axes[0][i], land.axes[1][j]
    with torch.no_grad():
        ref = model.energy(x=batch["x"][1:2], y=batch["y"][1:2], u=z)
    torch.testing.assert_close(land.energy[i, j], ref[0])
    assert land.energy.min() >= ref.new_tensor(0)
    # the minimum reported is the grid's own lowest point; z* is marked beside it with E(z*)
    i0, j0 = torch.unravel_index(land.energy.argmin(), land.energy.shape)
    assert land.best == [float(land.axes[0][i0]), float(land.axes[1][j0])]
    assert land.best != pytest.approx([float(z_star[0, 0]), float(z_star[0, 2])], abs=1e-6)  # z* is off the grid
    assert land.z_star == pytest.approx([float(z_star[0, 0]), float(z_star[0, 2])])
    with torch.no_grad():
        e_star = model.energy(x=batch["x"][1:2], y=batch["y"][1:2], u=z_star)
    assert land.e_star == pytest.approx(float(e_star[0]), rel=1e-5)
    out = plot(land, tmp_path / "map.png")
    assert out.read_bytes()[:8] == PNG


def test_curve_and_discrete_views(tmp_path):
    model = jg.compile(jg.loads(REAL2), seed=0)
    batch = {"x": torch.randn(2, 4), "y": torch.randn(2, 4)}
    curve = latent_landscape(model, batch, dims=(1,), resolution=51)
    assert curve.kind == "curve" and curve.energy.shape == (51,)
    fork = jg.compile("specs/fork.jepa", seed=0)
    fb = {"x": torch.randn(2, 4), "y": torch.randn(2, 4)}
    bars = latent_landscape(fork, fb)
    with torch.no_grad():
        ref = torch.stack([fork.energy(x=fb["x"][:1], y=fb["y"][:1], z=torch.eye(2)[k:k + 1])[0] for k in range(2)])
    torch.testing.assert_close(bars.energy, ref)
    assert plot_latent_landscape(fork, fb, tmp_path / "bars.png").read_bytes()[:8] == PNG
    with pytest.raises(jg.SpecError, match=r"`dims` picks 1 or 2 of the 3 coordinates"):
        latent_landscape(model, batch, dims=(0, 5))


def test_along_a_line_minimises_at_every_point():
    fork = jg.compile("specs/fork.jepa", seed=0)
    x, a, b = torch.randn(1, 4), torch.randn(4), torch.randn(4)
    land = energy_along(fork, {"x": x}, "y", a, b, n=21, extend=0.0)
    assert land.kind == "along" and land.energy.shape == (21,)
    with torch.no_grad():
        _, F_a = jg.minimize_energy(fork, {"x": x, "y": a[None]})
        _, F_b = jg.minimize_energy(fork, {"x": x, "y": b[None]})
    torch.testing.assert_close(land.energy[[0, -1]], torch.cat([F_a, F_b]))
    plain = jg.compile("specs/fork_no_latent.jepa", seed=0)
    line = energy_along(plain, {"x": x}, "y", a, b, n=7)  # t = -0.25, 0, 0.25, ...
    with torch.no_grad():
        torch.testing.assert_close(line.energy[1], plain.energy(x=x, y=a[None])[0])


def test_cli_energy(tmp_path, capsys):
    out = tmp_path / "e.png"
    assert main(["energy", "specs/fork.jepa", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "random initial weights" in text and out.read_bytes()[:8] == PNG
    from jepa_graph.training.checkpoint import save_checkpoint
    model = jg.compile("specs/fork_no_latent.jepa", seed=1)
    save_checkpoint(tmp_path / "c.pt", model, step=7)
    along = tmp_path / "along.png"
    assert main(["energy", "specs/fork_no_latent.jepa", "--checkpoint", str(tmp_path / "c.pt"), "--along", "y",
                 "--with", "paired=true", "-o", str(along)]) == 0
    text = capsys.readouterr().out
    assert "(step 7)" in text and "paired" in text and along.read_bytes()[:8] == PNG
    assert main(["energy", "specs/fork.jepa", "--over", "zz", "-o", str(out)]) == 2
    assert "did you mean `z`" in capsys.readouterr().err


# three latents: a box, a discrete and a real one, all feeding one predictor
THREE = """
name: three
dims: {obs: 4, state: 6}
inputs: {x: {shape: [obs]}, y: {shape: [obs]}}
latents:
  z: {shape: [2], domain: {box: [-1, 1]}}
  c: {shape: [3], domain: {discrete: 3}}
  r: {shape: [2], regularizer: {l2: 0.1}}
blocks:
  enc:  {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state}}
  t:    {kind: encoder, type: mlp, in: [y], with: {hidden: [16], out: state}}
  pred: {kind: predictor, type: mlp, in: [enc, z, c, r], with: {hidden: [32], out: state, act: tanh}}
  E:    {kind: energy, type: l2, in: [pred, t]}
objective: {E: 1.0}
"""


@pytest.mark.parametrize("over,kind", [("z", "map"), ("c", "discrete"), ("r", "map")])
def test_the_other_latents_are_held_at_the_joint_minimiser(over, kind):
    model = jg.compile(jg.loads(THREE), seed=0)
    batch = {"x": torch.randn(3, 4), "y": torch.randn(3, 4)}
    land = latent_landscape(model, batch, over, sample=2)
    assert land.kind == kind and sorted(land.held) == sorted({"z", "c", "r"} - {over})
    zs, F = jg.minimize_energy(model, {k: v[2:3] for k, v in batch.items()}, over=[over] + sorted(land.held))
    for name, v in land.held.items():  # the same search, latents in another order: L-BFGS rounds differently
        assert v == pytest.approx(zs[name].flatten().tolist(), abs=1e-4)
    assert land.e_star == pytest.approx(float(F.detach()[0]), rel=1e-5)  # E at the joint z*, the plotted slice's z*
    with pytest.raises(jg.SpecError, match=r"leaves `z`, `c`, `r` to infer") as e:
        latent_landscape(model, batch)
    assert 'over="z"' in e.value.first.hint


def test_cli_energy_over_one_of_several_latents(tmp_path, capsys):
    spec = tmp_path / "three.yaml"
    spec.write_text(THREE)
    out = tmp_path / "z.png"
    assert main(["energy", str(spec), "--over", "z", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == PNG
    assert "`c` held at its z*" in text and "`r` held at its z*" in text and "E(z*) =" in text
    assert main(["energy", str(spec), "-o", str(tmp_path / "none.png")]) == 2
    err = capsys.readouterr().err
    assert "leaves 3 latents to infer (`z`, `c`, `r`)" in err and "hint: pick it with --over NAME" in err
    assert "over=" not in err and not (tmp_path / "none.png").exists()


def test_cli_minimum_is_the_grid_minimum(tmp_path, capsys):
    spec = tmp_path / "three.yaml"
    spec.write_text(THREE)
    assert main(["energy", str(spec), "--over", "r", "--dims", "0", "-o", str(tmp_path / "c.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    low = next(ln for ln in lines if ln.startswith("minimum "))
    star = next(ln for ln in lines if ln.startswith("z* "))
    at = float(low.split()[3].rstrip(";"))
    k = (at + 3) / 0.06  # the grid: -3 to 3 in 101 points
    assert abs(k - round(k)) < 1e-3, low  # the minimum's place is a grid point, not z*
    assert star.startswith("z* (the minimiser) at "), star  # z* (here off the grid) is reported apart
