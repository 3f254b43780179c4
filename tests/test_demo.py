"""`jepa-graph demo`: part 1 over every spec, and parts 2-3 end to end on a short budget."""
from __future__ import annotations

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
    assert "copy last state" in out and "fork_no_latent.jepa" in out


def test_rollout_error_of_a_perfect_copy_is_zero():
    """A world model whose step is the identity, on a still scene, predicts exactly."""
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    x = torch.randn(6, 1, 16).expand(6, 4, 16).contiguous()  # (N, H+1, obs): nothing moves
    with torch.no_grad():
        model.blocks.predictor.combined_net[-1].weight.zero_()
    err = rollout_error(model, x, torch.zeros(6, 3, 4), target="encoder")
    assert err["copy_last"] == [0.0, 0.0, 0.0]
    assert all(e > 0 for e in err["model"])  # the zeroed predictor is not the identity
