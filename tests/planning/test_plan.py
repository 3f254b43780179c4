"""``jg.plan`` through compiled specs: a linear world model whose optimum is known, the cost's
terms and weights from the spec (changed at call time), warm starts, actor proposals, latent
policies, and the located errors for bad input."""
from __future__ import annotations

import logging

import pytest
import torch

import jepa_graph as jg
from jepa_graph import SpecError
from jepa_graph.planning import DynamicsModel, NonFiniteCostError
from jepa_graph.planning.world import world_of
from jepa_graph.search import Continuous
from conftest import SPECS

pytestmark = pytest.mark.usefixtures("one_thread")

LINEAR = """\
name: linear_world
dims: {obs: 2, act: 2}
inputs:
  x: {shape: [obs]}
  x_next: {shape: [obs]}
  goal: {shape: [obs]}
actions:
  a: {shape: [act], bounds: [-3, 3]}
blocks:
  enc: {kind: encoder, type: mlp, in: [x], with: {hidden: [], out: obs}}
  target: {kind: encoder, share: enc, in: [x_next]}
  pred: {kind: predictor, type: mlp, in: [enc, a], with: {hidden: [], out: obs}}
  E: {kind: energy, type: l2, in: [pred, target]}
  g: {kind: encoder, share: enc, in: [goal]}
  reach: {kind: cost, type: goal_distance, in: [pred, g]}
  effort: {kind: cost, type: l2, in: [a]}
objective: {E: 1.0}
world_model: {encoder: enc, predictor: pred, action: a}
costs: {reach: 1.0, effort: 0.1}
"""
B, H = 3, 5
M = torch.tensor([[0.5, 0.1], [-0.2, 0.4]])


def linear_model(text: str = LINEAR):
    """s' = s + M a, the encoder the identity: reach = |s - g|^2 / 2 (a mean over 2 dims)."""
    model = jg.compile(jg.loads(text, "linear.yaml"))
    with torch.no_grad():
        model.blocks["enc"][0].weight.copy_(torch.eye(2))
        model.blocks["enc"][0].bias.zero_()
        model.blocks["pred"][0].weight.copy_(torch.cat([torch.eye(2), M], 1))
        model.blocks["pred"][0].bias.zero_()
    return model


def optimum(x, goal, effort=0.1, discount=1.0) -> torch.Tensor:
    """argmin_a sum_t d^t (|s_{t+1} - g|^2 / 2 + effort |a_t|^2), per environment: (B, H, 2)."""
    K = torch.zeros(2 * H, 2 * H)
    for t in range(H):
        for i in range(t + 1):
            K[2 * t:2 * t + 2, 2 * i:2 * i + 2] = M
    d = torch.tensor([discount ** t for t in range(H)]).repeat_interleave(2)
    Q = 0.5 * K.T @ torch.diag(d) @ K + effort * torch.diag(d)
    return torch.stack([torch.linalg.solve(Q, 0.5 * K.T @ (d * (goal[b] - x[b]).repeat(H))).view(H, 2)
                        for b in range(x.shape[0])])


@pytest.fixture
def problem():
    gen = torch.Generator().manual_seed(1)
    return linear_model(), torch.rand(B, 2, generator=gen) * 2 - 1, torch.rand(B, 2, generator=gen) * 2 - 1


@pytest.mark.parametrize("method, options, tol", [
    ("cem", dict(iterations=15, samples=256, min_std=0.001), 0.05),
    ("mppi", dict(iterations=15, min_std=0.001), 0.05),
    ("gradient", dict(steps=40, lr=1.0, optimizer="lbfgs", restarts=1), 1e-3),
    ("cem+gradient", dict(iterations=4, steps=200, lr=0.05), 0.02),
])
def test_plan_finds_the_optimum_through_the_compiled_model(problem, method, options, tol):
    model, x, goal = problem
    plan = jg.plan(model, x, goal, method=method, horizon=H, **options)
    opt = optimum(x, goal)
    assert plan.actions.shape == (B, H, 2) and plan.cost.shape == (B,) and plan.states.shape == (B, H, 2)
    assert (plan.actions - opt).abs().max() < tol
    assert torch.allclose(plan.states, x[:, None] + torch.cumsum(plan.actions @ M.T, 1), atol=1e-5)
    # the reported cost is the spec's weighted sum of its terms
    assert torch.allclose(plan.cost, plan.terms["reach"] + 0.1 * plan.terms["effort"], atol=1e-5)
    assert plan.info["method"] == method and plan.info["horizon"] == H


def test_cost_weights_change_at_call_time_without_recompiling(problem):
    model, x, goal = problem
    kw = dict(method="gradient", horizon=H, steps=40, lr=1.0, optimizer="lbfgs", restarts=1)
    jg.plan(model, x, goal, **kw)
    programs = dict(model._programs)
    plan = jg.plan(model, x, goal, weights={"effort": 1.0}, **kw)
    assert (plan.actions - optimum(x, goal, effort=1.0)).abs().max() < 1e-3
    assert (plan.actions - optimum(x, goal, effort=0.1)).abs().max() > 0.05  # a different optimum
    assert plan.info["weights"] == {"reach": 1.0, "effort": 1.0}
    assert all(model._programs[k] is v for k, v in programs.items()) and model._programs.keys() == programs.keys()
    off = jg.plan(model, x, goal, weights={"effort": 0}, **kw)
    assert off.info["weights"] == {"reach": 1.0}  # a term weighted 0 is not summed at all


def test_discount_and_terminal_cost(problem):
    model, x, goal = problem
    kw = dict(method="gradient", horizon=H, steps=60, lr=1.0, optimizer="lbfgs", restarts=1)
    plan = jg.plan(model, x, goal, discount=0.5, **kw)
    assert (plan.actions - optimum(x, goal, discount=0.5)).abs().max() < 1e-3
    # the terminal state alone: any path to the goal with a_{H-1} = 0 costs 0
    plan = jg.plan(model, x, goal, terminal_only=True, **kw)
    assert plan.cost.abs().max() < 1e-5
    assert torch.allclose(plan.states[:, -1], goal, atol=2e-3)


def test_batched_plans_equal_per_environment_plans(problem):
    model, x, goal = problem
    seeds = jg.planning.env_seeds(3, B)
    together = jg.plan(model, x, goal, method="icem", horizon=H, iterations=3, samples=64, seed=seeds)
    for b in range(B):
        alone = jg.plan(model, x[b:b + 1], goal[b:b + 1], method="icem", horizon=H, iterations=3, samples=64,
                        seed=[seeds[b]])
        assert torch.allclose(alone.actions[0], together.actions[b], atol=1e-6)


def test_one_rollout_call_per_iteration_for_every_candidate(problem, monkeypatch):
    model, x, goal = problem
    calls = []
    run = model.run

    def counting(name, inputs):
        if name == "rollout":
            calls.append(inputs["state"].shape[0])
        return run(name, inputs)

    monkeypatch.setattr(model, "run", counting)
    plan = jg.plan(model, x, goal, method="cem", horizon=H, iterations=4, samples=32)
    # four iterations of 32 candidates x 3 environments, the final mean, and the plan's own states
    assert calls == [32 * B] * 4 + [B, B]
    assert plan.info["rollouts"] == 4 * 32 * B + B and plan.info["evaluations"] == 5


def test_warm_start_is_candidate_zero(problem):
    model, x, goal = problem
    opt = optimum(x, goal)
    plan = jg.plan(model, x, goal, method="cem", horizon=H, iterations=1, samples=1, elites=1, init=opt)
    assert torch.allclose(plan.actions, opt)
    shifted = plan.shifted(2)["action"]
    assert torch.equal(shifted[:, :3], opt[:, 2:]) and torch.equal(shifted[:, 3:], opt[:, -1:].expand(-1, 2, -1))


def test_non_finite_costs_name_the_block(problem, caplog):
    model, x, goal = problem
    with torch.no_grad():  # a huge action gain: (1e30 a)^2 overflows in `reach` for any a != 0
        model.blocks["pred"][0].weight[:, 2:] = 1e30
    with caplog.at_level(logging.WARNING, logger="jepa_graph.planning"):
        plan = jg.plan(model, x, goal, method="cem", horizon=H, iterations=2, samples=16)
    assert torch.isfinite(plan.cost).all() and torch.equal(plan.actions, torch.zeros(B, H, 2))  # a = 0: finite
    assert plan.info["nonfinite"] > 0
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("linear.yaml:") and "block `reach` (cost.goal_distance)" in msg and "iteration 0" in msg
    with pytest.raises(NonFiniteCostError, match=r"linear.yaml:\d+:\d+: plan cost is .* block `reach`"):
        jg.plan(model, x, goal, method="cem", horizon=H, iterations=2, samples=16, on_nonfinite="raise")
    with torch.no_grad():
        model.blocks["pred"][0].bias[0] = float("nan")  # every candidate: the predictor itself
    with pytest.raises(NonFiniteCostError, match=r"every candidate of 3 of 3 .*block `pred` \(predictor.mlp\)"
                                                 r" gives non-finite values at rollout step 1"):
        jg.plan(model, x, goal, method="mppi", horizon=H, iterations=2, samples=16)


def test_bad_input_gets_located_errors(problem, tmp_path):
    model, x, goal = problem
    with pytest.raises(SpecError, match="horizon must be a whole number >= 1, got 0"):
        jg.plan(model, x, goal, horizon=0)
    # at the goal's declaration
    with pytest.raises(SpecError, match=r"linear.yaml:6:3: error: input `goal` should be \[B, 2\], got \[3, 3\]"):
        jg.plan(model, x, torch.zeros(B, 3), horizon=2)
    with pytest.raises(SpecError, match=r"linear.yaml:6:3: .*need input `goal` \[B, 2\]"):
        jg.plan(model, x, None, horizon=2)
    with pytest.raises(SpecError, match=r"input `goal` has 2 rows for 3 environments"):
        jg.plan(model, x, goal[:2], horizon=2)
    bad = x.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(SpecError, match=r"linear.yaml:4:3: error: observation `x` holds NaN or inf values \(1 of 3"):
        jg.plan(model, bad, goal, horizon=2)
    with pytest.raises(SpecError, match=r"linear.yaml:\d+:\d+: .*`reech` is not a cost term[\s\S]*did you mean"):
        jg.plan(model, x, goal, horizon=2, weights={"reech": 1.0})
    with pytest.raises(SpecError, match=r"`init\['action'\]` has shape \[3, 4, 2\], expected \[3, 2, 2\]"):
        jg.plan(model, x, goal, horizon=2, init=torch.zeros(B, 4, 2))
    with pytest.raises(SpecError, match="unknown latent policy `zeros`"):
        jg.plan(model, x, goal, horizon=2, latent="zeros")
    with pytest.raises(SpecError, match="has no latent to optimise"):
        jg.plan(model, x, goal, horizon=2, latent="optimise")
    with pytest.raises(SpecError, match="no actor to propose"):
        jg.plan(model, x, goal, horizon=2, actor=True)


def test_specs_without_a_world_model_or_costs_are_refused():
    with pytest.raises(SpecError, match=r"vicreg.jepa:\d+:\d+: error: `vicreg` has no world model"):
        jg.plan(jg.compile(SPECS / "vicreg.jepa"), torch.zeros(2, 3, 32, 32), None)
    no_costs = LINEAR.replace("costs: {reach: 1.0, effort: 0.1}\n", "")
    with pytest.raises(SpecError, match=r"linear.yaml:\d+:\d+: error: `linear_world` has no `costs`"):
        jg.plan(linear_model(no_costs), torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(SpecError, match=r"the costs of `seed_world_model` \(`critic`\) take no goal"):
        jg.plan(jg.compile(SPECS / "seed_world_model.yaml"), torch.zeros(2, 16), torch.zeros(2, 2))


def test_the_actor_proposes_a_candidate():
    """seed_world_model has an actor: rolled out through the world model, its plan is a candidate."""
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    x = torch.randn(4, 16)
    world = world_of(model)
    with torch.no_grad():
        actor = world.propose(world.encode(x), {}, None, 3)
    assert actor.shape == (4, 3, 4) and actor.abs().max() <= 1
    plan = jg.plan(model, x, method="cem", horizon=3, iterations=1, samples=2, elites=1)  # the mean, the actor
    assert plan.info["proposals"] == 1
    for b in range(4):
        assert torch.equal(plan.actions[b], actor[b]) or torch.equal(plan.actions[b], torch.zeros(3, 4))
    assert jg.plan(model, x, method="cem", horizon=3, iterations=1, samples=4, actor=False).info["proposals"] == 0


def test_the_agent_spec_plans_with_its_four_terms_and_memory():
    model = jg.compile(SPECS / "lecun_agent.jepa", seed=0)
    x, goal, memory = torch.rand(2, 2), torch.rand(2, 2), torch.randn(2, 8, 32)
    plan = jg.plan(model, x, goal, method="cem", horizon=3, iterations=2, samples=16)
    assert set(plan.terms) == {"reach", "effort", "guardrail", "critic"} and plan.info["proposals"] == 0
    plan = jg.plan(model, x, goal, method="cem", horizon=3, iterations=2, samples=16, context={"memory": memory},
                   weights={"critic": 0.0})
    assert plan.info["proposals"] == 1 and "critic" not in plan.info["weights"]
    with pytest.raises(SpecError, match="neither the costs nor the actor .* take an input `memroy`"):
        jg.plan(model, x, goal, horizon=3, context={"memroy": memory})


def test_latent_policies():
    model = jg.compile(SPECS / "two_rooms.yaml", seed=0)
    x, goal = torch.rand(2, 2), torch.rand(2, 2)
    kw = dict(method="cem", horizon=4, iterations=2, samples=16)
    zero = jg.plan(model, x, goal, **kw)
    s1, s2 = (jg.plan(model, x, goal, latent="sample", **kw) for _ in range(2))
    assert torch.equal(s1.actions, s2.actions) and not torch.equal(s1.actions, zero.actions)
    z = torch.full((2, 4, 2), 0.3)
    opt = jg.plan(model, x, goal, latent="optimise", method="cem", horizon=4, iterations=1, samples=1, elites=1,
                  init={"action": torch.zeros(2, 4, 2), "latent": z})  # the plan is the start itself
    assert zero.latents is None and torch.equal(opt.latents, z)
    # optimised latents pay their declared R(z) = 0.05 |z|_1 per step
    assert torch.allclose(opt.cost, opt.terms["reach"] + 0.05 * 0.3 * 8, atol=1e-6)
    fixed = jg.plan(model, x, goal, method="cem", horizon=4, iterations=1, samples=1, elites=1,
                    init=torch.zeros(2, 4, 2))
    assert not torch.allclose(fixed.terms["reach"], opt.terms["reach"])  # z enters the predictor


def test_a_dynamics_model_plans_too():
    world = DynamicsModel(lambda s, a: s + 0.1 * a, lambda s, a, g: (s - g).pow(2).sum(1), Continuous((2,), -1.0, 1.0))
    x, goal = torch.zeros(2, 2), torch.tensor([[0.3, 0.0], [0.0, -0.2]])
    plan = jg.plan(world, x, goal, method="gradient", horizon=4, steps=40, lr=1.0, optimizer="lbfgs", restarts=1)
    assert torch.allclose(plan.states[:, -1], goal, atol=0.05)
    with pytest.raises(SpecError, match="goal has 1 rows for 2 environments"):
        jg.plan(world, x, goal[:1])
    with pytest.raises(SpecError, match="not a cost term of dynamics"):
        jg.plan(world, x, goal, weights={"reach": 1.0})
