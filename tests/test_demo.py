"""`jepa-graph demo`: part 1 over every spec, and parts 2-3 end to end on a short budget."""
from __future__ import annotations

import math

import pytest
import torch

from jepa_graph.cli import demo, main
from jepa_graph.training.metrics import rollout_error
import jepa_graph as jg
from conftest import SPECS, spec_files


def test_demo_quick_lists_every_spec(capsys):
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    for path in spec_files():
        assert path.name in out
    assert f"{len(spec_files())} specs compiled and ran; 0 failed" in out


def test_demo_training_parts_run(capsys):
    torch.set_num_threads(1)
    demo.two_rooms(20)
    demo.fork(10)
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("steps ahead"))
    assert lines[head].split("  ")[-2:] == ["world model", "copy last state"]
    rows = [ln.split() for ln in lines[head + 2:head + 6]]
    assert [r[0] for r in rows] == ["1", "2", "4", "8"]
    model, copy = [float(r[1]) for r in rows], [float(r[2]) for r in rows]
    assert all(math.isfinite(e) and e > 0 for e in model)
    # the held-out agents move: the state they started in is further from the truth at each horizon
    assert 0 < copy[0] < copy[1] < copy[2] < copy[3], copy
    assert "fork_no_latent.jepa" in out


def test_rollout_error_matches_a_step_by_step_reference():
    """rollout_error against its definition written out: the predictor stepped H times from the
    encoded first frame, and the first frame's representation copied forward, each a squared
    error over the representation's total variance. Every frame differs, so copying is not exact."""
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    x, a = torch.randn(6, 4, 16), torch.randn(6, 3, 4)  # (N, H+1, obs), (N, H, act)
    err = rollout_error(model, x, a, target="encoder")
    with torch.no_grad():
        enc, pred = model.blocks.encoder, model.blocks.predictor
        true = torch.stack([enc(x[:, t]) for t in range(4)], 1)  # (N, H+1, state)
        var = ((true - true.mean((0, 1))) ** 2).sum(-1).mean()
        state, want_model, want_copy = true[:, 0], [], []
        for h in range(3):
            state = pred(state, a[:, h])
            want_model.append(float(((state - true[:, h + 1]) ** 2).sum(-1).mean() / var))
            want_copy.append(float(((true[:, 0] - true[:, h + 1]) ** 2).sum(-1).mean() / var))
    assert min(want_copy) > 0.1
    assert err["copy_last"] == pytest.approx(want_copy, rel=1e-5)
    assert err["model"] == pytest.approx(want_model, rel=1e-5)
