"""Render time of large specs: jepa-graph's own work against Graphviz's layout of the same DOT.

Specs: chains of ``--sizes`` composites of 5 blocks each (10 chains side by side, each ending in
an l2 energy against a target encoder), so 100 composites make a 511-block spec. For each size and
for the expanded (every block drawn, one cluster per composite) and collapsed (``depth=0``: one box
per composite) diagram, the script times, in one process:

- ``scene``: load, check and lay out the diagram, up to the DOT source (``jg.render``'s Python part);
- ``dot``: Graphviz laying out that same DOT source to SVG (the baseline: what any diagram of this
  graph costs);
- ``total``: ``jg.render(spec, "x.svg")`` end to end.

Wall-clock seconds, median of ``--repeats`` runs; the ratio ``total / dot`` says how much
jepa-graph adds to Graphviz's own cost. Nodes/edges/clusters of each DOT are printed, so the
collapsed diagram's size (what a reader sees) is on record too.

    .venv/bin/python benchmarks/render_time.py --sizes 20 100 200
"""
from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import jepa_graph as jg
from jepa_graph.diagrams import dot_source, pipe

UNIT = """\
name: unit
dims: {d: 8}
inputs:
  u: {shape: [d]}
blocks:
  e1: {kind: encoder, type: mlp, in: [u], with: {out: d}}
  p1: {kind: predictor, type: mlp, in: [e1], with: {out: d}}
  p2: {kind: predictor, type: mlp, in: [p1], with: {out: d}}
  p3: {kind: predictor, type: mlp, in: [p2], with: {out: d}}
  p4: {kind: predictor, type: mlp, in: [p3], with: {out: d}}
outputs: {out: p4}
"""


def big_spec(folder: Path, n: int) -> Path:
    """``n`` composites in 10 chains (n a multiple of 10): 5 n + 11 blocks."""
    (folder / "unit.yaml").write_text(UNIT)
    per = n // 10
    lines = ["name: big", "dims: {d: 8}", "inputs:", "  x: {shape: [d]}", "  y: {shape: [d]}", "blocks:"]
    for i in range(n):
        src = "x" if i % per == 0 else f"u{i - 1}"
        lines.append(f"  u{i}: {{kind: composite, type: unit, in: [{src}], with: {{d: d}}}}")
    lines.append("  tgt: {kind: encoder, type: mlp, in: [y], with: {out: d}}")
    lines += [f"  E{k}: {{kind: energy, type: l2, in: [u{per * k + per - 1}, tgt]}}" for k in range(10)]
    lines.append("objective: {" + ", ".join(f"E{k}: 1.0" for k in range(10)) + "}")
    path = folder / f"big{n}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 200], help="composites (multiples of 10)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print("| blocks | diagram | nodes | edges | clusters | scene (s) | dot (s) | total (s) | total / dot |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.sizes:
            spec = big_spec(tmp, n)
            blocks = sum(node.op == "call" for node in jg.check(spec).nodes.values())
            for label, opts in (("expanded", {}), ("collapsed", {"depth": 0})):
                t_scene, src = timed(lambda: dot_source(spec, **opts), args.repeats)
                t_dot, _ = timed(lambda: pipe(src, "svg"), args.repeats)
                t_total, _ = timed(lambda: jg.render(spec, tmp / "x.svg", **opts), args.repeats)
                nodes = len([m for m in re.findall(r"^\s*\"?([\w/]+)\"? \[", src, re.M)
                             if m not in ("node", "edge", "graph")])
                edges = src.count(" -> ")
                clusters = src.count("subgraph cluster")
                print(f"| {blocks:,} | {label} | {nodes} | {edges} | {clusters} | {t_scene:.2f} | {t_dot:.2f} | "
                      f"{t_total:.2f} | {t_total / t_dot:.2f} |")


if __name__ == "__main__":
    main()
