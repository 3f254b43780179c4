"""Two Rooms in the published protocol: walls, door and stop rule by hand, draws, pixels, baselines, offline data."""
from __future__ import annotations

import math

import pytest
import torch

import jepa_graph as jg
from jepa_graph.data import list_sources, make_source
from jepa_graph.data.wall_rooms import STEP, collect, crossed, through_door, truncated_normal, von_mises
from jepa_graph.envs import list_envs, make
from jepa_graph.envs.baselines import Expert, RandomPolicy, evaluate, wilson
from jepa_graph.envs.wall_rooms import TwoRoomsWallEnv, WallRooms

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine

E = 1e-3  # a stopped agent rests this far off the face it hit
# (start, action, next position, blocked) by hand for wall_x = 32 (wall x in [31, 33]), door_y = 18
# (open for y in [14, 22]), borders at 4 and 60
STEPS = [
    ((20.0, 40.0), (2.0, 1.0), (22.0, 41.0), False),  # a free move
    ((20.0, 40.0), (3.0, 4.0), (21.47, 41.96), False),  # norm 5 clipped to 2.45, direction kept
    ((29.5, 40.0), (2.0, 0.0), (31 - E, 40.0), True),  # into the wall above the door: stops at x = 31
    ((34.5, 40.0), (-2.0, 0.0), (33 + E, 40.0), True),  # ... from the right room, on its side
    ((30.5, 40.0), (0.0, 2.0), (30.5, 42.0), False),  # alongside the wall: nothing to stop
    ((29.5, 18.0), (2.4, 0.0), (31.9, 18.0), False),  # into the door
    ((31.9, 18.0), (2.4, 0.0), (34.3, 18.0), False),  # ... and out of it into the other room
    ((29.5, 22.0), (2.0, 0.0), (31.5, 22.0), False),  # the door's edge row is open
    ((29.5, 22.5), (2.0, 0.0), (31 - E, 22.5), True),  # half a pixel above it is wall
    ((30.0, 21.5), (1.6, 1.6), (31 - E, 22.5), True),  # a diagonal meeting the wall above the door
    ((30.0, 20.5), (1.6, 1.6), (31.5, 22 - E), True),  # ... entering the door, then its upper jamb
    ((32.0, 15.0), (0.0, -2.0), (32.0, 14 + E), True),  # in the door, down into the lower jamb
    ((58.5, 30.0), (2.0, 0.0), (60 - E, 30.0), True),  # the border
    ((30.0, 5.0), (0.0, -2.0), (30.0, 4 + E), True),  # ... each of them
    ((59.0, 50.0), (2.0, 1.0), (60 - E, 50.5), True),  # a diagonal into the border stops where it meets it
]


def wall_env(n, **kw):
    return TwoRoomsWallEnv(n, seed=0, **kw)


def place(env, starts, wall_x=32.0, door_y=18.0, goals=None):
    n = env.num_envs
    goals = goals if goals is not None else [(50.0, 50.0)] * n
    return env.reset(options={"state": starts, "goal": goals, "wall_x": torch.full((n,), wall_x),
                              "door_y": torch.full((n,), door_y)})


@pytest.mark.parametrize("start, action, after, blocked", STEPS)
def test_the_stop_rule_by_hand(start, action, after, blocked):
    env = wall_env(1)
    place(env, [start])
    obs, _, _, _, info = env.step(torch.tensor([action]))
    torch.testing.assert_close(env.state, torch.tensor([after]), atol=2e-5, rtol=0)
    assert info["blocked"].tolist() == [blocked]
    torch.testing.assert_close(obs, torch.tensor([[*after, 32.0, 18.0]]), atol=2e-5, rtol=0)  # (x, y, wall, door)


def test_batched_steps_equal_one_environment_at_a_time():
    rooms, gen = WallRooms(), torch.Generator().manual_seed(3)
    env = wall_env(64)
    env.reset(seed=5)
    a = torch.randn(64, 2, generator=gen) * 3
    batched = rooms.move(env.state, a, env.wall_x, env.door_y)
    for i in range(64):
        one = rooms.move(env.state[i:i + 1], a[i:i + 1], env.wall_x[i:i + 1], env.door_y[i:i + 1])
        assert torch.equal(one[0][0], batched[0][i]) and one[1].item() == batched[1][i].item()
    hand = wall_env(len(STEPS))
    place(hand, [s for s, *_ in STEPS])
    hand.step(torch.tensor([a for _, a, *_ in STEPS]))
    torch.testing.assert_close(hand.state, torch.tensor([n for *_, n, _ in STEPS]), atol=2e-5, rtol=0)


def test_random_walks_never_leave_the_free_region_or_cross_a_wall():
    env, gen = wall_env(256), torch.Generator().manual_seed(1)
    env.reset()
    for _ in range(100):
        before = env.state.clone()
        env.step(torch.randn(256, 2, generator=gen) * 3)
        assert env.rooms.free(env.state, env.wall_x, env.door_y).all()
        switched = env.rooms.room(before, env.wall_x) != env.rooms.room(env.state, env.wall_x)
        mid_y = (before[:, 1] + env.state[:, 1]) / 2
        assert ((mid_y[switched] - env.door_y[switched]).abs() <= 4 + 2.45).all()  # rooms change at the door


def test_layouts_starts_and_goals():
    env = wall_env(2000)
    env.reset()
    assert set(env.wall_x.tolist()) == set(map(float, range(20, 45)))  # every integer of [20, 44]
    assert set(env.door_y.tolist()) == set(map(float, range(10, 55)))
    rooms = env.rooms
    assert (rooms.room(env.state, env.wall_x) != rooms.room(env.goal_state, env.wall_x)).all()
    assert 0.4 < rooms.room(env.state, env.wall_x).float().mean() < 0.6  # either room first
    for p in (env.state, env.goal_state):
        assert ((p - env.wall_x[:, None])[:, 0].abs() >= 1 + 2.6 - 1e-4).all()  # 2 sigma off the walls
        assert ((p >= 4 + 2.6) & (p <= 60 - 2.6)).all()
    fixed = wall_env(50, variant="fixed")
    fixed.reset()
    assert (fixed.wall_x == 32).all() and (fixed.door_y == 18).all()
    assert (rooms.room(fixed.state, fixed.wall_x) != rooms.room(fixed.goal_state, fixed.wall_x)).all()


def test_success_is_the_distance_under_4_5_and_episodes_last_200_steps():
    env = wall_env(2)
    place(env, [(10.0, 10.0), (10.0, 10.0)], goals=[(10.0, 14.49), (10.0, 14.51)])
    assert env.success().tolist() == [True, False]
    for t in range(200):
        _, reward, terminated, truncated, info = env.step(torch.zeros(2, 2))
        assert not terminated.any() and truncated.all() == (t == 199)
    torch.testing.assert_close(reward, torch.tensor([-4.49, -4.51]))
    assert info["success"].tolist() == [True, False]


def test_reset_is_reproducible_from_a_seed_and_masks_keep_the_rest():
    a, b, c = (make("two_rooms_wall", n=8, seed=s) for s in (0, 0, 1))
    oa, _ = a.reset()
    assert torch.equal(oa, b.reset()[0]) and torch.equal(a.goal, b.goal) and not torch.equal(oa, c.reset()[0])
    a.step(torch.ones(8, 2))
    assert torch.equal(a.reset(seed=0)[0], oa)
    a.step(torch.ones(8, 2))
    kept = a.state.clone(), a.wall_x.clone()
    mask = torch.tensor([True, False] * 4)
    a.reset(options={"reset_mask": mask})
    assert torch.equal(a.state[~mask], kept[0][~mask]) and torch.equal(a.wall_x[~mask], kept[1][~mask])
    assert a.t.tolist() == [0, 1] * 4


def test_pixel_observations():
    env = wall_env(3, obs="pixels")
    obs, _ = place(env, [(10.0, 40.0), (20.0, 7.0), (50.4, 30.25)], wall_x=25.0, door_y=50.0)
    assert obs.shape == (3, 2, 65, 65) and obs.dtype == torch.float32 and env.observation_space.contains(obs)
    assert obs[0, 0, 40, 10] == 1.0 and obs[1, 0, 7, 20] == 1.0  # the dot peaks at the agent (row y, column x)
    assert obs[0, 0].argmax() == 40 * 65 + 10 and obs[2, 0].argmax() == 30 * 65 + 50
    torch.testing.assert_close(obs[0, 0, 40, 11], torch.tensor(math.exp(-1 / (2 * 1.3 ** 2))))  # sigma 1.3
    walls = obs[0, 1]
    assert walls[:, 4].all() and walls[:, 60].all() and walls[4].all() and walls[60].all()  # the borders
    assert walls[10:46, 24:27].all() and not walls[46:55, 24:27].any() and walls[55:60, 24:27].all()  # door 46..54
    assert not walls[10:46, 27:30].any() and not walls[10:46, 20:24].any()  # 3 px wide
    goal = env.goal
    assert goal.shape == obs.shape and torch.equal(goal[:, 1], obs[:, 1]) and goal[0, 0, 50, 50] == 1.0
    frame = env.render()
    assert frame.shape == (3, 65, 65, 3) and frame.dtype == torch.uint8 and frame[0, 40, 10, 0] == 255


def test_bad_options_and_actions_are_refused():
    env = wall_env(1)
    with pytest.raises(ValueError, match="on a wall"):
        place(env, [(32.0, 40.0)])  # inside the centre wall
    with pytest.raises(ValueError, match="variant"):
        TwoRoomsWallEnv(1, variant="fixd")
    place(env, [(10.0, 10.0)])
    with pytest.raises(ValueError, match="finite"):
        env.step(torch.tensor([[math.nan, 0.0]]))


def test_the_registry_lists_it():
    assert {"two_rooms", "two_rooms_wall"} <= set(list_envs()) and "two_rooms_wall" in list_sources()
    assert isinstance(jg.envs.make("two_rooms_wall", n=2, variant="fixed"), TwoRoomsWallEnv)


@pytest.mark.parametrize("variant", ["random", "fixed"])
def test_the_expert_succeeds_and_random_actions_do_not(variant):
    env = make("two_rooms_wall", n=32, seed=0, variant=variant)
    expert = evaluate(env, Expert(), episodes=32, seed=1000)
    assert expert["success_rate"] == 1.0 and expert["mean_final_distance"] < 1e-3
    rand = evaluate(env, RandomPolicy(0), episodes=32, seed=1000)
    assert rand["success_rate"] < 0.2 and rand["mean_final_distance"] > 10
    assert evaluate(env, RandomPolicy(0), episodes=32, seed=1000) == rand  # a pure function of the seed


def test_evaluate_counts_episodes_across_rounds_and_the_old_two_rooms():
    env = make("two_rooms", n=8, seed=0)
    r = evaluate(env, Expert(), episodes=20, seed=3)  # three rounds of 8, the last cut to 4
    assert r["episodes"] == 20 and r["success_rate"] == 1.0 and r["mean_steps"] < env.max_steps
    assert evaluate(env, RandomPolicy(1), episodes=20, seed=3)["success_rate"] < 0.5


def test_wilson_interval():
    lo, hi = wilson(10, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.0552, 0.1744)  # the textbook value
    assert wilson(0, 200)[0] == 0.0 and round(wilson(0, 200)[1], 4) == 0.0188
    assert wilson(200, 200)[1] == 1.0
    with pytest.raises(ValueError):
        wilson(0, 0)


# ---------------------------------------------------------------------------------- offline data
def test_von_mises_turns_and_step_lengths():
    gen = torch.Generator().manual_seed(0)
    a5 = (torch.special.i1(torch.tensor(5.0)) / torch.special.i0(torch.tensor(5.0))).item()  # E cos = 0.893
    turns = von_mises(5.0, (100_000,), gen)
    assert abs(torch.cos(turns).mean().item() - a5) < 0.01 and abs(torch.sin(turns).mean().item()) < 0.01
    assert abs(torch.cos(von_mises(1.0, (100_000,), gen)).mean().item() - 0.446) < 0.01  # I1(1)/I0(1)
    steps = truncated_normal(*STEP, (100_000,), gen)
    assert steps.min() >= 0.2 and steps.max() <= 1.8
    assert abs(steps.mean().item() - 1.0) < 0.01 and abs(steps.std().item() - 0.352) < 0.01  # N(1, .4) cut at 2 sd


def test_a_walk_forced_through_the_door_turns_like_any_other_where_its_halves_join():
    rooms, gen, n = WallRooms(), torch.Generator().manual_seed(0), 20_000
    wall_x, door_y = torch.full((n,), 32.0), torch.full((n,), 18.0)
    start, act = through_door(rooms, wall_x, door_y, 2, 5.0, gen)  # 2 steps: the door point is state 1
    heading = torch.atan2(act[..., 1], act[..., 0])
    turn = torch.remainder(heading[:, 1] - heading[:, 0] + math.pi, 2 * math.pi) - math.pi
    assert abs(torch.cos(turn).mean().item() - 0.893) < 0.01  # the junction's turn is VonMises(0, 5) too
    assert (heading[:, 1].cos().abs() >= math.cos(math.pi / 4) - 1e-6).all()  # out of the door: across, +-45 deg
    door = rooms.move(start, act[:, 0], wall_x, door_y)[0]  # where the first step lands: in the door
    in_door = ((door[:, 0] - 32).abs() <= 1 + 1e-4) & ((door[:, 1] - 18).abs() <= 3 + 1e-4)
    assert in_door.float().mean() > 0.9  # (not all: a backward step a jamb stopped replays elsewhere)


def test_collected_walks():
    rooms, gen = WallRooms(), torch.Generator().manual_seed(0)
    d = collect(rooms, 400, 90, 0.25, "random", 5.0, gen)
    pos, act, blocked = d["pos"], d["actions"], d["blocked"]
    assert pos.shape == (400, 91, 2) and act.shape == (400, 90, 2) and blocked.shape == (400, 90)
    length = act.norm(dim=-1)
    assert length.min() >= 0.2 - 1e-5 and length.max() <= 1.8 + 1e-5
    heading = torch.atan2(act[..., 1], act[..., 0])
    turn = torch.remainder(heading[:, 1:] - heading[:, :-1] + math.pi, 2 * math.pi) - math.pi
    assert abs(torch.cos(turn).mean().item() - 0.893) < 0.01  # kappa 5, the forced walks included
    assert abs(torch.cos(turn[:100]).mean().item() - 0.893) < 0.02  # ... and alone
    assert d["through"].sum() == 100 and d["through"][:100].all()  # the stated share, the first rows
    assert crossed(rooms, pos[:100], d["wall_x"][:100]).all()
    assert crossed(rooms, pos[100:], d["wall_x"][100:]).float().mean() < 0.25  # others cross less often
    wall_x, door_y = d["wall_x"][:, None].expand(-1, 91), d["door_y"][:, None].expand(-1, 91)
    assert rooms.free(pos.reshape(-1, 2), wall_x.reshape(-1), door_y.reshape(-1)).all()
    # the trajectories are the environment's: replaying the actions gives the same positions and stops
    again, stopped = rooms.move(pos[:, :-1].reshape(-1, 2), act.reshape(-1, 2), wall_x[:, 1:].reshape(-1),
                                door_y[:, 1:].reshape(-1))
    assert torch.equal(again.reshape(400, 90, 2), pos[:, 1:]) and torch.equal(stopped.reshape(400, 90), blocked)
    assert 0 < blocked.float().mean() < 0.5
    moved = (pos[:, 1:] - pos[:, :-1]).norm(dim=-1)
    assert (moved[blocked] < length[blocked]).all()  # a blocked move falls short: what a "wall leak" measures
    fixed = collect(rooms, 20, 10, 0.5, "fixed", 5.0, torch.Generator().manual_seed(0))
    assert (fixed["wall_x"] == 32).all() and (fixed["door_y"] == 18).all() and fixed["through"].sum() == 10


def test_the_source_serves_windows():
    src = make_source("two_rooms_wall", {"episodes": 32, "horizon": 5}, {}, seed=3)
    b = src.batch(0, 6)
    assert b["x_seq"].shape == (6, 6, 4) and b["a_seq"].shape == (6, 5, 2) and b["blocked_seq"].shape == (6, 5)
    assert torch.equal(b["x"], b["x_seq"][:, 0]) and torch.equal(b["x_next"], b["x_seq"][:, 1])
    assert torch.equal(b["a"], b["a_seq"][:, 0]) and torch.equal(b["goal"], b["x_seq"][:, -1])
    assert b["blocked"].dtype == torch.bool and torch.equal(b["state_seq"], b["x_seq"])
    assert torch.equal(src.batch(0, 6)["x_seq"], b["x_seq"])  # a pure function of (seed, step)
    assert not torch.equal(src.batch(1, 6)["x_seq"], b["x_seq"])
    full = make_source("two_rooms_wall", {"episodes": 4, "horizon": 90, "door_share": 1.0}, {}).batch(0, 2)
    assert full["x_seq"].shape == (2, 91, 4) and full["through"].all()  # whole trajectories of 91 states
    pix = make_source("two_rooms_wall", {"episodes": 4, "horizon": 3, "obs": "pixels", "variant": "fixed"}, {})
    p = pix.batch(0, 2)
    assert p["x_seq"].shape == (2, 4, 2, 65, 65) and p["x"].shape == (2, 2, 65, 65)
    rows, cols = p["state"][:, 1].round().long(), p["state"][:, 0].round().long()
    assert (p["x"][torch.arange(2), 0, rows, cols] > 0.7).all()  # the dot sits at the state's position
    with pytest.raises(jg.SpecError, match="horizon 91 needs trajectories"):
        make_source("two_rooms_wall", {"horizon": 91}, {})
    with pytest.raises(jg.SpecError, match="door_share"):
        make_source("two_rooms_wall", {"door_share": 1.5}, {})
