"""Do multi-step world models respect walls? ``specs/two_rooms_wall.yaml`` against a one-step model.

Both train on the ``two_rooms_wall`` source (the published Two Rooms protocol, fixed layout: wall
at x = 32 with a door at y = 18, state observations, random walks whose moves walls stop), with
the same optimiser, schedule, batch and steps:

* ``multi-step``: the spec as shipped: the encoder at every step of an 8-step window, the
  predictor unrolled from the first state and, since the planning work, a path metric on all
  states and inverse dynamics (no latent: the dynamics are deterministic; RESULTS.md's table was
  measured on the spec's earlier version with VICReg and temporal smoothness, commit 6996820);
* ``one-step``: today's recipe (``specs/two_rooms.yaml`` without its latent): pred(enc(x), a)
  against an EMA target of x_next, VICReg on enc(x);
* with ``--ablate``, the multi-step spec without its inverse-dynamics term (weight 0) and
  teacher-forced instead of unrolled.

Each is scored on held-out trajectories (the source rebuilt with another seed, 1024 windows,
about 2,500 blocked moves) by :func:`jepa_graph.training.metrics.wall_leaks`: ``leak`` is the
share of wall-stopped moves whose predicted next state is closer (in latent space) to the
encoding of where the move would have ended without walls than to the encoding of where the
agent stopped; ``stall`` the share of free moves predicted closer to where the agent was than to
where it went (a model that predicts no motion never leaks). ``step``: one step from the true
state; ``rollout``: open loop from the window's first state. ``centre`` counts only the moves the
centre wall stopped (the borders are easier: positions past them are never observed). One torch
thread; a few minutes per seed on a shared 2-core machine::

    .venv/bin/python benchmarks/wall_leaks.py --seeds 0 1 2
    .venv/bin/python benchmarks/wall_leaks.py --seeds 0 --ablate
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import jepa_graph as jg  # noqa: E402
from jepa_graph.data import make_source, spec_inputs  # noqa: E402
from jepa_graph.frontend.overrides import load_with_overrides  # noqa: E402
from jepa_graph.training.metrics import wall_leaks, walked_through  # noqa: E402

SPEC = ROOT / "specs" / "two_rooms_wall.yaml"
ONE_STEP = """\
name: two_rooms_wall_one_step
dims: {obs: 4, state: 32, act: 2}
inputs:
  x:      {shape: [obs]}
  x_next: {shape: [obs]}
actions:
  a: {shape: [act], bounds: [-2.45, 2.45]}
blocks:
  enc:    {kind: encoder, type: mlp, in: [x], with: {hidden: [128, 128], out: state}}
  target: {kind: encoder, ema_of: enc, in: [x_next], with: {momentum: [0.99, 1.0]}}
  pred:   {kind: predictor, type: ac_mlp, in: [enc, a], with: {branch: 64, hidden: [128, 128], out: state}}
  E:      {kind: energy, type: smooth_l1, in: [pred, target]}
  reg:    {kind: regularizer, type: vicreg, in: [enc], with: {std: 1.0, cov: 0.04}}
objective: {E: 1.0, reg: 1.0}
world_model: {encoder: enc, predictor: pred, action: a}
train: {log_every: 250, data: {source: two_rooms_wall, with: {variant: fixed, horizon: 8, obs: state}}}
"""
ABLATIONS = {"no inverse dynamics": ["objective.idm=0.0"], "teacher-forced": ["blocks.pred_seq.with={mode: teacher}"]}


def held_out(model) -> dict[str, torch.Tensor]:
    src = make_source("two_rooms_wall", {"variant": "fixed", "horizon": 8, "obs": "state", "episodes": 512},
                      spec_inputs(model), seed=999)  # other trajectories than training's (seed 0..)
    b = src.sample(1024, torch.Generator().manual_seed(1))
    b["x_through"] = walked_through(b["state_seq"], b["a_seq"], pixels=False)
    wx, wy = b["x_through"][..., 0], b["x_through"][..., 1]
    b["centre"] = b["blocked_seq"] & ((wx - 32).abs() <= 2.5) & ~((wx <= 4) | (wx >= 60) | (wy <= 4) | (wy >= 60))
    return b


def run(name: str, spec: jg.Spec, seed: int, train: dict) -> dict[str, float]:
    model = jg.compile(spec, seed=seed)
    t0 = time.perf_counter()
    jg.train(model, progress=False, seed=seed, **train)  # data: the spec's train.data
    secs = time.perf_counter() - t0
    model.eval()
    b = held_out(model)
    out = wall_leaks(model, b["x_seq"], b["a_seq"], b["blocked_seq"], b["x_through"])
    centre = wall_leaks(model, b["x_seq"], b["a_seq"], b["centre"], b["x_through"])
    out.update({"centre.step": centre["leak.step"], "centre.rollout": centre["leak.rollout"], "secs": secs})
    print(f"  {name:<22} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items() if k != "leak.blocked"),
          flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=None, help="default: the spec's train.steps")
    ap.add_argument("--ablate", action="store_true", help="also train the ablations (no inverse dynamics, teacher)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = jg.load(SPEC)
    cfg = spec.train
    train = {"steps": args.steps or cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.optimizer.lr,
             "warmup": cfg.schedule.warmup}
    base = jg.loads(ONE_STEP, "one_step.yaml")
    variants = {"multi-step": spec, "one-step": base}
    if args.ablate:
        variants.update({k: load_with_overrides(str(SPEC), v) for k, v in ABLATIONS.items()})
    results: dict[str, list[dict]] = {k: [] for k in variants}
    print(f"{train['steps']} steps, batch {train['batch_size']}, lr {train['lr']}; held-out leak/stall shares")
    for seed in args.seeds:
        for name, s in variants.items():
            results[name].append(run(name, s, seed, train))
    keys = ["leak.step", "stall.step", "leak.rollout", "stall.rollout", "centre.step", "centre.rollout"]
    print("\n| model | " + " | ".join(keys) + " | train s |\n|---|" + "---:|" * (len(keys) + 1))
    for name, rows in results.items():
        cells = []
        for k in keys + ["secs"]:
            vals = [r[k] for r in rows]
            mean = statistics.fmean(vals)
            sd = f" ± {statistics.stdev(vals):.{0 if k == 'secs' else 3}f}" if len(vals) > 1 else ""
            cells.append(f"{mean:.{0 if k == 'secs' else 3}f}{sd}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
