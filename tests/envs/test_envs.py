"""Environments: Two Rooms' walls, door and step rule against hand-computed cases, seeding, batched shapes."""
from __future__ import annotations

import pytest
import torch

import jepa_graph as jg
from jepa_graph.envs import ArraySpec, BatchedEnv, list_envs, make, register_env
from jepa_graph.envs.two_rooms import TwoRooms, TwoRoomsEnv

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine

# (start, action, next state) computed by hand for door 0.4 (|y| <= 0.2 passes), speed 0.1
STEPS = [
    ((0.5, 0.5), (1.0, 0.0), (0.6, 0.5)),  # a free move: speed * a
    ((0.5, 0.5), (3.0, -2.0), (0.6, 0.4)),  # the action is clipped to [-1, 1] first
    ((0.95, -0.95), (1.0, -1.0), (1.0, -1.0)),  # the outer border clamps
    ((-0.05, 0.8), (1.0, 0.0), (-0.001, 0.8)),  # the wall above the door stops it just before x = 0
    ((0.05, -0.5), (-1.0, 0.0), (0.001, -0.5)),  # ... from either side, on the side it came from
    ((-0.1, 0.5), (1.0, 0.0), (-0.001, 0.5)),  # landing on the wall itself is blocked too
    ((-0.05, 0.0), (1.0, 0.0), (0.05, 0.0)),  # through the door
    ((-0.05, 0.1), (1.0, 1.0), (0.05, 0.2)),  # meets the wall at y = 0.15, in the door: passes
    ((-0.05, 0.2), (1.0, 1.0), (-0.001, 0.3)),  # meets it at y = 0.25, above: stops, slides up
    ((0.3, 0.0), (0.0, 1.0), (0.3, 0.1)),  # no horizontal move: never blocked
]


@pytest.mark.parametrize("start, action, after", STEPS)
def test_two_rooms_step_rule(start, action, after):
    env = TwoRoomsEnv(1, seed=0)
    env.reset(options={"state": [start], "goal": [(0.9, 0.9)]})
    obs, *_ = env.step(torch.tensor([action]))
    torch.testing.assert_close(obs, torch.tensor([after]), atol=1e-6, rtol=0)


def test_the_steps_are_the_same_batched_and_one_by_one():
    env = TwoRoomsEnv(len(STEPS), seed=0)
    env.reset(options={"state": [s for s, _, _ in STEPS], "goal": torch.zeros(len(STEPS), 2)})
    obs, *_ = env.step(torch.tensor([a for _, a, _ in STEPS]))
    torch.testing.assert_close(obs, torch.tensor([n for _, _, n in STEPS]), atol=1e-6, rtol=0)


def test_a_wider_door_lets_more_through():
    env = TwoRoomsEnv(1, door=1.0, seed=0)  # |y| <= 0.5 passes
    env.reset(options={"state": [(-0.05, 0.4)], "goal": [(0.0, 0.0)]})
    torch.testing.assert_close(env.step(torch.tensor([[1.0, 0.0]]))[0], torch.tensor([[0.05, 0.4]]))


def test_reset_is_reproducible_from_a_seed():
    a, b, c = make("two_rooms", n=8, seed=0), make("two_rooms", n=8, seed=0), make("two_rooms", n=8, seed=1)
    oa, _ = a.reset()
    assert torch.equal(oa, b.reset()[0]) and torch.equal(a.goal, b.goal)
    assert not torch.equal(oa, c.reset()[0])
    a.step(torch.ones(8, 2))
    assert torch.equal(a.reset(seed=0)[0], oa)  # reseeding starts the same stream again
    assert torch.equal(c.reset(seed=0)[0], oa)
    # the rule: starts, then goals, uniform on [-1, 1]^2 with |x| < 0.02 moved to x = 0.02 (off the wall)
    g = torch.Generator().manual_seed(0)
    u = torch.rand(8, 2, generator=g) * 2 - 1, torch.rand(8, 2, generator=g) * 2 - 1
    for want, got in zip(u, (oa, a.goal)):
        want[:, 0] = torch.where(want[:, 0].abs() < 0.02, 0.02, want[:, 0])
        assert torch.equal(got, want)


def test_reset_mask_resets_only_those_environments():
    env = make("two_rooms", n=4, seed=0)
    s0, _ = env.reset()
    env.step(torch.ones(4, 2))
    moved = env.state.clone()
    s1, _ = env.reset(options={"reset_mask": torch.tensor([True, False, True, False])})
    assert torch.equal(s1[1], moved[1]) and torch.equal(s1[3], moved[3])
    assert not torch.equal(s1[0], moved[0]) and not torch.equal(s1[0], s0[0])
    assert env.t.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": torch.ones(3, dtype=torch.bool)})


def test_batched_shapes_rewards_success_and_truncation():
    env = make("two_rooms", n=5, seed=2, max_steps=3)
    assert isinstance(env, BatchedEnv) and env.num_envs == 5
    assert env.observation_space == ArraySpec((5, 2), torch.float32, -1.0, 1.0, ("N", "obs"))
    act = env.single_action_space
    assert act.shape == (2,) and (act.low, act.high) == (-1, 1)
    obs, info = env.reset(options={"goal": torch.tensor([[0.5, 0.5]] * 5), "state": torch.tensor([[0.5, 0.45]] * 5)})
    assert env.observation_space.contains(obs) and info["state"].shape == (5, 2)
    assert env.success().all()  # within tol = 0.1 of the goal
    for i in range(3):
        obs, reward, terminated, truncated, info = env.step(torch.tensor([[0.0, 0.5]] * 5))
        assert obs.shape == (5, 2) and reward.shape == (5,) and terminated.dtype == truncated.dtype == torch.bool
        assert truncated.all() == (i == 2)  # after max_steps
    torch.testing.assert_close(reward, -(obs - env.goal).norm(dim=1))
    assert not terminated.any()  # moved 0.15 past the goal: no longer there
    frame = env.render()
    assert frame.shape == (5, 64, 64, 3) and frame.dtype == torch.uint8
    assert frame[..., 0].amax((1, 2)).min() > 200 and frame[..., 1].amax((1, 2)).min() > 200  # agent red, goal green
    with pytest.raises(ValueError, match=r"\[5, 2\]"):
        env.step(torch.zeros(4, 2))


def test_pixel_observations_and_the_expert():
    env = TwoRoomsEnv(8, obs="pixels", size=32, seed=0)
    obs, _ = env.reset(options={"state": torch.tensor([[-0.6, 0.7]] * 8) + 0.05 * torch.randn(8, 2),
                                "goal": torch.tensor([[0.6, -0.6]] * 8)})
    assert obs.shape == (8, 3, 32, 32) and env.goal.shape == (8, 3, 32, 32)
    assert env.observation_space.names == ("N", "C", "H", "W")
    for _ in range(60):
        obs, _, terminated, _, _ = env.step(env.expert())
    assert terminated.all()  # the expert crosses the door and arrives


def test_the_env_agrees_with_the_dynamics():
    rooms, env = TwoRooms(door=0.4, speed=0.1), TwoRoomsEnv(16, seed=0)
    s, _ = env.reset()
    a = torch.randn(16, 2)
    torch.testing.assert_close(env.step(a)[0], rooms.step(s, a))


def test_the_registry():
    assert "two_rooms" in list_envs()
    env = jg.envs.make("two_rooms", n=16, seed=0)
    assert isinstance(env, TwoRoomsEnv) and env.num_envs == 16
    with pytest.raises(jg.SpecError, match="unknown environment `two_room`") as e:
        make("two_room")
    assert "did you mean `two_rooms`" in str(e.value)
    with pytest.raises(jg.SpecError, match="no parameter `dor`") as e:
        make("two_rooms", dor=0.5)
    assert "did you mean `door`" in str(e.value)
    with pytest.raises(ValueError, match="already registered"):
        register_env("two_rooms")(type("Other", (TwoRoomsEnv,), {}))
    with pytest.raises(RuntimeError, match="reset"):
        TwoRoomsEnv(2, seed=0).step(torch.zeros(2, 2))
