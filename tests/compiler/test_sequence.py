"""Multi-step world models in a spec: ``each_step: true`` and ``unroll: pred`` (compiler/sequence.py).

Equivalence with hand-written unrolled losses (unrolled and teacher-forced), the unrolled
predictor against the planner's ``rollout`` program, compile-time errors (a table), the round
trip through both syntaxes, the diagram, and ``torch.compile(fullgraph=True)``.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import jepa_graph as jg
from jepa_graph.format.convert import format_text, same
from jepa_graph.frontend.load import build_spec, parse_file
from jepa_graph.primitives.layers.regularizers import covariance_term, variance_term

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = """\
name: multistep
dims: {obs: 4, state: 8, act: 2, H: 3, H1: 4}
inputs:
  x:     {shape: [obs]}
  x_seq: {shape: [H1, obs]}
  a_seq: {shape: [H, act]}
actions:
  a: {shape: [act]}
blocks:
  enc:      {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state}}
  pred:     {kind: predictor, type: mlp, in: [enc, a], with: {hidden: [16], out: state}}
  s_seq:    {kind: encoder, share: enc, in: [x_seq], each_step: true}
  pred_seq: {kind: predictor, unroll: pred, in: [s_seq, a_seq]MODE}
  tgt_seq:  {kind: op, type: slice_steps, in: [s_seq], with: {start: 1}}
  E:        {kind: energy, type: l2, in: [pred_seq, tgt_seq]}
  vic:      {kind: regularizer, type: vicreg, in: [s_seq], each_step: true, with: {std: 1.0, cov: 0.04}}
  idm:      {kind: regularizer, type: inverse_dynamics, in: [s_seq, a_seq], with: {hidden: [16]}}
  smooth:   {kind: regularizer, type: temporal_smoothness, in: [s_seq]}
objective: {E: 1.0, vic: 0.5, idm: 1.0, smooth: 0.1}
world_model: {encoder: enc, predictor: pred, action: a}
"""


def spec(mode: str = "unrolled", text: str = SPEC, file: str = "multistep.yaml") -> jg.Spec:
    return jg.loads(text.replace("MODE", "" if mode == "unrolled" else f", with: {{mode: {mode}}}"), file)


def hand_written(model, x_seq, a_seq, teacher: bool) -> torch.Tensor:
    """The objective written out in torch: the encoder at every step, the predictor stepped H times."""
    b = model.blocks
    n, t1 = x_seq.shape[:2]
    s = b["enc"](x_seq.reshape(n * t1, -1)).reshape(n, t1, -1)  # (N, H+1, S)
    state, preds = s[:, 0], []
    for t in range(t1 - 1):
        state = b["pred"](s[:, t] if teacher else state, a_seq[:, t])
        preds.append(state)
    pred = torch.stack(preds, 1)  # (N, H, S)
    energy = F.mse_loss(pred, s[:, 1:])
    rows = s.reshape(n * t1, -1)
    vic = 1.0 * variance_term(rows) + 0.04 * covariance_term(rows)
    idm = F.mse_loss(b["idm"].head(torch.cat([s[:, :-1], s[:, 1:]], -1)), a_seq)
    smooth = ((s[:, 1:] - s[:, :-1]) ** 2).mean()
    return energy + 0.5 * vic + idm + 0.1 * smooth


@pytest.mark.parametrize("mode", ["unrolled", "teacher"])
def test_loss_and_gradients_equal_the_hand_written_unrolled_loss(mode):
    model = jg.compile(spec(mode), seed=0)
    assert not model.graph.warnings, [w.format() for w in model.graph.warnings]
    ex = model.example_inputs(6)
    got = model.loss(x_seq=ex["x_seq"], a_seq=ex["a_seq"])
    got.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    want = hand_written(model, ex["x_seq"], ex["a_seq"], teacher=mode == "teacher")
    want.backward()
    torch.testing.assert_close(got, want)
    for k, p in model.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, msg=k)
    assert grads["blocks.pred.0.weight"].abs().sum() > 0  # the unrolled steps train the predictor's weights


def test_teacher_forcing_and_unrolling_differ_after_the_first_step():
    unrolled, teacher = (jg.compile(spec(m), seed=0) for m in ("unrolled", "teacher"))
    ex = unrolled.example_inputs(4)
    a, b = unrolled(**ex)["pred_seq"], teacher(**ex)["pred_seq"]
    torch.testing.assert_close(a[:, 0], b[:, 0])  # both start from the encoded first state
    assert not torch.allclose(a[:, 1:], b[:, 1:])


ROLLOUT = """\
name: rollout_equivalence
dims: {obs: 4, state: 8, act: 2, z: 3, H: 5}
inputs:
  x:     {shape: [obs]}
  a_seq: {shape: [H, act]}
  z_seq: {shape: [H, z]}
actions:
  a: {shape: [act]}
latents:
  zz: {shape: [z]}
blocks:
  enc:      {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state}}
  joint:    {kind: op, type: concat, in: [{ref: enc, stop_grad: true}, a]}
  pred:     {kind: predictor, type: mlp, in: [joint, zz], with: {hidden: [16], out: state}}
  pred_seq: {kind: predictor, unroll: pred, in: [enc, a_seq, z_seq]}
  reg:      {kind: regularizer, type: temporal_smoothness, in: [pred_seq]}
objective: {reg: 1.0}
world_model: {encoder: enc, predictor: pred, action: a, latent: zz}
"""


def test_unrolling_runs_the_step_program_the_planner_rolls_out():
    """A step program with an op and a stop-gradient edge, a latent per step, from one state."""
    model = jg.compile(jg.loads(ROLLOUT, "rollout.yaml"), seed=0)
    ex = model.example_inputs(3)
    got = model(**ex)["pred_seq"]  # (3, 5, 8)
    state = model.encode(x=ex["x"])["state"]
    want = model.rollout(state=state, a=ex["a_seq"], zz=ex["z_seq"])["states"]
    torch.testing.assert_close(got, want)
    code = model.code("loss")
    assert code.count("self.blocks.pred(") == 5 and "detach" in code  # H steps inlined, the edge's sg kept


def test_each_step_ema_target_is_the_momentum_copy_without_gradient():
    text = SPEC.replace("  tgt_seq:  {kind: op, type: slice_steps, in: [s_seq], with: {start: 1}}",
                        "  t_all:    {kind: encoder, ema_of: enc, in: [x_seq], each_step: true, with: {momentum: 0.9}}\n"
                        "  tgt_seq:  {kind: op, type: slice_steps, in: [t_all], with: {start: 1}}")
    model = jg.compile(spec(text=text), seed=0)
    with torch.no_grad():
        for p in model.blocks["t_all"].parameters():
            p.add_(0.5)  # the copy is its own module: make it differ from the source
    ex = model.example_inputs(4)
    out = model(**ex)
    want = model.blocks["t_all"](ex["x_seq"].flatten(0, 1)).unflatten(0, (4, 4))
    torch.testing.assert_close(out["t_all"], want)
    assert not out["t_all"].requires_grad
    model.update_ema(0.0)  # and it follows its source
    assert all(p.grad is None for p in model.blocks["t_all"].parameters())


def test_each_step_energy_is_the_mean_over_steps():
    text = SPEC.replace("  E:        {kind: energy, type: l2, in: [pred_seq, tgt_seq]}",
                        "  E:        {kind: energy, type: cosine, in: [pred_seq, tgt_seq], each_step: true}")
    model = jg.compile(spec(text=text), seed=0)
    out = model(**model.example_inputs(4))
    want = (1 - F.cosine_similarity(out["pred_seq"], out["tgt_seq"], dim=-1)).mean(1)
    torch.testing.assert_close(out["E"], want)


# ----------------------------------------------------------------------------- compile-time errors
def _edit(old: str, new: str, text: str = SPEC) -> str:
    assert old in text, old
    return text.replace(old, new)


ERRORS = [
    ("unroll: pred,", "unroll: enc,", "`pred_seq` unrolls `enc`, but it must name the predictor of the world model",
     "pred_seq:"),
    ("world_model: {encoder: enc, predictor: pred, action: a}\n", "costs: {}\n",
     "declare the world model it steps", "pred_seq:"),
    ("in: [s_seq, a_seq]MODE", "in: [s_seq]", r"takes 2 input\(s\): the states, then one `a` sequence", "pred_seq:"),
    ("a_seq: {shape: [H, act]}", "a_seq: {shape: [H, 3]}", r"takes one `a` \[B, 2\] per step on input 1, so \[B, H, 2\]",
     "pred_seq:"),
    ("in: [s_seq, a_seq]MODE", "in: [enc, a_seq], with: {mode: teacher}", "is teacher-forced", "pred_seq:"),
    ("in: [s_seq, a_seq]MODE", "in: [tgt_seq, a_seq], with: {mode: teacher}", "needs at least the 3 states", "pred_seq:"),
    ("in: [s_seq, a_seq]MODE", "in: [s_seq, a_seq], with: {mode: teachr}", "bad `mode`", "pred_seq:"),
    ("in: [s_seq, a_seq]MODE", "in: [s_seq, a_seq], with: {steps: 3}", "has no parameter `steps`", "pred_seq:"),
    ("unroll: pred,", "type: mlp, unroll: pred,", "takes no `type:`", "pred_seq:"),
    ("share: enc, in: [x_seq], each_step: true", "share: enc, in: [x], each_step: true",
     r"which takes \[B, 4\] on input 0; `x` gives \[B\] at each step", "s_seq:"),
    ("type: temporal_smoothness, in: [s_seq]", "type: temporal_smoothness, in: [flag], each_step: true",
     r"needs a sequence \[B, T, \.\.\.\] on input 0", "smooth:"),
    ("x_seq: {shape: [H1, obs]}", "x_seq: {shape: [H1, 5]}", r"takes \[B, 4\] on input 0; `x_seq` gives \[B, 5\] at each step",
     "s_seq:"),
    ("  E:        {kind", "  bad:      {kind: predictor, share: pred_seq, in: [s_seq, a_seq]}\n  E:        {kind",
     "`bad` shares `pred_seq`, an unrolled predictor, which has no weights of its own", "bad:"),
    ("in: [enc, a], with: {hidden: [16]", "in: [enc, a, x], with: {hidden: [16]",
     "whose step reads input `x`", "pred_seq:"),
    ("in: [enc, a], with: {hidden: [16]", "in: [enc, a, pooled], with: {hidden: [16]",
     "cycle: `pred_seq` unrolls `pred`, which depends on `pred_seq`", "pred_seq:"),
]


@pytest.mark.parametrize("old,new,match,line", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_sequence_mistakes_are_located_errors(old, new, match, line):
    text = _edit(old, new)
    if "tgt_seq, a_seq" in new:  # two states for three steps
        text = _edit("with: {start: 1}", "with: {start: 2}", text)
    if "flag" in new:  # a number per sample: no steps
        text = _edit("  a_seq: {shape: [H, act]}\n", "  a_seq: {shape: [H, act]}\n  flag:  {shape: []}\n", text)
    if "pooled" in new:
        text = _edit("  E:        {kind", "  pooled:   {kind: op, type: temporal_pool, in: [pred_seq]}\n  E:        {kind",
                     text)
    text = text.replace("MODE", "")
    with pytest.raises(jg.SpecError, match=match) as e:
        jg.compile(jg.loads(text, "bad.yaml"))
    want = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(line))
    assert f"bad.yaml:{want}:" in str(e.value), str(e.value)


def test_each_step_inputs_must_agree_on_the_steps():
    text = _edit("  E:        {kind",
                 "  tf:       {kind: predictor, share: pred, in: [s_seq, a_seq], each_step: true}\n  E:        {kind")
    with pytest.raises(jg.SpecError, match="is applied at each of the 4 steps of input 0, but input 1"):
        jg.compile(spec(text=text))


def test_a_composite_is_not_applied_per_step():
    text = _edit("  E:        {kind", "  c:        {kind: composite, type: jepa_level, in: [x], each_step: true}\n"
                 "  E:        {kind")
    with pytest.raises(jg.SpecError, match="a composite block is not applied per step"):
        spec(text=text)


# ------------------------------------------------------------------------------ both syntaxes
JEPA = """\
jepa multistep_syntax

dims obs=4, state=8, act=2, H=3, H1=4

input  x : [obs]
input  x_seq : [H1, obs]
input  a_seq : [H, act]
action a : [act]

enc      = encoder.mlp(x, hidden=[16], out=state)
pred     = predictor.mlp(enc, a, hidden=[16], out=state)
s_seq    = enc(x_seq, each_step=true)
t_all    = ema(enc)(x_seq, momentum=0.99..1.0, each_step=true)
pred_seq = unroll(pred)(s_seq, a_seq, mode=teacher)
roll     = frozen unroll(pred)(enc, a_seq)
tgt_seq  = op.slice_steps(t_all, start=1)
E        = energy.discounted(pred_seq, tgt_seq, gamma=0.9)
E2       = energy.l2(roll, tgt_seq)
vic      = regularizer.vicreg(s_seq, std=1.0, cov=0.04, each_step=true)

objective E + E2 + vic
world_model encoder=enc, predictor=pred, action=a
"""


def _load(text: str, file: str) -> jg.Spec:
    return build_spec(parse_file(file, text))


def test_dsl_sugar_reads_as_the_yaml_fields():
    s = _load(JEPA, "m.jepa")
    b = s.blocks
    assert (b["s_seq"].share, b["s_seq"].each_step, b["s_seq"].params) == ("enc", True, {})
    assert (b["t_all"].ema_of, b["t_all"].each_step, b["t_all"].params["momentum"]) == ("enc", True, [0.99, 1.0])
    assert (b["pred_seq"].kind, b["pred_seq"].unroll, b["pred_seq"].params) == ("predictor", "pred", {"mode": "teacher"})
    assert b["roll"].frozen and b["vic"].each_step and b["vic"].params == {"std": 1.0, "cov": 0.04}
    jg.compile(s)  # and it is a valid model


@pytest.mark.parametrize("src", ["jepa", "yaml"])
def test_sequences_round_trip_through_both_syntaxes(src):
    text = JEPA if src == "jepa" else format_text(JEPA, "m.jepa", "yaml")
    other = "yaml" if src == "jepa" else "jepa"
    first = _load(text, f"m.{src}")
    there = format_text(text, f"m.{src}", other)
    assert same(_load(there, f"m.{other}").model_dump(by_alias=True), first.model_dump(by_alias=True))
    back = format_text(there, f"m.{other}", src)
    assert back == format_text(text, f"m.{src}")  # the canonical text comes back
    if src == "jepa":
        assert back == JEPA  # the sugar is the canonical form
    else:
        assert "unroll: pred" in text and "each_step: true" in text


# ------------------------------------------------------------------------------ diagram, compile
def test_diagram_says_what_is_unrolled_and_applied_each_step(tmp_path):
    path = tmp_path / "m.dot"
    jg.render(_load(JEPA, "m.jepa"), path)
    dot = path.read_text()
    assert "unrolls pred \u00d73 \u00b7 teacher-forced" in dot and "unrolls pred \u00d73 \u00b7 frozen" in dot
    assert "vicreg \u00b7 each step" in dot


def test_unrolled_loss_compiles_without_graph_breaks():
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile (dynamo) is not supported here")
    torch._dynamo.reset()
    model = jg.compile(spec("teacher"), seed=0)
    ex = model.example_inputs(6, name="loss")
    want = model.loss(**ex)
    want.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    prog = torch.compile(model.program("loss"), backend="aot_eager", fullgraph=True)  # raises on a break
    got = prog(**ex)["loss"]
    got.backward()
    torch.testing.assert_close(got, want)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[k], msg=k)
    torch._dynamo.reset()
