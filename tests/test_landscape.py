"""Energy landscapes: grid energies match the energy program, plots are written, the CLI runs."""
from __future__ import annotations

import pytest
import torch

import jepa_graph as jg
from jepa_graph.cli import main
from jepa_graph.landscape import energy_along, latent_landscape, plot, plot_latent_landscape

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
    assert land.energy.min() >= ref.new_tensor(0) and land.best == pytest.approx([float(z_star[0, 0]), float(z_star[0, 2])])
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
    from jepa_graph.checkpoint import save_checkpoint
    model = jg.compile("specs/fork_no_latent.jepa", seed=1)
    save_checkpoint(tmp_path / "c.pt", model, step=7)
    along = tmp_path / "along.png"
    assert main(["energy", "specs/fork_no_latent.jepa", "--checkpoint", str(tmp_path / "c.pt"), "--along", "y",
                 "--with", "paired=true", "-o", str(along)]) == 0
    text = capsys.readouterr().out
    assert "(step 7)" in text and "paired" in text and along.read_bytes()[:8] == PNG
    assert main(["energy", "specs/fork.jepa", "--over", "zz", "-o", str(out)]) == 2
    assert "did you mean `z`" in capsys.readouterr().err
