"""The two-level H-JEPA (specs/h_jepa.jepa) and the full agent (specs/lecun_agent.jepa).

H-JEPA: each level is one `ac_jepa_level` composite; `levels:`, `world_model:` and `share:` name
its members as `low.state` / `low.pred`. The level programs chain: `stride` level-1 steps and one
level-2 step land in spaces a subgoal distance can compare. Agent: every program runs with the
inputs its modules need, and the cost program is the configurator's weighted sum of its terms.
"""
from __future__ import annotations

import re

import pytest
import torch

import jepa_graph as jg
from conftest import ROOT, SPECS

H_JEPA = SPECS / "h_jepa.jepa"
AGENT = SPECS / "lecun_agent.jepa"
B = 5


@pytest.fixture(scope="module")
def hjepa():
    torch.manual_seed(0)
    return jg.compile(H_JEPA)


@pytest.fixture(scope="module")
def agent():
    torch.manual_seed(0)
    return jg.compile(AGENT)


def _mod(model, node: str) -> torch.nn.Module:
    return model.blocks[model.graph.nodes[node].module]


# ------------------------------------------------------------------------------------ H-JEPA
def test_hjepa_levels_name_composite_members(hjepa):
    g = hjepa.graph
    assert not g.warnings, [w.format() for w in g.warnings]
    low, high = g.levels
    assert (low.name, low.encoder, low.predictor, low.action, low.stride, low.below) == \
        ("low", "low/context_encoder", "low/predictor", "a", 1, None)
    assert (high.name, high.encoder, high.predictor, high.action, high.stride, high.subgoal, high.below) == \
        ("high", "high/context_encoder", "high/predictor", "a2", 4, "l2", "low")
    assert g.world_model.encoder == "low/context_encoder"
    # `share: low.state` applies the level-1 encoder's weights: one module, no copy
    enc1 = g.nodes["low/context_encoder"].module
    assert g.nodes["far"].module == g.nodes["goal_state"].module == enc1
    assert {"encode_low", "step_low", "encode_high", "step_high"} <= set(hjepa.program_names())


def test_hjepa_level_programs_take_their_own_inputs(hjepa):
    assert hjepa.input_names("encode_low") == ["x"]
    assert hjepa.input_names("encode_high") == ["x"]  # level 2 reads level 1's state of x
    assert set(hjepa.input_names("step_low")) == {"state", "a"}
    assert set(hjepa.input_names("step_high")) == {"state", "a2"}
    for prog in ("encode_low", "step_low", "encode_high", "step_high"):
        out = hjepa.run(prog, hjepa.example_inputs(B, name=prog))["state"]
        assert out.shape == (B, 32 if prog.endswith("low") else 16) and torch.isfinite(out).all()


def test_hjepa_stride_rollout_chains_into_a_subgoal(hjepa):
    """4 level-1 steps reach the time of one level-2 step; Enc2 of the level-1 state there is
    compared with level 2's prediction (the subgoal), and the distance reaches every action."""
    stride = hjepa.graph.levels[1].stride
    x = torch.rand(B, 2) * 2 - 1
    s1 = hjepa.run("encode_low", {"x": x})["state"]  # (B, 32)
    actions = torch.zeros(stride, B, 2, requires_grad=True)
    s = s1
    for t in range(stride):
        s = hjepa.run("step_low", {"state": s, "a": actions[t]})["state"]
        assert s.shape == s1.shape
    s2 = hjepa.run("encode_high", {"x": x})["state"]  # (B, 16)
    torch.testing.assert_close(s2, _mod(hjepa, "high/context_encoder")(s1))  # Enc2(Enc1(x))
    planned = hjepa.run("step_high", {"state": s2, "a2": torch.zeros(B, 4)})["state"]
    reached = _mod(hjepa, "high/context_encoder")(s)  # Enc2(s1[t + 4])
    assert reached.shape == planned.shape == (B, 16)
    subgoal = (reached - planned.detach()).pow(2).sum(1)  # the level's `subgoal: l2` distance
    subgoal.sum().backward()
    assert all(actions.grad[t].abs().sum() > 0 for t in range(stride))


def test_hjepa_objective_weights_both_levels_and_trains_jointly(hjepa):
    out = hjepa(**hjepa.example_inputs(8))
    expect = out["low/E"].mean() + out["low/reg"] + 0.5 * (out["high/E"].mean() + out["high/reg"])
    torch.testing.assert_close(out["loss"], expect)
    hjepa.zero_grad()
    out["high/E"].mean().backward()
    grads = {n: p.grad for n, p in hjepa.named_parameters() if p.requires_grad}
    enc1 = [g for n, g in grads.items() if n.startswith("blocks.low__context_encoder.")]
    assert enc1 and all(g is not None and g.abs().sum() > 0 for g in enc1)  # level 2 shapes level 1
    assert all(g is None for n, g in grads.items() if n.startswith("blocks.low__predictor."))
    assert not any(p.requires_grad for n, p in hjepa.named_parameters() if "target_encoder" in n)
    hjepa.zero_grad()


def test_hjepa_level_two_target_reads_level_one_state_of_x_far(hjepa):
    inp = hjepa.example_inputs(B)
    out = hjepa(**inp)
    torch.testing.assert_close(out["far"], hjepa.run("encode_low", {"x": inp["x_far"]})["state"])
    torch.testing.assert_close(out["high/target_encoder"], _mod(hjepa, "high/target_encoder")(out["far"]))


@pytest.mark.parametrize("old, new, message, hint", [
    ("encoder: high.state,", "encoder: high.pred,",
     r"level `high`\.encoder must name an encoder, but `high\.pred` is a predictor", "`high.state`"),
    ("predictor: low.pred, action: a, stride: 1", "predictor: low.pre, action: a, stride: 1",
     r"level `low`\.predictor must name a predictor, but `low\.pre` is not defined", "did you mean `low.pred`"),
    ("share: low.state, in: [x_far]", "share: low.stat, in: [x_far]", r"`far` shares unknown block `low\.stat`",
     "did you mean `low.state`"),
])
def test_hjepa_bad_member_reference_is_located(tmp_path, old, new, message, hint):
    text = jg.format_spec(H_JEPA, to="yaml")  # edited as YAML text
    assert text.count(old) == 1
    bad = text.replace(old, new)
    (tmp_path / "h.yaml").write_text(bad)
    with pytest.raises(jg.SpecError, match=message) as e:
        jg.check(tmp_path / "h.yaml")
    d = e.value.first
    ref = new.split(",")[0].split(": ")[1]
    assert d.loc.file.endswith("h.yaml") and hint in d.hint
    assert bad.splitlines()[d.loc.line - 1][d.loc.col - 1:].startswith(ref)


MEMBER_REFS = """\
name: member_refs
dims: {obs: 3, state: 8}
inputs:
  x:      {shape: [obs]}
  y:      {shape: [obs]}
  x_far:  {shape: [obs]}
blocks:
  lvl:    {kind: composite, type: mlp_jepa_level, in: [x, y], with: {obs: obs, state: state}}
  far:    {kind: encoder, ema_of: lvl.state, in: [x_far], with: {momentum: 0.5}}
  E_far:  {kind: energy, type: l2, in: [lvl.pred, far]}
objective: {lvl.E: 1.0, E_far: 1.0}
world_model: {encoder: lvl.state, predictor: lvl.pred}
"""


def test_ema_and_world_model_may_name_a_composite_output():
    model = jg.compile(jg.loads(MEMBER_REFS))
    g = model.graph
    assert g.nodes["far"].ema_of == "lvl/context_encoder" and g.nodes["far"].ema.range() == (0.5, 0.5)
    assert g.world_model.encoder == "lvl/context_encoder" and g.world_model.predictor == "lvl/predictor"
    src = model.blocks["lvl__context_encoder"]
    tgt = model.blocks[g.nodes["far"].module]
    assert tgt is not src and not any(p.requires_grad for p in tgt.parameters())
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)
    model.update_ema(0.0)  # target <- 0.5 target + 0.5 source
    x = torch.randn(B, 3)
    torch.testing.assert_close(model(x=x, y=x, x_far=x)["far"], tgt(x))
    for pt, ps in zip(tgt.parameters(), src.parameters()):
        torch.testing.assert_close(pt, ps - 0.5)  # started equal; half way towards source + 1


# ------------------------------------------------------------------------------------- agent
def test_agent_programs_take_what_each_module_needs(agent):
    assert not agent.graph.warnings, [w.format() for w in agent.graph.warnings]
    assert agent.input_names("encode") == ["x"]  # perception
    assert set(agent.input_names("step")) == {"state", "a", "z"}  # world model with its latent
    assert set(agent.input_names("cost")) == {"state", "goal", "a"}  # IC(s, a) + critic(s)
    assert set(agent.input_names("act")) == {"state", "goal", "memory"}  # Mode-1 policy
    s = agent.encode(x=torch.rand(B, 2))["state"]
    assert s.shape == (B, 32)
    for _ in range(3):  # a short rollout stays in state space
        s = agent.step(state=s, a=torch.rand(B, 2) * 2 - 1, z=torch.zeros(B, 2))["state"]
        assert s.shape == (B, 32) and torch.isfinite(s).all()
    a = agent.act(state=s, goal=torch.rand(B, 2), memory=torch.randn(B, 8, 32))["action"]
    assert a.shape == (B, 2) and a.abs().max() <= 1.0


def test_agent_actor_reads_short_term_memory_as_its_mean(agent):
    inp = agent.example_inputs(B, name="act")
    a = agent.act(**inp)["action"]
    shuffled = dict(inp, memory=inp["memory"][:, torch.randperm(8)])
    torch.testing.assert_close(agent.act(**shuffled)["action"], a)  # temporal mean pool: order-free
    moved = dict(inp, memory=inp["memory"] + 1.0)
    assert not torch.allclose(agent.act(**moved)["action"], a)


def test_agent_cost_is_the_weighted_sum_of_its_terms(agent):
    state, goal, a = torch.randn(B, 32) * 2, torch.rand(B, 2) * 2 - 1, torch.rand(B, 2) * 2 - 1
    out = agent.cost(state=state, goal=goal, a=a)
    # each term on its own, from its definition
    g = agent.encode(x=goal)["state"]
    torch.testing.assert_close(out["reach"], (state - g).pow(2).mean(1))
    torch.testing.assert_close(out["effort"], a.pow(2).sum(1))
    over = (state - 3.0).clamp(min=0) + (-3.0 - state).clamp(min=0)
    torch.testing.assert_close(out["guardrail"], over.pow(2).sum(1))
    torch.testing.assert_close(out["critic"], _mod(agent, "critic")(state))
    expect = 1.0 * out["reach"] + 0.01 * out["effort"] + 10.0 * out["guardrail"] + 0.5 * out["critic"]
    torch.testing.assert_close(out["cost"], expect)
    assert out["guardrail"][(state.abs() <= 3).all(1)].eq(0).all()  # no cost inside the box


def test_agent_cost_weights_change_only_the_sum(tmp_path):
    text = jg.format_spec(AGENT, to="yaml")  # edited as YAML text
    new, n = re.subn(r"^costs: \{.*\}$", "costs: {reach: 2.0, effort: 0.5, guardrail: 1.0, critic: 0.0}",
                     text, flags=re.M)
    assert n == 1
    (tmp_path / "agent.yaml").write_text(new)
    base = jg.compile(AGENT, seed=0)
    other = jg.compile(tmp_path / "agent.yaml", seed=0)
    sd, sd2 = base.state_dict(), other.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    for prog in ("forward", "loss", "encode", "step", "act"):
        assert base.code(prog) == other.code(prog)
    state, goal, a = torch.randn(B, 32) * 2, torch.rand(B, 2), torch.rand(B, 2)
    c1, c2 = base.cost(state=state, goal=goal, a=a), other.cost(state=state, goal=goal, a=a)
    for term in ("reach", "effort", "guardrail", "critic"):
        torch.testing.assert_close(c1[term], c2[term])
    torch.testing.assert_close(c2["cost"], 2.0 * c2["reach"] + 0.5 * c2["effort"] + 1.0 * c2["guardrail"])
    assert not torch.allclose(c1["cost"], c2["cost"])


def test_agent_critic_and_actor_are_outside_the_world_model_objective(agent):
    agent.zero_grad()
    agent.loss(**agent.example_inputs(8, name="loss")).backward()
    grads = {n: p.grad for n, p in agent.named_parameters()}
    for owner in ("perception", "predictor"):
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(f"blocks.{owner}."))
    for owner in ("critic", "actor"):  # trained by the agent loop from memory / from Mode-2 plans
        assert all(g is None for n, g in grads.items() if n.startswith(f"blocks.{owner}."))
    agent.zero_grad()


def test_a_level_without_a_name_is_told_to_name_the_level(tmp_path):
    text = jg.format_spec(H_JEPA, to="yaml")
    assert text.count("- {name: low, ") == 1
    (tmp_path / "h.yaml").write_text(text.replace("- {name: low, ", "- {"))
    with pytest.raises(jg.SpecError) as e:
        jg.check(tmp_path / "h.yaml", search_path=[str(ROOT / "blocks")])
    d = e.value.first
    assert d.message == "`levels.0` is missing `name`" and "name: low" in d.hint and "encode_low" in d.hint
