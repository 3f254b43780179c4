"""The wall-leak metric (training/metrics.py): its definition on world models whose predictions are
known (an oracle of the walls, one that ignores them, one that never moves), and its logging.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import jepa_graph as jg
from jepa_graph.core import registry
from jepa_graph.data import make_source, spec_inputs
from jepa_graph.envs.wall_rooms import WallRooms
from jepa_graph.training.metrics import LeakProbe, wall_leaks, walked_through
from jepa_graph.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


class WallOracle(jg.BlockType):
    """Test predictor: the environment's own move on a state (x, y, wall_x, door_y)."""

    arity = (2, 2)

    def infer(self, p, ins):
        return ins[0]

    def build(self, p, ins):
        class Move(nn.Module):
            def forward(self, s, a):
                pos, _ = WallRooms().move(s[:, :2], a, s[:, 2], s[:, 3])
                return torch.cat([pos, s[:, 2:]], 1)
        return Move()

    @classmethod
    def example(cls):
        return {}, [jg.TType((4,)), jg.TType((2,))]


@pytest.fixture(scope="module", autouse=True)
def _oracle():
    jg.register_block("test_wall_oracle", kind="predictor")(WallOracle)
    yield
    del registry._REGISTRY[("predictor", "test_wall_oracle")]


IDENTITY = """\
name: known_world
dims: {obs: 4, act: 2}
inputs:
  x: {shape: [obs]}
actions:
  a: {shape: [act]}
blocks:
  enc:  {kind: encoder, type: mlp, in: [x], with: {out: 4}}
  pred: PRED
world_model: {encoder: enc, predictor: pred, action: a}
"""
LINEAR = "{kind: predictor, type: mlp, in: [enc, a], with: {out: 4}}"


def known(pred: str, action_gain: float = 1.0):
    """The state is the observation (identity encoder); ``pred`` is the oracle or s + gain * a."""
    model = jg.compile(jg.loads(IDENTITY.replace("PRED", pred), "known.yaml"))
    with torch.no_grad():
        enc = model.blocks["enc"][0]
        enc.weight.copy_(torch.eye(4))
        enc.bias.zero_()
        if pred == LINEAR:
            lin = model.blocks["pred"][0]
            lin.weight.copy_(torch.cat([torch.eye(4), action_gain * torch.eye(4, 2)], 1))
            lin.bias.zero_()
    return model


@pytest.fixture(scope="module")
def windows():
    src = make_source("two_rooms_wall", {"variant": "fixed", "horizon": 6, "obs": "state", "episodes": 64},
                      {"x": jg.TType((4,))}, seed=3)
    b = src.sample(256, torch.Generator().manual_seed(0))
    assert 0 < int(b["blocked_seq"].sum()) < b["blocked_seq"].numel()
    return b


def test_walked_through_is_position_plus_action(windows):
    b = windows
    thru = walked_through(b["state_seq"], b["a_seq"], pixels=False)  # (N, H, 4)
    torch.testing.assert_close(thru[..., :2], b["state_seq"][:, :-1, :2] + b["a_seq"])
    torch.testing.assert_close(thru[..., 2:], b["state_seq"][:, :-1, 2:])
    free = ~b["blocked_seq"]
    torch.testing.assert_close(thru[free], b["x_seq"][:, 1:][free])  # a move no wall stops ends there
    img = walked_through(b["state_seq"][:2], b["a_seq"][:2], pixels=True)  # (2, H, 2, 65, 65)
    rooms = WallRooms()
    pos = thru[:2].reshape(-1, 4)
    want = rooms.pixels(pos[:, :2], rooms.walls(pos[:, 2], pos[:, 3])).reshape(img.shape)
    torch.testing.assert_close(img, want)


@pytest.mark.parametrize("pred,gain,leak,stall", [
    ("{kind: predictor, type: test_wall_oracle, in: [enc, a]}", None, 0.0, 0.0),  # knows the walls
    (LINEAR, 1.0, 1.0, 0.0),  # moves by the action, through walls
    (LINEAR, 0.0, 0.0, 1.0),  # never moves: no leak, every free move stalls
])
def test_leak_and_stall_of_known_world_models(windows, pred, gain, leak, stall):
    b = windows
    model = known(pred, gain if gain is not None else 1.0)
    thru = walked_through(b["state_seq"], b["a_seq"], pixels=False)
    out = wall_leaks(model, b["x_seq"], b["a_seq"], b["blocked_seq"], thru)
    assert out["leak.blocked"] == float(b["blocked_seq"].sum())
    assert (out["leak.step"], out["stall.step"]) == (leak, stall), out
    if gain is None:  # exact, so its open-loop rollout is too
        assert (out["leak.rollout"], out["stall.rollout"]) == (0.0, 0.0), out
    else:  # a rollout drifts from the true states, so each judgement is against where the agent really was
        assert abs(out["leak.rollout"] - leak) < 0.2 and abs(out["stall.rollout"] - stall) < 0.2, out


def test_leak_counts_only_blocked_moves_and_is_nan_without_any(windows):
    b = windows
    model = known(LINEAR, 1.0)
    thru = walked_through(b["state_seq"], b["a_seq"], pixels=False)
    one = torch.zeros_like(b["blocked_seq"])
    one[tuple(b["blocked_seq"].nonzero()[0].tolist())] = True  # a single blocked move
    assert wall_leaks(model, b["x_seq"], b["a_seq"], one, thru)["leak.step"] == 1.0
    none = wall_leaks(model, b["x_seq"], b["a_seq"], torch.zeros_like(one), thru)
    assert math.isnan(none["leak.step"]) and none["leak.blocked"] == 0.0


SEQ = """\
name: tiny_wall
dims: {obs: 4, state: 8, act: 2, H: 4, H1: 5}
inputs:
  x:     {shape: [obs]}
  x_seq: {shape: [H1, obs]}
  a_seq: {shape: [H, act]}
actions:
  a: {shape: [act]}
blocks:
  enc:      {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state, norm: true}}
  pred:     {kind: predictor, type: ac_mlp, in: [enc, a], with: {branch: 8, hidden: [16], out: state}}
  s_seq:    {kind: encoder, share: enc, in: [x_seq], each_step: true}
  pred_seq: {kind: predictor, unroll: pred, in: [s_seq, a_seq]}
  tgt_seq:  {kind: op, type: slice_steps, in: [s_seq], with: {start: 1}}
  E:        {kind: energy, type: l2, in: [pred_seq, tgt_seq]}
  vic:      {kind: regularizer, type: vicreg, in: [s_seq], each_step: true, with: {std: 1.0, cov: 0.04}}
objective: {E: 1.0, vic: 1.0}
world_model: {encoder: enc, predictor: pred, action: a}
train: {steps: 6, batch_size: 8, monitor_every: 3, log_every: 2,
        data: {source: two_rooms_wall, with: {variant: fixed, horizon: 4, obs: state, episodes: 16, length: 20}}}
"""


def test_training_logs_the_leak_rate_without_changing_the_run():
    runs = []
    for probe in (True, False):
        model = jg.compile(jg.loads(SEQ, "tiny_wall.yaml"), seed=0)
        trainer = Trainer(model, progress=False)
        assert isinstance(trainer.leak_probe, LeakProbe)
        if not probe:
            trainer.leak_probe = None
        runs.append(trainer.fit())
    logged, plain = runs
    torch.testing.assert_close(torch.tensor(logged.losses), torch.tensor(plain.losses), rtol=0, atol=0)
    monitored = [r for r in logged.history if "collapse.enc.std" in r]
    assert [r["step"] for r in monitored] == [3, 6]
    for r in monitored:
        assert 0 <= r["leak.step"] <= 1 and 0 <= r["stall.rollout"] <= 1 and r["leak.blocked"] > 0
    assert not any("leak.step" in r for r in plain.history)


def test_no_probe_without_wall_data():
    model = jg.compile("specs/two_rooms.yaml", seed=0)
    trainer = Trainer(model, "two_rooms", steps=1, progress=False)
    assert trainer.leak_probe is None
