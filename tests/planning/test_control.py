"""``jg.control`` (receding-horizon MPC) and the evaluation behind ``jepa-graph plan``.

The real check that MPC works: Two Rooms' true dynamics wrapped as a world model, planned with
CEM, reaches the goals (through the door when the goal is in the other room), where a random
policy does not; the records are what the environment did; the episodes split over ranks give
the table of one process."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest
import torch

import jepa_graph as jg
from jepa_graph import SpecError
from jepa_graph.cli import plan as plan_cli
from jepa_graph.cli.main import main
from jepa_graph.envs.baselines import RandomPolicy, evaluate as evaluate_policy, wilson
from jepa_graph.planning import METHODS, DynamicsModel, evaluate, plot_trajectories
from jepa_graph.planning.evaluation import _draw_walls, _planned
from jepa_graph.search import Continuous
from conftest import SPECS

pytestmark = pytest.mark.usefixtures("one_thread")


def true_dynamics(env) -> DynamicsModel:
    """Two Rooms' own step function, the cost the distance to the goal at every step."""
    return DynamicsModel(env.rooms.step, lambda s, a, g: (s - g).norm(dim=1), Continuous((2,), -1.0, 1.0))


@pytest.fixture(scope="module")
def mpc_run():
    torch.set_num_threads(1)
    env = jg.envs.make("two_rooms", n=8, seed=0, max_steps=50)
    run = jg.control(true_dynamics(env), env, "cem", horizon=25, samples=128, iterations=4, seed=3, keep_plans=True,
                     keep_frames=True)
    return env, run


def test_mpc_with_the_true_dynamics_reaches_the_goals(mpc_run):
    env, run = mpc_run
    assert run.success.sum() >= 7
    rooms = env.rooms
    start, goal = run.positions[0], run.goal_positions
    crossed = run.success & (rooms.room(start) != rooms.room(goal))
    assert crossed.any()  # through the door: a straight line would hit the wall
    random = evaluate_policy(jg.envs.make("two_rooms", n=8, seed=0, max_steps=50), RandomPolicy(0), episodes=8, seed=0)
    assert random["successes"] <= 2


def test_the_run_records_what_the_environment_did(mpc_run):
    env, run = mpc_run
    T, N = run.actions.shape[:2]
    assert run.obs.shape == (T + 1, N, 2) and run.rewards.shape == (T, N) and run.plan_cost.shape == (T, N)
    assert (run.actions.abs() <= 1).all() and len(run.plan_time) == T and len(run.plans) == T
    for t in range(T):  # the recorded positions are the true dynamics of the recorded actions
        assert torch.allclose(run.positions[t + 1], env.rooms.step(run.positions[t], run.actions[t]))
        assert torch.equal(run.actions[t], run.plans[t][1][:, 0])  # the first action of the plan made then
    for i in range(N):
        L = int(run.lengths[i])
        ep = run.episode(i)
        assert ep["actions"].shape == (L, 2) and ep["obs"].shape == (L + 1, 2)
        dist = (ep["positions"][-1] - run.goal_positions[i]).norm()
        assert bool(run.success[i]) == bool(dist < env.tol)
    assert torch.allclose(run.path_length(), torch.stack(
        [(run.episode(i)["positions"].diff(dim=0)).norm(dim=1).sum() for i in range(N)]))
    assert run.frames.shape == (N, 64, 64, 3) and run.plan_time_per_step > 0


def test_replanning_every_k_steps_executes_the_plan(tmp_path):
    env = jg.envs.make("two_rooms", n=3, seed=1, max_steps=10)
    run = jg.control(true_dynamics(env), env, "mppi", horizon=6, replan_every=4, samples=32, iterations=2,
                     keep_plans=True)
    T = run.actions.shape[0]
    assert [t for t, *_ in run.plans] == list(range(0, T, 4)) and len(run.plan_time) == math.ceil(T / 4)
    for t in range(T):
        made, acts, _ = run.plans[t // 4]
        assert torch.equal(run.actions[t], acts[:, t - made])
    png = plot_trajectories(run, env, tmp_path / "traj.png", n=3)
    assert png.stat().st_size > 0


def test_control_is_reproducible_from_its_seed():
    def go(seed):
        env = jg.envs.make("two_rooms", n=2, seed=0, max_steps=5)
        return jg.control(true_dynamics(env), env, "icem", horizon=5, samples=16, iterations=2, seed=seed).actions
    a, b, c = go(4), go(4), go(5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_episodes_split_over_ranks_give_the_same_table():
    """What torchrun does: rank k runs rounds k, k + W, ...; the rows gathered equal one process's."""
    def env():
        return jg.envs.make("two_rooms", n=2, seed=0, max_steps=6)
    kw = dict(horizon=5, samples=16, iterations=2, episodes=5, seed=100)
    whole, sample = evaluate(true_dynamics(env()), env(), "cem", **kw)
    parts = [evaluate(true_dynamics(env()), env(), "cem", rank=r, world=2, **kw)[0]["rows"] for r in (0, 1)]
    assert sorted(parts[0] + parts[1], key=lambda r: r["episode"]) == whole["rows"]
    assert [r["episode"] for r in whole["rows"]] == list(range(5)) and whole["episodes"] == 5
    assert whole["ci95"][0] <= whole["success_rate"] <= whole["ci95"][1]
    assert sample is not None and sample.plans


def test_actor_mode_acts_with_the_spec_actor():
    model = jg.compile(SPECS / "lecun_agent.jepa", seed=0)
    env = jg.envs.make("two_rooms", n=2, seed=0, max_steps=3)
    memory = torch.zeros(2, 8, 32)
    obs0, _ = env.reset(seed=0)
    run = jg.control(model, env, mode="actor", context={"memory": memory})
    state = model.encode(x=obs0)["state"]
    first = model.act(state=state, goal=env.goal, memory=memory)["action"]
    assert run.actions.shape[0] == 3 and torch.allclose(run.actions[0], first.detach())


def test_bad_control_settings_are_spec_errors():
    env = jg.envs.make("two_rooms", n=2, seed=0, max_steps=None)
    world = true_dynamics(env)
    with pytest.raises(SpecError, match="replan_every must be a whole number >= 1"):
        jg.control(world, env, replan_every=0, max_steps=3)
    with pytest.raises(SpecError, match=r"replan_every \(8\) is longer than the horizon \(4\)"):
        jg.control(world, env, replan_every=8, horizon=4, max_steps=3)
    with pytest.raises(SpecError, match="never truncates its episodes: pass max_steps"):
        jg.control(world, env)
    with pytest.raises(SpecError, match="they are drawn as a PNG"):
        plot_trajectories(None, env, "x.svg")


def test_on_step_is_called_once_per_environment_step():
    env = jg.envs.make("two_rooms", n=2, seed=0, max_steps=5)
    calls = []
    run = jg.control(true_dynamics(env), env, "cem", horizon=3, samples=8, iterations=1, on_step=calls.append)
    assert calls == list(range(run.actions.shape[0])) and calls
    calls.clear()  # evaluate: every round's control gets it, t from 0 in each round
    table, sample = evaluate(true_dynamics(env), env, "cem", episodes=4, horizon=3, samples=8, iterations=1,
                             on_step=calls.append)
    first = sample.actions.shape[0]
    assert calls[:first] == list(range(first)) and calls[first:] == list(range(len(calls) - first))
    assert len(calls) > first  # two rounds of two environments


def blind_wall_world() -> DynamicsModel:
    """A model of Two Rooms Wall whose states are not positions (scaled by 1/64) and which ignores
    the walls: what its plans predict is no path to draw."""
    return DynamicsModel(lambda s, a: s + a / 64, lambda s, a, g: (s - g[:, :2] / 64).norm(dim=1),
                         Continuous((2,), -2.45, 2.45), encode=lambda o: o[:, :2] / 64)


def test_trajectories_in_two_rooms_wall_draw_walls_and_replay_plans_through_them(tmp_path):
    """The published-protocol Two Rooms: the run records each episode's walls, and its plans are
    drawn as their actions replayed from where each was made in the true dynamics, so they keep
    to the free region even from a model blind to the walls."""
    env = jg.envs.make("two_rooms_wall", n=2, seed=0, max_steps=6)
    run = jg.control(blind_wall_world(), env, "cem", horizon=5, samples=16, iterations=2, keep_plans=True,
                     keep_frames=True)
    assert torch.equal(run.layout["wall_x"], run.obs[0, :, 2]) and torch.equal(run.layout["door_y"], run.obs[0, :, 3])
    walls = run.layout["wall_x"].clone()
    env.reset(seed=99)  # the environment draws other walls; the run keeps the ones it was made in
    assert not torch.equal(env.wall_x, walls)
    assert plot_trajectories(run, env, tmp_path / "wall.png", n=2).stat().st_size > 0
    rooms = env.rooms
    for t, acts, states in run.plans:
        for i in range(2):
            wall_x, door_y = run.layout["wall_x"][i:i + 1], run.layout["door_y"][i:i + 1]
            path, how = _planned(env, run.positions[t, i], acts[i], states[i], (wall_x, door_y))
            assert how == "plans (actions replayed)" and path.shape == (6, 2)
            assert torch.allclose(path[1], run.positions[t + 1, i])  # its first action is the one executed
            assert rooms.free(path, wall_x.expand(6), door_y.expand(6)).all()


def test_a_planned_push_into_the_wall_is_drawn_stopping_at_it():
    env = jg.envs.make("two_rooms_wall", n=1, seed=0, variant="fixed")  # wall x = 32 (31..33), door y = 18
    layout = torch.tensor([32.0]), torch.tensor([18.0])
    start, acts = torch.tensor([26.0, 40.0]), torch.tensor([[2.45, 0.0]] * 4)  # right, far below the door
    through = start + acts.cumsum(0)  # what a model blind to the wall predicts: x 35.8, past the wall
    path, how = _planned(env, start, acts, through, layout)
    assert how == "plans (actions replayed)"
    assert torch.allclose(path[:, 1], torch.full((5,), 40.0))
    assert path[1, 0] == pytest.approx(28.45) and path[2, 0] == pytest.approx(30.9)
    assert torch.allclose(path[3:, 0], torch.full((2,), 31 - env.rooms.eps))  # stopped at the wall's face
    assert _planned(env, start, acts, through, None) == (None, "")  # no layout, nothing to replay in


def test_two_rooms_wall_boxes_leave_the_door_open():
    class Axes:  # records what is filled
        def __init__(self):
            self.boxes = []

        def fill(self, xs, ys, **kw):
            self.boxes.append((min(xs), max(xs), min(ys), max(ys)))

    ax = Axes()
    env = jg.envs.make("two_rooms_wall", n=1, seed=0)
    _draw_walls(ax, env.rooms, 32.0, 18.0)

    def walled(x, y):
        return any(x0 <= x <= x1 and y0 <= y <= y1 for x0, x1, y0, y1 in ax.boxes)

    assert walled(32, 30) and walled(32, 8) and walled(31, 40) and walled(2, 30) and walled(30, 62)
    assert not walled(32, 18) and not walled(32, 15) and not walled(20, 30) and not walled(40, 30)


# ------------------------------------------------------------------------------------------ CLI
def test_the_cli_knows_every_method():
    assert plan_cli.METHODS == METHODS


def test_jepa_graph_plan_reports_and_draws(tmp_path, capsys):
    from jepa_graph.training.checkpoint import save_checkpoint
    ckpt = save_checkpoint(tmp_path / "c.pt", jg.compile(SPECS / "two_rooms.yaml", seed=0), step=7)
    png = tmp_path / "plan.png"
    rc = main(["plan", str(SPECS / "two_rooms.yaml"), "--checkpoint", str(ckpt), "--episodes", "3", "--batch", "2",
               "--horizon", "3", "--samples", "8", "--iterations", "1", "--max-steps", "4", "--weight", "reach=2",
               "-o", str(png)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert f"weights: {ckpt} (step 7)" in text
    assert "environment: two_rooms (max_steps=4), 2 at a time on cpu; 3 episodes from seed 10000" in text
    assert "planner: cem, horizon 3, replan every 1 (samples=8, iterations=1)" in text
    k = int(re.search(r"success rate \d\.\d{3} \((\d)/3\), 95% CI \[", text).group(1))
    lo, hi = wilson(k, 3)
    assert f"success rate {k / 3:.3f} ({k}/3), 95% CI [{lo:.3f}, {hi:.3f}]" in text
    assert "ms per step (2 environments at once)" in text and png.stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["specs/two_rooms.yaml", "-o", "p.svg"], "they are drawn as a PNG"),
    (["specs/two_rooms.yaml", "--method", "cme"], "did you mean `cem`"),
    (["specs/two_rooms.yaml", "--method", "gradient", "--samples", "4"], "`gradient` has no option `samples`"),
    (["specs/seed_world_model.yaml"], "names no environment to plan in"),
    (["specs/vicreg.jepa", "--env", "two_rooms"], "has no world model to plan with"),
    (["specs/two_rooms.yaml", "--weight", "reach"], "is not KEY=VALUE"),
])
def test_jepa_graph_plan_refuses_bad_input(argv, message, capsys, monkeypatch):
    from conftest import ROOT
    monkeypatch.chdir(ROOT)
    rc = main(["plan", *argv, "--episodes", "1", "--max-steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err


def test_torchrun_splits_the_episodes_and_gathers_the_table(tmp_path):
    """``jepa-graph plan`` under ``torchrun --nproc_per_node=2`` prints the table of one process."""
    from conftest import ROOT
    argv = ["-m", "jepa_graph.cli", "plan", str(SPECS / "two_rooms.yaml"), "--episodes", "5", "--batch", "2",
            "--samples", "8", "--iterations", "1", "--horizon", "3", "--max-steps", "4", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *argv, "-o", str(tmp_path / "a.png")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *argv, "-o", str(tmp_path / "b.png")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    table = [line for line in one.stdout.splitlines() if line.startswith(("success rate", "path length"))]
    assert len(table) == 2 and all(line in two.stdout.splitlines() for line in table), two.stdout
    assert "on 2 ranks" in two.stdout and two.stdout.count("success rate") == 1  # rank 0 alone prints
    assert (tmp_path / "b.png").stat().st_size > 0
