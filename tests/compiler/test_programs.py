"""The program table: each program declared once as data, lowered once into the model's one
cache; the rollout program is H steps of ``step`` in one batched call; world models and levels
are typed objects on the graph, and how levels stack is checked.
"""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch

import jepa_graph as jg
from jepa_graph.compiler.graph import Level, WorldModel
from jepa_graph.compiler.lower import Rollout
from jepa_graph.compiler.programs import Program, declare, table
from jepa_graph.training.metrics import rollout_error
from conftest import SPECS, spec_files

pytestmark = pytest.mark.usefixtures("one_thread")
B, H = 5, 4


# ------------------------------------------------------------------------------------ the table
@pytest.mark.parametrize("path", spec_files(), ids=lambda p: p.name)
def test_signatures_as_data_match_the_lowered_programs(path):
    """A program's inputs are read off the graph (no lowering); the lowered module takes exactly those."""
    model = jg.compile(path)
    assert list(model.programs) == model.program_names() and model.programs == table(model.graph)
    for name, p in model.programs.items():
        prog = model.program(name)
        step = prog.step if isinstance(prog, Rollout) else prog
        assert isinstance(prog, Rollout) == (p.unroll is not None)
        placeholders = [n.target for n in step.graph.nodes if n.op == "placeholder"]
        assert [a.name for a in model.signature(name)] == placeholders, name
        for a in model.signature(name):
            assert a.ttype == model.graph.nodes[a.node].ttype and a.loc == model.graph.nodes[a.node].loc
            assert a.steps == (p.unroll is not None and a.name != "state")


def test_the_table_of_a_world_model_and_of_a_plain_jepa():
    seed = jg.compile(SPECS / "seed_world_model.yaml")
    assert seed.program_names() == ["forward", "energy", "loss", "encode", "step", "rollout", "cost", "act"]
    assert seed.programs["rollout"].unroll == "step" and seed.programs["step"].level is seed.graph.world_model
    assert jg.compile(SPECS / "ijepa.jepa").program_names() == ["forward", "energy", "loss"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        seed.programs["step"].name = "other"


def test_one_cache_serves_model_calls_training_and_latent_inference():
    fork = jg.compile(SPECS / "fork.jepa", seed=0)
    assert fork.program("step") is fork.program("step")
    assert fork.program("rollout").step is fork.program("step")  # a rollout repeats the cached step
    with pytest.raises(jg.SpecError, match=r"has no program `energy_over_z_prefix`"):
        fork.program("energy_over_z_prefix")
    batch = {"x": torch.randn(B, 4), "y": torch.randn(B, 4)}
    jg.minimize_energy(fork, batch, method="enumerate")  # hoists the encoders: declares the energy's two halves
    prefix = fork.program("energy_over_z_prefix")
    jg.minimize_energy(fork, batch, method="enumerate")
    assert fork.program("energy_over_z_prefix") is prefix  # built once, in the model's cache
    trainer = jg.Trainer(fork, {"x": torch.randn(16, 4), "y": torch.randn(16, 4)}, steps=1, batch_size=8,
                         progress=False)
    assert trainer.program is fork.program("train_step")
    assert jg.Trainer(fork, trainer.source, steps=1, batch_size=8, progress=False).program is trainer.program


def test_a_name_is_declared_once():
    seed = jg.compile(SPECS / "seed_world_model.yaml")
    mine = declare("just_the_encoder", {"s": "encoder"})
    assert seed.program(mine) is seed.program("just_the_encoder")
    assert seed.input_names("just_the_encoder") == ["x"]
    with pytest.raises(ValueError, match="declared twice"):
        seed.program(declare("just_the_encoder", {"s": "predictor"}))
    with pytest.raises(ValueError, match="declared twice"):
        seed.program(Program("step"))  # a table entry keeps its declaration


# ---------------------------------------------------------------------------------- rollout
def _manual(model, name: str, feed: dict) -> torch.Tensor:
    """H calls of the step program, as a planner would write them by hand: (B, H, *S)."""
    wm = model.programs[name].level
    step = name.replace("rollout", "step")
    s, out = feed["state"], []
    for t in range(feed[wm.steps[0]].shape[1]):
        s = model.run(step, {**feed, "state": s, **{k: feed[k][:, t] for k in wm.steps}})["state"]
        out.append(s)
    return torch.stack(out, 1)


@pytest.mark.parametrize("spec, name", [("seed_world_model.yaml", "rollout"), ("two_rooms.yaml", "rollout"),
                                        ("fork.jepa", "rollout"), ("lecun_agent.jepa", "rollout"),
                                        ("h_jepa.jepa", "rollout_low"), ("h_jepa.jepa", "rollout_high")])
def test_rollout_equals_h_manual_steps(spec, name):
    model = jg.compile(SPECS / spec, seed=0)
    feed = model.example_inputs(B, name=name, horizon=H)
    states = model.run(name, feed)["states"]
    state = model.signature(name)[-1]
    assert state.name == "state" and states.shape == (B, H, *state.ttype.shape)
    torch.testing.assert_close(states, _manual(model, name, feed), rtol=0, atol=0)


def test_rollout_is_batched_over_candidates_and_differentiable():
    """Rows ``c * B + b`` (candidate c of environment b) roll out as if each were alone, and the
    last state's gradient reaches every action."""
    model = jg.compile(SPECS / "two_rooms.yaml", seed=0)
    C = 3
    s = model.encode(x=torch.rand(B, 2))["state"]  # (B, S)
    a = torch.rand(C * B, H, 2, requires_grad=True)
    z = torch.randn(C * B, H, 2)
    states = model.rollout(state=s.repeat(C, 1), a=a, z=z)["states"]
    for c in range(C):
        rows = slice(c * B, (c + 1) * B)
        alone = model.rollout(state=s, a=a[rows], z=z[rows])["states"]
        torch.testing.assert_close(states[rows], alone)
    states[:, -1].sum().backward()
    assert (a.grad.abs().flatten(2).sum(2) > 0).all()


def test_rollout_compiles_without_graph_breaks():
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile (dynamo) is not supported here")
    torch._dynamo.reset()
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    prog = model.program("rollout")
    feed = model.example_inputs(8, name="rollout", horizon=H)
    ex = torch._dynamo.explain(prog)(**feed)
    assert (ex.graph_count, ex.graph_break_count) == (1, 0), ex.break_reasons
    torch._dynamo.reset()
    got = torch.compile(prog, backend="aot_eager", fullgraph=True)(**feed)["states"]
    torch.testing.assert_close(got, prog(**feed)["states"])
    torch._dynamo.reset()


def test_rollout_code_shows_the_loop():
    code = jg.compile(SPECS / "two_rooms.yaml").code("rollout")
    assert code.count("def forward(self") == 1 and "for t in range(" in code and "self.step(" in code


def test_rollout_error_reads_the_rollout_program(monkeypatch):
    """rollout_error's predictions are one rollout call; they equal H manual steps."""
    model = jg.compile(SPECS / "seed_world_model.yaml", seed=0)
    x, a = torch.randn(6, H + 1, 16), torch.rand(6, H, 4)
    calls = []
    real = model.run
    monkeypatch.setattr(model, "run", lambda name, inputs: calls.append(name) or real(name, inputs))
    err = rollout_error(model, x, a, target="target")
    assert calls.count("rollout") == 1 and "step" not in calls
    with torch.no_grad():
        s = model.encode(x=x[:, 0])["state"]
        true = torch.stack([model.blocks.encoder(x[:, t]) for t in range(H + 1)], 1)  # `target` shares it
        var = ((true - true.mean((0, 1))) ** 2).sum(-1).mean()
        want = []
        for t in range(H):
            s = model.step(state=s, a=a[:, t])["state"]
            want.append((((s - true[:, t + 1]) ** 2).sum(-1).mean() / var).item())
    assert err["model"] == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------------------- typed levels
LEVELS = """\
name: stacked
dims: {obs: 4, s1: 8, s2: 4, act: 2, plan: 3}
inputs:
  x: {shape: [obs]}
actions:
  a:  {shape: [act], bounds: [-1, 1]}
  a2: {shape: [plan]}
blocks:
  enc1:  {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: s1}}
  pred1: {kind: predictor, type: mlp, in: [enc1, a], with: {hidden: [16], out: s1}}
  enc2:  {kind: encoder, type: mlp, in: [enc1], with: {out: s2}}
  pred2: {kind: predictor, type: mlp, in: [enc2, a2], with: {hidden: [16], out: s2}}
world_model: {encoder: enc1, predictor: pred1, action: a, stride: 2}
levels:
  - {name: fine_grain, encoder: enc1, predictor: pred1, action: a, stride: 2}
  - {name: coarse_grain, encoder: enc2, predictor: pred2, action: a2, stride: 6, subgoal: cosine}
"""


def test_world_model_and_levels_are_typed():
    model = jg.compile(jg.loads(LEVELS), seed=0)
    g = model.graph
    assert type(g.world_model) is WorldModel and all(type(lv) is Level for lv in g.levels)
    fine, coarse = g.levels
    assert (fine.index, fine.below, coarse.index, coarse.below) == (0, None, 1, "fine_grain")
    assert (coarse.stride, coarse.subgoal, coarse.steps) == (6, "cosine", ("a2",))
    assert (g.world_model.what, coarse.what) == ("world_model", "level `coarse_grain`")
    with pytest.raises(dataclasses.FrozenInstanceError):
        coarse.stride = 3
    # a level's programs carry the level itself: names with `_` in them are never parsed
    assert model.programs["step_coarse_grain"].level is coarse
    feed = model.example_inputs(B, name="rollout_coarse_grain", horizon=H)
    assert set(feed) == {"a2", "state"} and feed["state"].shape == (B, 4) and feed["a2"].shape == (B, H, 3)
    assert model.run("rollout_coarse_grain", feed)["states"].shape == (B, H, 4)


def _check(text: str):
    with pytest.raises(jg.SpecError) as e:
        jg.check(jg.loads(text, "stacked.yaml"))
    d = e.value.first
    return d, text.splitlines()[d.loc.line - 1][d.loc.col - 1:]


@pytest.mark.parametrize("old, new, message, at", [
    ("stride: 6, subgoal", "stride: 3, subgoal",
     r"level `coarse_grain` has stride 3, not a multiple of the stride 2 of level `fine_grain` below it", "3, subgoal"),
    ("stride: 6, subgoal", "stride: 1, subgoal", r"has stride 1, not a multiple of the stride 2", "1, subgoal"),
    ("enc2:  {kind: encoder, type: mlp, in: [enc1]", "enc2:  {kind: encoder, type: mlp, in: [x]",
     r"level `coarse_grain`: encoder `enc2` does not read the states of level `fine_grain` \(encoder `enc1`\)",
     "enc2, predictor: pred2"),
    ("action: a, stride: 2}\nlevels", "action: a, stride: 1}\nlevels",
     r"world_model unrolls level `fine_grain` \(the same encoder and predictor\) with stride 1, "
     r"but the level has stride 2", "1}"),
])
def test_how_levels_stack_is_checked_and_located(old, new, message, at):
    assert LEVELS.count(old) == 1
    d, where = _check(LEVELS.replace(old, new))
    assert re.search(message, d.message), d.format()
    assert where.startswith(at) and d.hint and d.loc.file == "stacked.yaml"


def test_a_level_encoder_reading_more_than_the_level_below_is_located():
    text = LEVELS.replace("inputs:\n  x: {shape: [obs]}", "inputs:\n  x: {shape: [obs]}\n  g: {shape: [s1]}").replace(
        "  enc2:  {kind: encoder, type: mlp, in: [enc1], with: {out: s2}}",
        "  cat:   {kind: op, type: concat, in: [enc1, g]}\n  enc2:  {kind: encoder, type: mlp, in: [cat], with: {out: s2}}")
    d, where = _check(text)
    assert d.message == "level `coarse_grain`: encoder `enc2` reads input `g` besides the states of level `fine_grain`"
    assert where.startswith("enc2, predictor") and d.related and "feed `enc2` from `enc1` only" in d.hint


def test_a_subgoal_on_the_lowest_level_is_a_located_warning():
    text = LEVELS.replace("action: a, stride: 2}\n  - {name: coarse", "action: a, stride: 2, subgoal: l1}\n  - {name: coarse")
    g = jg.check(jg.loads(text, "stacked.yaml"))
    (w,) = g.warnings
    assert w.message == "level `fine_grain` is the lowest level: its `subgoal` is not used" and w.hint
    assert text.splitlines()[w.loc.line - 1][w.loc.col - 1:].startswith("l1}")
    assert not jg.check(jg.loads(LEVELS)).warnings


def test_an_input_named_like_a_keyword_is_passed_by_its_spec_name_and_checked():
    text = """
name: kw
inputs: {lambda: {shape: [3]}, y: {shape: [4]}}
blocks:
  enc: {kind: encoder, type: mlp, in: [lambda], with: {out: 4}}
  E: {kind: energy, type: l2, in: [enc, y]}
objective: {E: 1.0}
"""
    model = jg.compile(jg.loads(text, "kw.yaml"), seed=0)
    x, y = torch.randn(2, 3), torch.randn(2, 4)
    assert torch.equal(model.energy(**{"lambda": x, "y": y}), model.energy(lambda_=x, y=y))
    with pytest.raises(jg.SpecError, match=r"should be \[B, 3\], got \[2, 5\]"):  # checked, not skipped
        model.energy(**{"lambda": torch.randn(2, 5), "y": y})


def test_placeholder_names_invert():
    from jepa_graph.compiler.graph import fx_name, module_key, node_name
    for name in ("x", "inst/enc", "outer/inner/pred", "lambda", "in", "a__b"):
        if "__" not in name:
            assert node_name(fx_name(name)) == name
    assert fx_name("lambda") == "lambda_" and module_key("lambda") == "lambda" and fx_name("i/enc") == "i__enc"
