"""``jepa-graph demo``: validate, compile and run every spec in ``specs/`` on random inputs.

Prints one row per spec: blocks, parameters, output shapes and forward time (the median of
repeated calls, no gradients). This is the main
job on the built-in default until training and planning land in the demo.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

from .errors import SpecError
from .model import compile

SPECS = Path(__file__).resolve().parent.parent / "specs"


def run_demo(args) -> int:
    folder = Path(args.specs) if args.specs else SPECS
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".jepa"))
    rows, failed = [], 0
    torch.manual_seed(0)
    for path in files:
        try:
            model = compile(path)
        except SpecError as e:
            sys.stderr.write(str(e) + "\n")
            failed += 1
            continue
        inputs = model.example_inputs(args.batch)
        with torch.no_grad():
            out = model(**inputs)  # warm-up
            times = []  # median of up to 25 calls within ~0.3 s: robust to a busy machine
            while len(times) < 3 or (len(times) < 25 and sum(times) < 0.3):
                t0 = time.perf_counter()
                out = model(**inputs)
                times.append(time.perf_counter() - t0)
            ms = statistics.median(times) * 1e3
        calls = sum(1 for n in model.graph.nodes.values() if n.op == "call")
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in out.items() if k in ("energy", "loss")
                           or model.graph.nodes.get(k) is not None and model.graph.nodes[k].kind in ("predictor", "actor"))
        rows.append((path.name, str(calls), f"{model.num_parameters():,}", shapes, f"{ms:.2f}"))
    head = ("spec", "blocks", "params", "outputs (batch %d)" % args.batch, "forward ms")
    w = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    line = lambda r: "  ".join(c.ljust(w[i]) if i in (0, 3) else c.rjust(w[i]) for i, c in enumerate(r))
    sys.stdout.write(line(head) + "\n" + "  ".join("-" * x for x in w) + "\n")
    for r in rows:
        sys.stdout.write(line(r) + "\n")
    sys.stdout.write(f"\n{len(rows)} specs compiled and ran; {failed} failed\n")
    return 2 if failed else 0
