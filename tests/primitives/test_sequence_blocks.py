"""Sequence blocks against their definitions written out (the registry's smoke tests run them too)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import jepa_graph as jg
from jepa_graph.core.tensors import TType

pytestmark = pytest.mark.usefixtures("one_thread")


def build(kind: str, name: str, params: dict, ins: list[TType]):
    block = jg.get_block(kind, name)
    p = type(block).Params.model_validate(params, context={"dims": {}})
    return block.infer(p, ins), block.build(p, ins)


def test_inverse_dynamics_is_the_heads_error_on_every_transition():
    want_t, module = build("regularizer", "inverse_dynamics", {"hidden": [8]}, [TType((5, 3)), TType((4, 2))])
    assert want_t.batched is False and want_t.shape == ()
    s = torch.randn(6, 5, 3, requires_grad=True)  # (B, T+1, S)
    a = torch.randn(6, 4, 2)  # (B, T, A)
    got = module(s, a)
    pred = torch.stack([module.head(torch.cat([s[:, t], s[:, t + 1]], -1)) for t in range(4)], 1)
    torch.testing.assert_close(got, ((pred - a) ** 2).mean())
    got.backward()
    assert s.grad.abs().sum() > 0  # it shapes the states, not only its head
    # one transition (s_t, s_{t+1}, a_t) is the same term as a window of one step
    _, one = build("regularizer", "inverse_dynamics", {"hidden": [8]}, [TType((3,)), TType((3,)), TType((2,))])
    one.load_state_dict(module.state_dict())
    torch.testing.assert_close(one(s[:, 0], s[:, 1], a[:, 0]), module(s[:, :2], a[:, :1]))


def test_inverse_dynamics_head_learns_the_action_of_a_linear_move():
    torch.manual_seed(0)
    _, module = build("regularizer", "inverse_dynamics", {"hidden": [32]}, [TType((2, 2)), TType((1, 2))])
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        s0, a = torch.randn(64, 2), torch.randn(64, 2)
        loss = module(torch.stack([s0, s0 + a], 1), a[:, None])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02 * first  # a = s' - s is recoverable from (s, s')


def test_temporal_smoothness_is_the_mean_squared_step():
    t, module = build("regularizer", "temporal_smoothness", {}, [TType((3, 1))])
    s = torch.tensor([[[0.0], [1.0], [3.0]], [[0.0], [0.0], [0.0]]])  # steps of 1 and 2, then none
    torch.testing.assert_close(module(s), torch.tensor((1.0 + 4.0 + 0 + 0) / 4))


def test_discounted_energy_weights_steps_by_gamma():
    _, module = build("energy", "discounted", {"gamma": 0.5}, [TType((3, 2)), TType((3, 2))])
    a = torch.zeros(2, 3, 2)
    b = torch.tensor([1.0, 2.0, 3.0])[None, :, None].expand(2, 3, 2)  # per-step l2 distances 1, 4, 9
    torch.testing.assert_close(module(a, b), torch.full((2,), (1 + 0.5 * 4 + 0.25 * 9) / 1.75))
    # gamma 1: the plain mean over steps, which the l2 energy gives on the whole sequence
    _, flat = build("energy", "discounted", {}, [TType((3, 2)), TType((3, 2))])
    _, l2 = build("energy", "l2", {}, [TType((3, 2)), TType((3, 2))])
    x, y = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    torch.testing.assert_close(flat(x, y), l2(x, y))
    _, cos = build("energy", "discounted", {"distance": "cosine"}, [TType((3, 2)), TType((3, 2))])
    torch.testing.assert_close(cos(x, y), (1 - F.cosine_similarity(x, y, dim=-1)).mean(1))


def test_slice_steps_follows_python_slices():
    t, module = build("op", "slice_steps", {"start": -2}, [TType((5, 3))])
    x = torch.randn(2, 5, 3)
    assert t.shape == (2, 3)
    torch.testing.assert_close(module(x), x[:, 3:])
    t, module = build("op", "slice_steps", {"stop": 1}, [TType((5, 3))])
    assert t.shape == (1, 3)
    torch.testing.assert_close(module(x), x[:, :1])


def test_path_metric_bounds_every_pair_by_its_path_length_and_pushes_windows_apart():
    t, module = build("regularizer", "path_metric", {"margin": 10.0, "tight": 2.0}, [TType((3, 2)), TType((2, 2))])
    assert t.batched is False and t.shape == ()
    a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]] * 2)  # two moves of length 1: bounds 1, 1 and 2 (0->2)
    s = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [2.0, 1.0]],     # 0->1 is 2 (1 over), 1->2 is 1, 0->2 is sqrt 5
                      [[20.0, 0.0], [20.0, 0.0], [20.0, 0.0]]])  # at rest: within every bound
    over = (1.0 ** 2 + 0 + (5 ** 0.5 - 2) ** 2) / 6  # mean over 2 windows x 3 pairs
    # each window against the other (roll by one), step for step: distances 20, 18, 18.03 -> all past 10
    torch.testing.assert_close(module(s, a), torch.tensor(2.0 * over))
    near = s.clone()
    near[1] = s[0] + torch.tensor([3.0, 4.0])  # the second window 5 away at every step
    # both windows now break the same bounds; each state is 5 from its partner: relu(10 - 5)
    torch.testing.assert_close(module(near, a), torch.tensor(2.0 * 2 * over + 5.0))
    # consecutive pairs only: the 0->2 bound is not checked
    _, cons = build("regularizer", "path_metric", {"margin": 10.0, "tight": 2.0, "pairs": "consecutive"},
                    [TType((3, 2)), TType((2, 2))])
    torch.testing.assert_close(cons(s, a), torch.tensor(2.0 * (1.0 / 4)))


def test_path_metric_has_finite_gradients_on_identical_states():
    _, module = build("regularizer", "path_metric", {}, [TType((4, 3)), TType((3, 2))])
    s = torch.zeros(5, 4, 3, requires_grad=True)  # everything collapsed: distance 0 everywhere
    module(s, torch.ones(5, 3, 2)).backward()
    assert torch.isfinite(s.grad).all()


def test_path_metric_unfolds_a_wall_that_a_path_goes_round():
    """Points on a line, with a barrier between 0 and 1: the only path from 0 to 1 is the long way
    round through 2..9. Learned free coordinates end up with d(0, 1) near that path's length."""
    torch.manual_seed(0)
    _, module = build("regularizer", "path_metric", {"margin": 20.0, "tight": 100.0, "pairs": "consecutive"},
                      [TType((2, 2)), TType((1, 2))])
    ring = [0, 2, 3, 4, 5, 6, 7, 8, 9, 1]  # the path: 0 -> 2 -> ... -> 9 -> 1, steps of length 1
    z = torch.nn.Parameter(torch.randn(10, 2) * 0.01)
    opt = torch.optim.Adam([z], lr=0.05)
    pairs = torch.tensor([[ring[i], ring[i + 1]] for i in range(9)])
    for _ in range(1500):
        idx = pairs[torch.randperm(9)]
        s = z[idx]  # (9 windows, 2 states, 2)
        loss = module(s, torch.tensor([[[1.0, 0.0]]]).expand(9, 1, 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        steps = (z[pairs[:, 0]] - z[pairs[:, 1]]).norm(dim=1)
        assert steps.max() < 1.1  # the path bound holds
        assert (z[0] - z[1]).norm() > 4.0  # far apart, though neighbours in index (a chain of 9 steps)
