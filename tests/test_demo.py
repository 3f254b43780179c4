"""`jepa-graph demo`: part 1 over every spec, and parts 2-4 end to end on a short budget."""
from __future__ import annotations

import math
import re

import pytest
import torch

from jepa_graph.cli import demo, main
from jepa_graph.envs.baselines import wilson
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


TINY_PLAN = ["--plan-steps", "3", "--episodes", "2", "--max-steps", "6", "--horizon", "4", "--replan-every", "2",
             "--samples", "8", "--iterations", "2", "--elites", "4", "--grad-steps", "2", "--restarts", "2"]


def _plan_table(out: str) -> list[list[str]]:
    """Part 4's table: its rows split into cells (columns are two or more spaces apart)."""
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("method "))
    assert re.split(r"\s{2,}", lines[head].strip()) == [
        "method", "success k/n", "95% Wilson interval", "mean path length", "mean final distance", "plan ms per step"]
    rows = []
    for ln in lines[head + 2:]:
        if not ln.strip() or ln.startswith("("):
            break
        rows.append(re.split(r"\s{2,}", ln.strip()))
    return rows


def test_demo_planning_part_table_and_files(capsys, tmp_path):
    """Part 4 alone on a tiny budget: one row per planner plus the random policy and the expert,
    each k/n out of the episodes run with its own Wilson interval, and every file in --out."""
    torch.set_num_threads(1)
    assert main(["demo", "--plan-only", "--no-progress", "--out", str(tmp_path), *TINY_PLAN]) == 0
    out = capsys.readouterr().out
    assert "== 4. Two Rooms planning" in out and "== 1." not in out
    rows = _plan_table(out)
    assert [r[0] for r in rows] == [*demo.PLANNERS, "random policy", "expert (scripted)"]
    for method, kn, interval, path, final, ms in rows:
        k, n = map(int, kn.split("/"))
        assert n == 2 and 0 <= k <= n, (method, kn)
        lo, hi = wilson(k, n)
        assert interval == f"[{lo:.3f}, {hi:.3f}]", (method, kn, interval)
        assert float(path) >= 0 and float(final) >= 0 and math.isfinite(float(final))
        assert (ms == "-") == (method not in demo.PLANNERS), (method, ms)
    name = "two_rooms_wall"
    files = [tmp_path / name / "last.pt", tmp_path / name / "metrics.jsonl", tmp_path / f"{name}_architecture.svg",
             tmp_path / f"{name}_training.png", *(tmp_path / f"{name}_plan_{m}.png" for m in demo.PLANNERS)]
    for f in files:
        assert f.is_file() and f.stat().st_size > 0, f
        assert f"  {f}" in out  # listed under "files:"
    assert "trained 3 steps in" in out
    stages = out[out.index("\ntime:"):]
    for stage in ("training", *demo.PLANNERS, "random policy and expert"):
        assert re.search(rf"^{re.escape(stage)}\s+\d+\.\d$", stages, re.M), stage


def test_demo_pixels_without_a_pixel_spec_exits_2(capsys, monkeypatch, tmp_path):
    """--pixels before the pixel spec exists: a located message and exit 2, before any work."""
    monkeypatch.setitem(demo.PLAN_SPECS, True, "no_such_pixel_spec.yaml")
    assert main(["demo", "--pixels", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "no spec for the pixel variant" in captured.err and "no_such_pixel_spec.yaml" in captured.err
    assert "hint: run the demo without --pixels" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--planners", "cem,bogus"], "choose from cem, icem, mppi, gradient"),
    (["--plan-only", "--no-plan"], "not allowed with argument"),
    (["--quick", "--plan-only"], "not allowed with argument"),
])
def test_demo_flags_that_cannot_work_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["demo", *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
