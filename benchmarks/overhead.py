"""Overhead of a compiled plan against the same layers written by hand in PyTorch.

The spec is ``specs/seed_world_model.yaml``; the baseline is the seed article's program
(Encoder 16->64->32->8, action-conditioned Predictor, CostModule, tanh Actor), written out below
with the weights copied from the compiled model, so both sides do the same arithmetic. Two
workloads, forward + ``loss.backward()``, no optimiser:

* ``train``: the training loss only: ``model.loss(...)`` against
  ``F.mse_loss(pred(enc(x), a), enc(x_next).detach())``;
* ``all``:   every named output (the ``forward`` program: encoder, target, predictor, energy,
  critic, actor, loss) and the backward of a scalar that reaches every block.

Timing fights a noisy, shared CPU: the two sides alternate in rounds (order shuffled per round),
each round times a fixed number of calls after a warm-up (CPU time of the calling thread by
default, with one torch thread, so time the process spends descheduled does not count), and the reported figure per side is the median
over rounds; the ratio is the median of the per-round ratios (paired, so slow phases of the
machine cancel). Run::

    .venv/bin/python benchmarks/overhead.py                   # batch 32, 256, 2048
    .venv/bin/python benchmarks/overhead.py --batch 32 --rounds 41 --threads 1
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import jepa_graph as jg  # noqa: E402


# ----------------------------------------------------------- the seed article, by hand
class Encoder(nn.Module):
    def __init__(self, input_dim=16, latent_dim=8, hidden_dims=(64, 32)):
        super().__init__()
        layers, dims = [], [input_dim, *hidden_dims, latent_dim]
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.network = nn.Sequential(*layers)

    def forward(self, x):
        return self.network(x)


class Predictor(nn.Module):
    def __init__(self, latent_dim=8, action_dim=4, hidden_dim=64):
        super().__init__()
        self.state_net = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU())
        self.action_net = nn.Sequential(nn.Linear(action_dim, hidden_dim), nn.ReLU())
        self.combined_net = nn.Sequential(nn.Linear(hidden_dim * 2, hidden_dim), nn.ReLU(),
                                          nn.Linear(hidden_dim, latent_dim))

    def forward(self, s, a):
        return self.combined_net(torch.cat([self.state_net(s), self.action_net(a)], dim=1))


class CostModule(nn.Module):
    def __init__(self, latent_dim=8, hidden_dim=32):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    def forward(self, s):
        return self.network(s)


class Actor(nn.Module):
    def __init__(self, latent_dim=8, action_dim=4, hidden_dim=64):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, action_dim), nn.Tanh())

    def forward(self, s):
        return self.network(s)


class HandWritten(nn.Module):
    """The seed system as one module; ``loss`` is the article's prediction loss."""

    def __init__(self):
        super().__init__()
        self.encoder, self.predictor, self.critic, self.actor = Encoder(), Predictor(), CostModule(), Actor()

    def loss(self, x, x_next, a):
        s_next = self.encoder(x_next).detach()
        return F.mse_loss(self.predictor(self.encoder(x), a), s_next)

    def forward(self, x, x_next, a):
        s = self.encoder(x)
        target = self.encoder(x_next)
        pred = self.predictor(s, a)
        energy = (pred - target.detach()).pow(2).mean(1)  # (B,) per-sample energy
        return {"encoder": s, "target": target, "predictor": pred, "E": energy,
                "critic": self.critic(pred).squeeze(-1), "actor": self.actor(s), "energy": energy,
                "loss": energy.mean()}


def matched_pair(seed: int = 0) -> tuple[jg.CompiledModel, HandWritten]:
    """The compiled seed spec and the hand-written program with the same weights."""
    model = jg.compile(ROOT / "specs" / "seed_world_model.yaml", seed=seed)
    ref = HandWritten()
    for name in ("encoder", "predictor", "critic", "actor"):
        sd = {k.removeprefix("network."): v for k, v in getattr(ref, name).state_dict().items()}
        model.blocks[name].load_state_dict(sd, strict=True)
    return model, ref


def everything(out: dict[str, torch.Tensor]) -> torch.Tensor:
    return out["loss"] + out["critic"].mean() + out["actor"].pow(2).mean()


def workloads(model, ref) -> dict[str, dict[str, Callable]]:
    params_m, params_r = list(model.parameters()), list(ref.parameters())

    def step(fn, params):
        def run(inp):
            for p in params:
                p.grad = None
            fn(inp).backward()
        return run

    return {
        "train": {"compiled": step(lambda i: model.loss(**i), params_m),
                  "hand": step(lambda i: ref.loss(**i), params_r)},
        "all": {"compiled": step(lambda i: everything(model(**i)), params_m),
                "hand": step(lambda i: everything(ref(**i)), params_r)},
    }


def measure(fns: dict[str, Callable], inp, rounds: int, iters: int, warmup: int,
            clock: Callable[[], float] = time.thread_time) -> dict[str, float]:
    """Median seconds per call for each side, and the median of the paired per-round ratios."""
    for fn in fns.values():
        for _ in range(warmup):
            fn(inp)
    times: dict[str, list[float]] = {k: [] for k in fns}
    ratios = []
    order = list(fns)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        got = {}
        for k in order:
            fn = fns[k]
            t0 = clock()
            for _ in range(iters):
                fn(inp)
            got[k] = (clock() - t0) / iters
            times[k].append(got[k])
        ratios.append(got["compiled"] / got["hand"])
    out = {k: statistics.median(v) for k, v in times.items()}
    out["ratio"] = statistics.median(ratios)
    out["ratio_q1"], _, out["ratio_q3"] = statistics.quantiles(ratios, n=4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256, 2048])
    ap.add_argument("--rounds", type=int, default=31, help="alternating timing rounds (median taken)")
    ap.add_argument("--budget", type=float, default=0.05, help="seconds per side per round (sets iters)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    ap.add_argument("--clock", choices=["thread", "wall"], default="thread",
                    help="thread: CPU time of this thread (robust on a shared machine; needs --threads 1); "
                         "wall: perf_counter")
    args = ap.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread counts only the calling thread; use it with --threads 1")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, ref = matched_pair()
    work = workloads(model, ref)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, rounds {args.rounds}, clock {args.clock}")
    print(f"{'workload':<8} {'batch':>6} {'iters':>6} {'hand (us)':>11} {'compiled (us)':>14} "
          f"{'ratio':>7} {'ratio IQR':>15}")
    worst = 0.0
    for b in args.batch:
        inp = {"x": torch.randn(b, 16), "x_next": torch.randn(b, 16), "a": torch.rand(b, 4) * 2 - 1}
        with torch.no_grad():  # the same numbers on both sides, or the comparison is void
            torch.testing.assert_close(model(**inp)["loss"], ref(**inp)["loss"])
        for name, fns in work.items():
            fns["hand"](inp)
            t0 = clock()
            fns["hand"](inp)
            once = max(clock() - t0, 1e-6)
            iters = max(3, int(args.budget / once))
            r = measure(fns, inp, args.rounds, iters, warmup=max(3, iters // 4), clock=clock)
            worst = max(worst, r["ratio"])
            print(f"{name:<8} {b:>6} {iters:>6} {r['hand'] * 1e6:>11.1f} {r['compiled'] * 1e6:>14.1f} "
                  f"{r['ratio']:>7.3f}   [{r['ratio_q1']:.3f}, {r['ratio_q3']:.3f}]", flush=True)
    print(f"worst median ratio: {worst:.3f} (target <= 1.03)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
