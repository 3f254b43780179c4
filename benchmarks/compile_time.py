"""Compile time against spec size: generated chain specs of 10 to 10,000 blocks.

A chain spec is ``x -> b1 -> b2 -> ... -> b{N-1}`` (each an ``encoder.mlp`` of width 8, one Linear)
and an ``energy.l2`` between the last block and a second input: N blocks, N-1 Linear layers.
Each stage is timed on its own (CPU time of this thread, median of ``--repeats`` runs in fresh
state):

* ``parse``     YAML text -> RawSpec (positions of every key and value)
* ``validate``  RawSpec -> strict pydantic Spec
* ``graph``     Spec -> Graph: composites inlined, wiring/cycle/usage checks
* ``shapes``    shape inference and block parameter validation
* ``modules``   the torch modules (``CompiledModel(graph)``; torch's own Linear init included)
* ``lower``     the forward program: fx graph, Python code generation, ``compile()`` of that code
* ``call``      the first forward call at batch 1

``load+compile`` = parse + validate + graph + shapes + modules; ``total`` adds lowering and the
first call, and so any garbage collection that follows the pauses (see ``jepa_graph/core/gc_pause.py``:
what a large pause built goes straight to the oldest generation, so no young-generation pass walks
it; with ``--no-gc-pause`` the collector runs throughout). ``api`` times
``jg.compile(jg.loads(text))`` through the public API, as a user calls it (two pauses).
``by hand`` is the floor under ``modules``: the same N-1 layers built by hand
(``nn.Sequential(nn.Linear(8, 8))`` each, into an ``nn.ModuleDict``), what torch itself costs.
Per-block figures show whether cost grows linearly (torch's own module construction grows about
x1.2 per module from 1,000 to 10,000 on the development machine: a larger heap, more cache misses).
Imports are not compile time: one small spec is compiled first. Run::

    .venv/bin/python benchmarks/compile_time.py                 # 10, 100, 1000, 10000 blocks
    .venv/bin/python benchmarks/compile_time.py --shape wide    # many objective terms
    .venv/bin/python benchmarks/compile_time.py --sizes 1000 --profile   # cProfile of one run
    .venv/bin/python benchmarks/compile_time.py --count         # function calls per block, per stage
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import jepa_graph as jg  # noqa: E402
from jepa_graph.core.gc_pause import paused_gc  # noqa: E402
from jepa_graph.compiler.graph import build_graph  # noqa: E402
from jepa_graph.compiler.model import CompiledModel  # noqa: E402
from jepa_graph.compiler.shapes import infer_shapes  # noqa: E402
from jepa_graph.frontend.load import build_spec, parse_file  # noqa: E402

STAGES = ("parse", "validate", "graph", "shapes", "modules", "lower", "call")
COMPILE = ("parse", "validate", "graph", "shapes", "modules")
COLUMNS = STAGES + ("load+compile", "total", "api", "by hand")


def chain_spec(n: int, width: int = 8) -> str:
    """YAML text of an n-block chain: n-1 MLP encoders in a row, then an l2 energy."""
    lines = [f"name: chain_{n}", f"dims: {{w: {width}}}", "inputs:", "  x: {shape: [w]}", "  y: {shape: [w]}",
             "blocks:", "  b1: {kind: encoder, type: mlp, in: [x], with: {out: w}}"]
    lines += [f"  b{i}: {{kind: encoder, type: mlp, in: [b{i - 1}], with: {{out: w}}}}" for i in range(2, n)]
    lines += [f"  E: {{kind: energy, type: l2, in: [b{n - 1}, y]}}", "objective: {E: 1.0}"]
    return "\n".join(lines) + "\n"


def wide_spec(n: int, width: int = 8) -> str:
    """YAML text of an n-block wide spec: n/2 encoders of x side by side, each with its own l2
    energy against y, and all n/2 energies in the objective (many terms, shallow graph)."""
    lines = [f"name: wide_{n}", f"dims: {{w: {width}}}", "inputs:", "  x: {shape: [w]}", "  y: {shape: [w]}",
             "blocks:"]
    for i in range(n // 2):
        lines += [f"  e{i}: {{kind: encoder, type: mlp, in: [x], with: {{out: w}}}}",
                  f"  E{i}: {{kind: energy, type: l2, in: [e{i}, y]}}"]
    lines.append("objective: {" + ", ".join(f"E{i}: 1.0" for i in range(n // 2)) + "}")
    return "\n".join(lines) + "\n"


SHAPES = {"chain": chain_spec, "wide": wide_spec}


def run_once(text: str, clock=time.thread_time, gc_pause: bool = True, stages_only: bool = False) -> dict[str, float]:
    """Seconds per stage for one compile of ``text``. The collector is paused as the public API
    pauses it (``jg.compile(path)``: parse to modules; then lowering), unless ``gc_pause`` is off;
    the collection it defers runs on the first allocations after a pause (mostly in ``call``)."""
    pause = paused_gc if gc_pause else contextlib.nullcontext
    t, out = clock(), {}

    def lap(stage: str) -> None:
        nonlocal t
        now = clock()
        out[stage] = now - t
        t = now

    with pause():  # one pause, as in `jg.compile(path)`, which loads the file itself
        raw = parse_file("<bench>.yaml", text)
        lap("parse")
        spec = build_spec(raw)
        lap("validate")
        graph = build_graph(spec)
        lap("graph")
        infer_shapes(graph)
        lap("shapes")
        model = CompiledModel(graph)
        lap("modules")
    with pause():
        model.program("forward")
        lap("lower")
    with torch.no_grad():
        model(x=torch.randn(1, 8), y=torch.randn(1, 8))
    lap("call")
    out["load+compile"] = sum(out[s] for s in COMPILE)
    out["total"] = sum(out[s] for s in STAGES)
    n = len(model.blocks)
    del model, graph, spec, raw
    if stages_only:
        return out
    gc.collect()
    t = clock()
    jg.compile(jg.loads(text, file="<bench>.yaml"))  # the public API, end to end, as a user calls it
    out["api"] = clock() - t
    gc.collect()
    t = clock()
    with pause():
        by_hand = torch.nn.ModuleDict({f"b{i}": torch.nn.Sequential(torch.nn.Linear(8, 8)) for i in range(1, n)})
    out["by hand"] = clock() - t
    del by_hand
    return out


def measure(n: int, repeats: int, gc_pause: bool = True, shape: str = "chain") -> dict[str, float]:
    text = SHAPES[shape](n)
    runs = []
    for _ in range(repeats):
        gc.collect()  # start each run from the same heap, not the last run's garbage
        runs.append(run_once(text, gc_pause=gc_pause))
    return {s: statistics.median(r[s] for r in runs) for s in COLUMNS}


def count_calls(sizes: list[int], shape: str) -> int:
    """Function calls per block in each stage of one compile (cProfile's call counts; the
    clock plays no part, so a shared machine cannot blur them)."""
    print(f"{shape} specs: function calls per block (Python and C), one compile per size")
    print(f"{'blocks':>7} " + " ".join(f"{s:>9}" for s in STAGES) + f" {'all':>9}")
    for n in sizes:
        text = SHAPES[shape](n)
        per = {}

        def staged(stage, fn, *a):
            prof = cProfile.Profile()
            try:
                return prof.runcall(fn, *a)
            finally:
                per[stage] = sum(v[1] for v in pstats.Stats(prof).stats.values())

        with paused_gc():
            raw = staged("parse", parse_file, "<bench>.yaml", text)
            spec = staged("validate", build_spec, raw)
            graph = staged("graph", build_graph, spec)
            staged("shapes", infer_shapes, graph)
            model = staged("modules", CompiledModel, graph)
        with paused_gc():
            staged("lower", model.program, "forward")
        with torch.no_grad():
            staged("call", lambda: model(x=torch.randn(1, 8), y=torch.randn(1, 8)))
        print(f"{n:>7} " + " ".join(f"{per[s] / n:>9.1f}" for s in STAGES) + f" {sum(per.values()) / n:>9.1f}",
              flush=True)
        del model, graph, spec, raw
        gc.collect()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    ap.add_argument("--repeats", type=int, default=0, help="runs per size (0: 7 up to 1000 blocks, then 3)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one run per size")
    ap.add_argument("--count", action="store_true",
                    help="count Python and C function calls per block, per stage (no clock: linear work shows as "
                         "a constant count)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="chain",
                    help="chain: a deep line of blocks; wide: side-by-side blocks, one objective term each")
    ap.add_argument("--no-gc-pause", action="store_true",
                    help="time the stages with the garbage collector running (what compile cost before the pause)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    run_once(chain_spec(10))  # imports and registry loading are not compile time
    if args.count:
        return count_calls(args.sizes, args.shape)
    print(f"{args.shape} specs; torch {torch.__version__}; CPU time of the compiling thread, median of repeats (ms); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    head = " ".join(f"{s:>9}" for s in STAGES)
    print(f"{'blocks':>7} {head} {'load+compile':>13} {'total':>9} {'api':>9} {'by hand':>9}   us/block: "
          f"{'load+compile':>12} {'total':>6} {'api':>6}")
    rows = {}
    for n in args.sizes:
        if args.profile:
            text = SHAPES[args.shape](n)
            prof = cProfile.Profile()
            prof.runcall(run_once, text)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        r = measure(n, args.repeats or (7 if n <= 1000 else 3), gc_pause=not args.no_gc_pause,
                    shape=args.shape)
        rows[n] = r
        cells = " ".join(f"{r[s] * 1e3:>9.1f}" for s in STAGES)
        per = {k: r[k] / n * 1e6 for k in ("load+compile", "total", "api")}
        print(f"{n:>7} {cells} {r['load+compile'] * 1e3:>13.1f} {r['total'] * 1e3:>9.1f} {r['api'] * 1e3:>9.1f}"
              f" {r['by hand'] * 1e3:>9.1f}             {per['load+compile']:>12.1f} {per['total']:>6.1f}"
              f" {per['api']:>6.1f}", flush=True)
    if 10000 in rows:
        ok = rows[10000]["api"] < 2.0
        print(f"10,000 blocks jg.compile(jg.loads(text)): {rows[10000]['api']:.3f} s, with lowering and the first "
              f"call {rows[10000]['total']:.3f} s ({'meets' if ok else 'misses'} the < 2 s target)")
    if 1000 in rows:
        ok = rows[1000]["load+compile"] < 1.0
        print(f"1,000 blocks load + validate + compile: {rows[1000]['load+compile']:.3f} s "
              f"({'meets' if ok else 'misses'} the < 1 s target)")
    sizes = sorted(rows)
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        for k in ("load+compile", "total", "api", "by hand"):
            growth = (rows[b][k] / b) / (rows[a][k] / a)
            print(f"per-block cost of {k} from {a} to {b} blocks: x{growth:.2f} (1.00 = linear)")
    print(f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
