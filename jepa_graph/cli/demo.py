"""``jepa-graph demo``: the main job on the built-in default, in three parts, about a minute on CPU.

1. Every spec in ``specs/`` is validated, compiled and run on random inputs: one row per spec
   (blocks, parameters, output shapes, forward time).
2. The Two Rooms world model (``specs/two_rooms.yaml``) trains on locally generated trajectories;
   its multi-step prediction error in latent space is compared with copying the last state.
3. The fork in the road (``specs/fork.jepa``): trained on a bimodal future, the latent model's two
   modes land on the two branches, while the same model without a latent predicts their average.

``--quick`` runs part 1 only.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from ..core.errors import SpecError
from .common import positive_int

HELP = "the main job on the built-in default"
SPECS = Path(__file__).resolve().parents[2] / "specs"


def add_arguments(p) -> None:
    p.add_argument("--specs", default=None, help="folder of specs (default: the repo's specs/)")
    p.add_argument("--batch", type=positive_int, default=32, help="batch size of the random-input runs")
    p.add_argument("--steps", type=positive_int, default=1000, help="training steps of the Two Rooms world model")
    p.add_argument("--quick", action="store_true", help="only validate, compile and run every spec")


def run(args) -> int:
    import torch  # the demo compiles, runs and trains models
    torch.manual_seed(0)
    folder = Path(args.specs) if args.specs else SPECS
    _say("== 1. every spec: validate, compile, run on random inputs\n")
    failed = compile_all(folder, args.batch)
    if failed or getattr(args, "quick", False):
        return 2 if failed else 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: more threads only add overhead
    try:
        _say("\n== 2. Two Rooms world model: train, then roll the predictor forward\n")
        two_rooms(args.steps)
        _say("\n== 3. the fork in the road: a latent captures both futures\n")
        fork(200)
    finally:
        torch.set_num_threads(threads)
    return 0


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], left: tuple[int, ...] = (0,)) -> None:
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w[i]) if i in left else c.rjust(w[i]) for i, c in enumerate(r))
    _say(line(head))
    _say("  ".join("-" * x for x in w))
    for r in rows:
        _say(line(r))


def compile_all(folder: Path, batch: int) -> int:
    # torch: compiles and runs every spec
    import torch

    from ..compiler.model import compile
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".jepa"))
    rows, failed = [], 0
    for path in files:
        try:
            model = compile(path, seed=0)
        except SpecError as e:
            sys.stderr.write(str(e) + "\n")
            failed += 1
            continue
        inputs = model.example_inputs(batch)
        with torch.no_grad():
            out = model(**inputs)  # warm-up
            times = []  # median of up to 25 calls within ~0.3 s: robust to a busy, shared machine
            while len(times) < 3 or (len(times) < 25 and sum(times) < 0.3):
                t0 = time.perf_counter()
                out = model(**inputs)
                times.append(time.perf_counter() - t0)
            ms = statistics.median(times) * 1e3
        calls = sum(1 for n in model.graph.nodes.values() if n.op == "call")
        shown = [k for k, v in out.items() if k in ("energy", "loss") or
                 (k in model.graph.nodes and model.graph.nodes[k].kind in ("predictor", "actor"))]
        rows.append((path.name, str(calls), f"{model.num_parameters():,}",
                     ", ".join(f"{k}{list(out[k].shape)}" for k in shown), f"{ms:.2f}"))
    _table(("spec", "blocks", "params", f"outputs (batch {batch})", "forward ms"), rows, left=(0, 3))
    _say(f"\n{len(rows)} specs compiled and ran; {failed} failed")
    return failed


def two_rooms(steps: int) -> None:
    # torch: trains a world model
    from ..compiler.model import compile
    from ..data import make_source, spec_inputs
    from ..training.metrics import rollout_error
    from ..training.trainer import train
    model = compile(SPECS / "two_rooms.yaml", seed=0)
    t0 = time.perf_counter()
    res = train(model, "two_rooms", steps=steps, batch_size=64, lr=1e-3, warmup=steps // 10,
                progress=False, log_every=max(steps // 10, 1), monitor_every=steps)
    secs = time.perf_counter() - t0
    model.eval()
    src = make_source("two_rooms", {"horizon": 8, "episodes": 256}, spec_inputs(model), seed=999)
    held_out = src.batch(0, 1024)
    err = rollout_error(model, held_out["x_seq"], held_out["a_seq"], target="target")
    _say(f"trained {steps} steps in {secs:.0f} s: loss {res.history[0]['loss']:.3f} -> {res.history[-1]['loss']:.3f}")
    rows = [(str(h), f"{err['model'][h - 1]:.3f}", f"{err['copy_last'][h - 1]:.3f}") for h in (1, 2, 4, 8)]
    _table(("steps ahead", "world model", "copy last state"), rows)
    _say("(held-out trajectories; squared error in latent space over the representation's variance)")


def fork(steps: int) -> None:
    # torch: trains two models
    import torch

    from ..compiler.model import compile
    from ..data.fork import fork_batches, make_fork
    from ..inference.minimize import free_energy, loss_with_latents
    from ..inference.modes import predict_modes
    models = {}
    for name in ("fork.jepa", "fork_no_latent.jepa"):
        model = compile(SPECS / name, seed=0)
        latent = bool(model.spec.latents)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
        data = fork_batches(64, seed=0)
        for i in range(steps):
            batch = next(data)
            # a warm start on the free energy (a soft minimum over z) gives both values of z
            # gradient, so neither branch is left without a mode; then F = min_z E
            loss = free_energy(model, batch, beta=10 ** (1 + 4 * i / steps)).mean() \
                if latent and i < steps // 2 else loss_with_latents(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        models[name] = model
    d = make_fork(128, seed=123, paired=True)
    x, left, right = d["x"][::2], d["y_left"][::2], d["y_right"][::2]
    rows = []
    with torch.no_grad():
        for name, model in models.items():
            tgt = {k: model.blocks.target_encoder(v) for k, v in (("left", left), ("right", right),
                                                                   ("average", (left + right) / 2))}
            sep = (tgt["left"] - tgt["right"]).norm(dim=1)  # (B,) branch separation
            if model.spec.latents:
                preds = list(predict_modes(model, {"x": x}, k=2).pred.unbind(1))  # 2 x (B, state)
            else:
                preds = [model.run("forward", {"x": x, "y": left})["predictor"]]
            for i, p in enumerate(preds):
                dist = {k: ((p - v).norm(dim=1) / sep).mean().item() for k, v in tgt.items()}
                rows.append((name, f"mode {i}" if len(preds) > 1 else "prediction",
                             *(f"{dist[k]:.2f}" for k in ("left", "right", "average"))))
    _table(("spec", "output", "to left branch", "to right branch", "to their average"), rows, left=(0, 1))
    _say("(distance in the target representation, in units of the branch separation; held-out cars)")
