"""The EMA targets a training run produces, recomputed independently from the online weights it
recorded: target_0 = source_0; after optimiser step k (k = 0, 1, ...) target <- m_k target +
(1 - m_k) source_k with m_k = m0 + (m1 - m0) k / T (I-JEPA's momentum scheduler, which yields m0
first), or BYOL's cosine 1 - (1 - m0) (cos(pi k / T) + 1) / 2."""
from __future__ import annotations

import math

import pytest
import torch

import jepa_graph as jg
from jepa_graph.training.trainer import Trainer

SPEC = """
name: ema_schedule
inputs: {{x: {{shape: [6]}}, x_next: {{shape: [6]}}}}
blocks:
  enc:    {{kind: encoder, type: mlp, in: [x], with: {{hidden: [8], out: 4}}}}
  target: {{kind: encoder, ema_of: enc, in: [x_next], with: {{momentum: [0.5, 0.9], schedule: {schedule}}}}}
  pred:   {{kind: predictor, type: mlp, in: [enc], with: {{hidden: [8], out: 4}}}}
  E:      {{kind: energy, type: l2, in: [pred, target]}}
  reg:    {{kind: regularizer, type: vicreg, in: [enc]}}
objective: {{E: 1.0, reg: 0.1}}
train: {{steps: 6, batch_size: 8, lr: 0.05, log_every: 1}}
"""

SCHEDULES = {
    "linear": lambda m0, m1, k, T: m0 + (m1 - m0) * k / T,
    "cosine": lambda m0, m1, k, T: 1 - (1 - m0) * (math.cos(math.pi * k / T) + 1) / 2 if m1 == 1.0
    else m1 - (m1 - m0) * (math.cos(math.pi * k / T) + 1) / 2,
}


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_targets_match_an_independent_recomputation(schedule):
    model = jg.compile(jg.loads(SPEC.format(schedule=schedule), "ema.yaml"), seed=0)
    online = [[p.detach().clone() for p in model.blocks["enc"].parameters()]]
    momenta = []

    def record(trainer, step, rec):
        online.append([p.detach().clone() for p in trainer.model.blocks["enc"].parameters()])
        momenta.append(rec.get("ema.target"))

    Trainer(model, progress=False, callbacks=[record], tensorboard=False).fit()
    T = 6
    assert len(online) == T + 1
    want = [m_k for m_k in (SCHEDULES[schedule](0.5, 0.9, k, T) for k in range(T))]
    assert momenta == pytest.approx(want, abs=1e-12)
    assert momenta[0] == pytest.approx(0.5)  # the schedule starts at m0, as I-JEPA's does
    target = [p.clone() for p in online[0]]  # the target starts as a copy of the source
    for k in range(T):
        target = [want[k] * t + (1 - want[k]) * s for t, s in zip(target, online[k + 1])]
    got = list(model.blocks["target"].parameters())
    for t, g in zip(target, got):
        torch.testing.assert_close(g, t, rtol=1e-6, atol=1e-7)
