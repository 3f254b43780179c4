"""Relations between blocks: EMA targets, frozen blocks, shared weights and stop-gradient edges.

EMA targets are separate parameters that start equal to their source, get no gradient and move
by ``target <- m * target + (1 - m) * source`` with m from a linear (I-JEPA) or cosine (BYOL)
schedule. The schedules are written out again here from their papers' formulas, not imported.
"""
from __future__ import annotations

import math

import pytest
import torch

import jepa_graph as jg
from conftest import SPECS

EMA_SPEC = """
name: ema_world_model
dims: {{obs: 6, state: 4, act: 2}}
inputs:
  x:      {{shape: [obs]}}
  x_next: {{shape: [obs]}}
actions:
  a: {{shape: [act]}}
blocks:
  enc:    {{kind: encoder, type: mlp, in: [x], with: {{hidden: [8], out: state}}}}
  target: {{kind: encoder, ema_of: enc, in: [x_next], with: {{momentum: {momentum}, schedule: {schedule}}}}}
  pred:   {{kind: predictor, type: mlp, in: [enc, a], with: {{hidden: [8], out: state}}}}
  E:      {{kind: energy, type: l2, in: [pred, target]}}
objective: {{E: 1.0}}
"""

RELATIONS_SPEC = """
name: relations
dims: {obs: 6, state: 4}
inputs:
  x: {shape: [obs]}
  y: {shape: [obs]}
blocks:
  stem:  {kind: encoder, type: mlp, frozen: true, in: [x], with: {hidden: [8], out: obs}}
  enc:   {kind: encoder, type: mlp, in: [stem], with: {out: state}}
  other: {kind: encoder, type: mlp, in: [y], with: {out: state}}
  pred:  {kind: predictor, type: mlp, in: [enc], with: {out: state}}
  E:     {kind: energy, type: l2, in: [pred, {ref: other, stop_grad: true}]}
objective: {E: 1.0}
"""


def ema_model(momentum="[0.9, 1.0]", schedule="linear") -> jg.CompiledModel:
    return jg.compile(jg.loads(EMA_SPEC.format(momentum=momentum, schedule=schedule)))


def batch(n: int = 5) -> dict[str, torch.Tensor]:
    return {"x": torch.randn(n, 6), "x_next": torch.randn(n, 6), "a": torch.randn(n, 2)}


def linear(m0: float, m1: float, t: float) -> float:
    """I-JEPA: momentum rises linearly from m0 to m1 over training."""
    return m0 + t * (m1 - m0)


def cosine(m0: float, m1: float, t: float) -> float:
    """BYOL: tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2, with 1 generalised to m1."""
    return m1 - (m1 - m0) * (math.cos(math.pi * t) + 1) / 2


# ------------------------------------------------------------------------------------ EMA
def test_ema_target_is_a_separate_copy_equal_to_its_source():
    model = ema_model()
    src, tgt = model.blocks["enc"], model.blocks["target"]
    assert src is not tgt
    pairs = list(zip(src.parameters(), tgt.parameters()))
    assert len(pairs) == 4
    for ps, pt in pairs:
        assert ps.data_ptr() != pt.data_ptr()
        assert torch.equal(ps, pt)
        assert ps.requires_grad and not pt.requires_grad
    # the copy's weights are counted, but not as trainable
    n_enc = sum(p.numel() for p in src.parameters())
    assert model.num_parameters() - model.num_parameters(trainable_only=True) == n_enc


def test_ema_target_gets_no_gradient():
    model = ema_model()
    data = batch()
    data["x_next"].requires_grad_(True)
    model.loss(**data).backward()
    assert all(p.grad is None for p in model.blocks["target"].parameters())
    assert data["x_next"].grad is None  # nothing flows back through the target branch
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.blocks["enc"].parameters())


@pytest.mark.parametrize("schedule, formula", [("linear", linear), ("cosine", cosine)])
@pytest.mark.parametrize("progress", [0.0, 0.25, 0.5, 1.0])
def test_momentum_schedules_follow_their_formulas(schedule, formula, progress):
    want = formula(0.9, 1.0, progress)
    assert jg.ema_momentum(schedule, 0.9, 1.0, progress) == pytest.approx(want, abs=1e-12)
    model = ema_model(schedule=schedule)
    assert model.update_ema(progress) == {"target": pytest.approx(want, abs=1e-12)}


def test_schedule_landmarks():
    # both start at m0, end at m1 and pass the midpoint halfway; they differ in between
    for s in ("linear", "cosine"):
        assert jg.ema_momentum(s, 0.996, 1.0, 0.0) == pytest.approx(0.996)
        assert jg.ema_momentum(s, 0.996, 1.0, 0.5) == pytest.approx(0.998)
        assert jg.ema_momentum(s, 0.996, 1.0, 1.0) == pytest.approx(1.0)
    assert jg.ema_momentum("cosine", 0.9, 1.0, 0.25) < jg.ema_momentum("linear", 0.9, 1.0, 0.25)
    assert jg.ema_momentum("constant", 0.99, 0.99, 0.7) == pytest.approx(0.99)
    assert ema_model(momentum="0.99", schedule="constant").update_ema(0.3) == {"target": pytest.approx(0.99)}


@pytest.mark.parametrize("schedule, progress", [("linear", 0.0), ("linear", 0.5), ("cosine", 0.5), ("linear", 1.0)])
def test_update_ema_moves_the_weights_by_the_right_amount(schedule, progress):
    model = ema_model(schedule=schedule)
    src, tgt = model.blocks["enc"], model.blocks["target"]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.loss(**batch()).backward()
    opt.step()  # the source moves; the target does not
    before = [p.detach().clone() for p in tgt.parameters()]
    assert any(not torch.equal(b, s) for b, s in zip(before, src.parameters()))
    m = model.update_ema(progress)["target"]
    assert m == pytest.approx({"linear": linear, "cosine": cosine}[schedule](0.9, 1.0, progress))
    for b, s, t in zip(before, src.parameters(), tgt.parameters()):
        torch.testing.assert_close(t, m * b + (1 - m) * s.detach())
    if progress == 1.0:  # momentum 1: the target stays put
        assert all(torch.equal(b, t) for b, t in zip(before, tgt.parameters()))


def test_repeated_updates_converge_to_the_source():
    model = ema_model(momentum="0.5", schedule="constant")
    with torch.no_grad():
        for p in model.blocks["enc"].parameters():
            p.add_(1.0)
    gap0 = sum((s - t).abs().sum() for s, t in zip(model.blocks["enc"].parameters(), model.blocks["target"].parameters()))
    for _ in range(3):
        model.update_ema(0.0)
    gap3 = sum((s - t).abs().sum() for s, t in zip(model.blocks["enc"].parameters(), model.blocks["target"].parameters()))
    torch.testing.assert_close(gap3, gap0 / 8)  # the gap halves each time


# ------------------------------------------------------------------ frozen and stop_grad
def test_frozen_block_gets_no_gradient_but_passes_one_on():
    model = jg.compile(jg.loads(RELATIONS_SPEC))
    data = {"x": torch.randn(5, 6, requires_grad=True), "y": torch.randn(5, 6)}
    model.loss(**data).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.blocks["stem"].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.blocks["enc"].parameters())
    assert data["x"].grad is not None and data["x"].grad.abs().sum() > 0  # gradients cross the frozen block
    trainable = model.num_parameters(trainable_only=True)
    assert model.num_parameters() - trainable == sum(p.numel() for p in model.blocks["stem"].parameters())


def test_stop_grad_edge_stops_the_gradient():
    model = jg.compile(jg.loads(RELATIONS_SPEC))
    data = {"x": torch.randn(5, 6), "y": torch.randn(5, 6, requires_grad=True)}
    model.loss(**data).backward()
    # `other` is trainable but only reaches the loss through a stop_grad edge
    assert all(p.requires_grad and p.grad is None for p in model.blocks["other"].parameters())
    assert data["y"].grad is None
    assert all(p.grad is not None for p in model.blocks["pred"].parameters())
    assert "detach" in model.code("loss")


def test_stop_grad_on_a_shared_block_keeps_the_other_path():
    """Seed spec: `target` applies the encoder's weights to x_next behind a stop_grad edge."""
    model = jg.compile(SPECS / "seed_world_model.yaml")
    x = torch.randn(5, 16, requires_grad=True)
    x_next = torch.randn(5, 16, requires_grad=True)
    model.loss(x=x, x_next=x_next, a=torch.randn(5, 4)).backward()
    assert x_next.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert model.blocks["encoder"][0].weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------- share
def test_shared_blocks_are_one_module():
    model = jg.compile(SPECS / "seed_world_model.yaml")
    assert "target" not in model.blocks  # no second copy of the weights
    own = sum(p.numel() for p in model.blocks["encoder"].parameters())
    assert model.num_parameters() == sum(sum(p.numel() for p in m.parameters()) for m in model.blocks.values())
    assert [r["params"] for r in model.summary() if r["name"] in ("encoder", "target")] == [own, 0]
    x = torch.randn(5, 16)
    out = model(x=x, x_next=x, a=torch.zeros(5, 4))
    torch.testing.assert_close(out["target"], out["encoder"], rtol=0, atol=0)
    with torch.no_grad():
        model.blocks["encoder"][-1].bias.add_(1.0)  # change the owner's weights...
    out2 = model(x=x, x_next=x, a=torch.zeros(5, 4))
    torch.testing.assert_close(out2["target"], out["target"] + 1.0)  # ...and the share follows
    torch.testing.assert_close(out2["target"], out2["encoder"], rtol=0, atol=0)
