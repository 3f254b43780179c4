"""Batched planning against the straightforward per-sequence Python loop, in candidate rollouts per second.

The model is ``specs/two_rooms.yaml`` (encoder 2 -> 64 -> 64 -> 32, action-conditioned predictor
with a latent, ``goal_distance`` cost), at its initial weights: speed does not depend on training.
Both sides run the same CEM (``--samples`` candidates per environment, ``--iterations`` refits,
horizon ``--horizon``) from the same seed on ``--envs`` environments:

* ``batched``  ``jg.plan(..., method="cem")``: every iteration is one rollout call of
  samples x envs sequences and one call of the cost program on all their states;
* ``looped``   the same planner, but its cost evaluates one candidate sequence at a time (a
  rollout of batch 1 and the cost program on its H states, through the same plan-cost code),
  as a per-sequence Python loop over candidates would.

Before timing, both sides must give the same cost for the same candidates (checked). A
rollout is one candidate sequence of H steps. Time is the CPU time of this thread
(``time.thread_time``, one torch thread by default: the development machine's cores are shared)
or wall-clock time on a GPU; the two sides run in ``--repeats`` interleaved rounds, and the
median time per side and the median of the per-round ratios are reported. Run::

    .venv/bin/python benchmarks/planning_speed.py                       # CPU, 1 env, 256 candidates
    .venv/bin/python benchmarks/planning_speed.py --envs 16 --device cuda
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import jepa_graph as jg  # noqa: E402
from jepa_graph.planning import ACTION, CEM, PlanCost, Streams  # noqa: E402
from jepa_graph.planning.world import world_of  # noqa: E402
from jepa_graph.search import Continuous  # noqa: E402


class Looped:
    """The plan cost of candidates (rows c * B + b) evaluated one sequence at a time."""

    def __init__(self, per_env: list[PlanCost]):
        self.per_env, self.step, self.rollouts = per_env, None, 0

    def __call__(self, params):
        a = params[ACTION]
        B = len(self.per_env)
        out = torch.stack([self.per_env[r % B]({ACTION: a[r:r + 1]})[0] for r in range(a.shape[0])])
        self.rollouts += a.shape[0]
        return out


def costs(model, obs, goal, H):
    """The batched PlanCost of all environments, and one PlanCost per environment."""
    world = world_of(model)
    with torch.no_grad():
        state = world.encode(obs)
        B = state.shape[0]
        streams = Streams.of(0, B, state.device)
        batched = PlanCost(world, state, world.context(goal, None, B), H, weights=world.weights, streams=streams)
        single = [PlanCost(world, state[b:b + 1], world.context(goal[b:b + 1], None, 1), H, weights=world.weights)
                  for b in range(B)]
    return world, batched, single


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.thread_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=1)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    model = jg.compile(ROOT / "specs" / "two_rooms.yaml", seed=0).to(dev).eval()
    gen = torch.Generator().manual_seed(0)
    obs = (torch.rand(args.envs, 2, generator=gen) * 2 - 1).to(dev)
    goal = (torch.rand(args.envs, 2, generator=gen) * 2 - 1).to(dev)
    H, B, P = args.horizon, args.envs, args.samples
    world, batched, single = costs(model, obs, goal, H)
    looped = Looped(single)
    space = {ACTION: Continuous((H, *world.action.shape), world.action.lo, world.action.hi)}

    with torch.no_grad():  # both sides compute the same numbers
        a = Streams.of(1, B, dev).prior(space[ACTION], 8).flatten(0, 1)
        x, y = batched({ACTION: a}), looped({ACTION: a})
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-6), (x - y).abs().max()

    def run(cost):
        planner = CEM(iterations=args.iterations, samples=P, elites=min(32, P)).configure(space, B, seed=0, device=dev)
        with torch.no_grad():
            t0 = clock(dev)
            plan = planner.solve(cost)
            return clock(dev) - t0, plan

    for cost in (batched, looped):
        run(cost)  # warm-up: programs built, allocator primed
    times = {"batched": [], "looped": []}
    ratios, plans = [], {}
    order = list(times)
    for r in range(args.repeats):  # interleaved, the order shuffled: a slow phase of the machine hits both
        random.Random(r).shuffle(order)
        got = {}
        for name in order:
            got[name], plans[name] = run(batched if name == "batched" else looped)
            times[name].append(got[name])
        ratios.append(got["looped"] / got["batched"])
    rollouts = (args.iterations * P + 1) * B  # every candidate of every iteration, and the final mean
    print(f"two_rooms world model, CEM: {B} env(s) x {P} candidates x {args.iterations} iterations, horizon {H}, "
          f"{args.device}, {torch.get_num_threads()} thread(s); {rollouts} candidate rollouts per plan; "
          f"median of {args.repeats} interleaved rounds")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name:8s} {t * 1000:9.1f} ms per plan  {rollouts / t:12,.0f} candidate rollouts/s  "
              f"(plan cost {plans[name].cost.mean():.5f})")
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(f"ratio batched / looped: {statistics.median(ratios):.0f}x (interquartile {q[0]:.0f}x-{q[2]:.0f}x)")

if __name__ == "__main__":
    main()
