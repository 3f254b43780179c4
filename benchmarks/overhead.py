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
machine cancel). Large tensors would otherwise come from ``mmap`` and go back to the system on
every step, so each side paid page faults (kernel time, counted by the thread clock) in amounts
that depended on the allocator's history, not on the side: up to 1 ms of a 6 ms step at batch
2048. ``--malloc steady`` (the default, glibc) keeps freed memory in the process.

Two counts need no clock at all, so a shared machine cannot blur them:

* ``--count``: per step, the Python functions called, the C functions called and the aten ops
  (forward and backward) on each side, and which of them differ;
* ``--instructions``: machine instructions per step of each side under valgrind's callgrind
  (needs ``valgrind``; a few minutes: the interpreter and torch start up under it).

Run::

    .venv/bin/python benchmarks/overhead.py                   # batch 32, 256, 2048
    .venv/bin/python benchmarks/overhead.py --batch 32 --rounds 41 --threads 1
    .venv/bin/python benchmarks/overhead.py --count            # calls and aten ops per step
    .venv/bin/python benchmarks/overhead.py --instructions     # instructions per step (valgrind)
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import glob
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
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
    out["ratio_lo"], out["ratio_hi"] = median_ci(ratios)
    return out


def median_ci(xs: list[float], z: float = 1.96) -> tuple[float, float]:
    """A 95% confidence interval of the median (order statistics; no assumption on the noise)."""
    s, n = sorted(xs), len(xs)
    k = max(0, int((n - z * n ** 0.5) / 2) - 1)
    return s[k], s[min(n - 1, n - 1 - k)]


def steady_malloc() -> str:
    """glibc: serve every allocation from the process's heap (no ``mmap`` per large tensor) and
    never trim it, so after the warm-up no step pays page faults. Returns what was set."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_max, m_trim_threshold = -4, -1  # malloc.h
        if libc.mallopt(m_mmap_max, 0) and libc.mallopt(m_trim_threshold, 2**30):
            return "steady (glibc: no mmap, no trim)"
    except (OSError, AttributeError):
        pass
    return "default (mallopt unavailable)"


def inputs_for(batch: int) -> dict[str, torch.Tensor]:
    return {"x": torch.randn(batch, 16), "x_next": torch.randn(batch, 16), "a": torch.rand(batch, 4) * 2 - 1}


# ------------------------------------------------------------------ counts that need no clock
def count_calls(fn: Callable, inp) -> collections.Counter:
    """Python functions (``file:function``) and C functions (``C:name``) called by one step."""
    seen: collections.Counter = collections.Counter()

    def prof(frame, event, arg):
        if event == "call":
            seen[f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"] += 1
        elif event == "c_call":
            seen[f"C:{getattr(arg, '__qualname__', arg)}"] += 1

    sys.setprofile(prof)
    try:
        fn(inp)
    finally:
        sys.setprofile(None)
    return seen


def count_ops(fn: Callable, inp) -> collections.Counter:
    """aten ops and autograd nodes run by one step (forward and backward), by name."""
    from torch.profiler import ProfilerActivity, profile  # profiling: only for --count
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(inp)
    return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::") or "Backward" in e.name)


def report_counts(work, batches: list[int]) -> None:
    for b in batches:
        inp = inputs_for(b)
        for name, fns in work.items():
            for fn in fns.values():
                for _ in range(3):  # warm: programs lowered, caches filled
                    fn(inp)
            calls = {k: count_calls(fn, inp) for k, fn in fns.items()}
            ops = {k: count_ops(fn, inp) for k, fn in fns.items()}
            py = {k: sum(v for f, v in c.items() if not f.startswith("C:")) for k, c in calls.items()}
            cc = {k: sum(v for f, v in c.items() if f.startswith("C:")) for k, c in calls.items()}
            print(f"{name:<6} batch {b:>5}: Python calls compiled {py['compiled']} / hand {py['hand']}; "
                  f"C calls {cc['compiled']} / {cc['hand']}; aten ops + autograd nodes "
                  f"{sum(ops['compiled'].values())} / {sum(ops['hand'].values())}")
            for what, (c, h) in (("calls", (calls["compiled"], calls["hand"])), ("ops", (ops["compiled"], ops["hand"]))):
                diff = c.copy()
                diff.subtract(h)
                shown = [f"{v:+d} {k}" for k, v in sorted(diff.items(), key=lambda kv: (-abs(kv[1]), kv[0])) if v]
                print(f"    {what} compiled - hand: " + (", ".join(shown) if shown else "none"))


class _Steps:
    """``divmod(_Steps(fn, inp), n)`` runs n steps inside one C function (``builtin_divmod``), which
    callgrind is told to count alone (``--toggle-collect``) and to dump after."""

    def __init__(self, fn: Callable, inp):
        self.fn, self.inp = fn, inp

    def __divmod__(self, n: int):
        for _ in range(n):
            self.fn(self.inp)
        return 0, 0


def callgrind_child(work, batches: list[int], steps: int) -> None:
    """Under callgrind: each (batch, workload, side) as one divmod call, after a warm-up."""
    jobs = []
    for b in batches:
        inp = inputs_for(b)
        for name, fns in work.items():
            for side, fn in fns.items():
                for _ in range(3):
                    fn(inp)
                jobs.append((b, name, side, fn, inp))
    print("JOBS " + ";".join(f"{b},{name},{side}" for b, name, side, _, _ in jobs), flush=True)
    for _, _, _, fn, inp in jobs:
        divmod(_Steps(fn, inp), steps)


def report_instructions(argv: list[str], batches: list[int], steps: int) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("--instructions needs valgrind (apt-get install valgrind)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [valgrind, "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=builtin_divmod",
               "--dump-after=builtin_divmod", f"--callgrind-out-file={tmp}/cg.out", sys.executable,
               str(Path(__file__).resolve()), "--callgrind-child", "--steps", str(steps), "--batch", *map(str, batches)]
        print("running under callgrind (a few minutes): " + " ".join(cmd[:5]) + " ...", flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("JOBS ")), None)
        if out.returncode != 0 or line is None:
            print(out.stdout[-2000:], out.stderr[-2000:])
            return 1
        jobs = [tuple(j.split(",")) for j in line[5:].split(";")]
        dumps = sorted(glob.glob(f"{tmp}/cg.out.*"), key=lambda f: int(f.rsplit(".", 1)[1]))[-len(jobs):]
        total = {}
        for job, path in zip(jobs, dumps):  # the last dumps are the jobs' (imports call divmod too)
            with open(path) as f:
                total[job] = next(int(x.split()[1]) for x in f if x.startswith("totals:")) / steps
    print(f"machine instructions per step (callgrind, {steps} steps each, after a warm-up)")
    print(f"{'workload':<8} {'batch':>6} {'hand':>12} {'compiled':>12} {'ratio':>7}")
    for b in batches:
        for name in ("train", "all"):
            h, c = total[(str(b), name, "hand")], total[(str(b), name, "compiled")]
            print(f"{name:<8} {b:>6} {h:>12,.0f} {c:>12,.0f} {c / h:>7.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256, 2048])
    ap.add_argument("--rounds", type=int, default=201, help="alternating timing rounds (median taken)")
    ap.add_argument("--budget", type=float, default=0.01, help="seconds per side per round (sets iters)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    ap.add_argument("--clock", choices=["thread", "wall"], default="thread",
                    help="thread: CPU time of this thread (robust on a shared machine; needs --threads 1); "
                         "wall: perf_counter")
    ap.add_argument("--malloc", choices=["steady", "default"], default="steady",
                    help="steady: no page faults per step after the warm-up (glibc); default: the allocator as is")
    ap.add_argument("--count", action="store_true", help="count calls and aten ops per step instead of timing")
    ap.add_argument("--instructions", action="store_true",
                    help="count machine instructions per step under valgrind's callgrind instead of timing")
    ap.add_argument("--steps", type=int, default=20, help="steps per side counted by --instructions")
    ap.add_argument("--callgrind-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread counts only the calling thread; use it with --threads 1")
    if args.instructions:
        return report_instructions(argv or [], args.batch, args.steps)
    allocator = steady_malloc() if args.malloc == "steady" else "default"
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, ref = matched_pair()
    work = workloads(model, ref)
    for b in args.batch:  # the same numbers on both sides, or the comparison is void
        inp = inputs_for(b)
        with torch.no_grad():
            torch.testing.assert_close(model(**inp)["loss"], ref(**inp)["loss"])
    if args.callgrind_child:
        callgrind_child(work, args.batch, args.steps)
        return 0
    if args.count:
        report_counts(work, args.batch)
        return 0
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, rounds {args.rounds}, clock {args.clock}, "
          f"malloc {allocator}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'workload':<8} {'batch':>6} {'iters':>6} {'hand (us)':>11} {'compiled (us)':>14} "
          f"{'ratio':>7} {'ratio IQR':>15} {'95% CI of ratio':>17}")
    worst = worst_hi = 0.0
    for b in args.batch:
        inp = inputs_for(b)
        for name, fns in work.items():
            fns["hand"](inp)
            t0 = clock()
            fns["hand"](inp)
            once = max(clock() - t0, 1e-6)
            iters = max(1, int(args.budget / once))
            r = measure(fns, inp, args.rounds, iters, warmup=max(3, iters // 4), clock=clock)
            worst = max(worst, r["ratio"])
            worst_hi = max(worst_hi, r["ratio_hi"])
            print(f"{name:<8} {b:>6} {iters:>6} {r['hand'] * 1e6:>11.1f} {r['compiled'] * 1e6:>14.1f} "
                  f"{r['ratio']:>7.3f}   [{r['ratio_q1']:.3f}, {r['ratio_q3']:.3f}]   [{r['ratio_lo']:.3f}, "
                  f"{r['ratio_hi']:.3f}]", flush=True)
    print(f"worst median ratio: {worst:.3f}, highest upper 95% bound {worst_hi:.3f} (target <= 1.03); "
          f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
