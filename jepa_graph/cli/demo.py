"""``jepa-graph demo``: the main job on the built-in default, in four parts, under ten minutes on CPU.

1. Every spec in ``specs/`` is validated, compiled and run on random inputs: one row per spec
   (blocks, parameters, output shapes, forward time).
2. The Two Rooms world model (``specs/two_rooms.yaml``) trains on locally generated trajectories;
   its multi-step prediction error in latent space is compared with copying the last state.
3. The fork in the road (``specs/fork.jepa``): trained on a bimodal future, the latent model's two
   modes land on the two branches, while the same model without a latent predicts their average.

4. Two Rooms planning (``specs/two_rooms_wall.yaml``: the published protocol, fixed wall, state
   observations): the world model trains into ``<out>/two_rooms_wall/`` (checkpoint, metrics),
   then CEM, iCEM, MPPI and gradient planning each run the same held-out episodes (seed 10000 on,
   never used for tuning) beside the random policy and the scripted expert; one table of success
   (k/n, Wilson 95% interval), path length, final distance and planning time, and in ``<out>/``
   the architecture diagram, the training curves and each planner's trajectories.
   ``--pixels`` does the same with the pixel spec (``specs/two_rooms_wall_pixels.yaml``).

``--quick`` runs part 1 only; ``--no-plan`` skips part 4, ``--plan-only`` runs it alone. The
planners' settings (horizon 16, a plan every 4 steps, 256 samples x 8 iterations, 50 descent
steps x 4 starts) were chosen so that the four planners' 20 episodes x 200 steps take about three
to four minutes on one CPU thread; every one is a flag.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from ..core.errors import SpecError
from .common import err, positive_int
from .plan import _environment

HELP = "the main job on the built-in default"
SPECS = Path(__file__).resolve().parents[2] / "specs"
PLANNERS = ("cem", "icem", "mppi", "gradient")  # part 4's rows, beside the random policy and the expert
PLAN_SPECS = {False: "two_rooms_wall.yaml", True: "two_rooms_wall_pixels.yaml"}  # by --pixels


def add_arguments(p) -> None:
    p.add_argument("--specs", default=None, help="folder of specs (default: the repo's specs/)")
    p.add_argument("--batch", type=positive_int, default=32, help="batch size of the random-input runs")
    p.add_argument("--steps", type=positive_int, default=1000, help="training steps of the Two Rooms world model")
    parts = p.add_mutually_exclusive_group()
    parts.add_argument("--quick", action="store_true", help="only validate, compile and run every spec (part 1)")
    parts.add_argument("--no-plan", action="store_true", help="skip part 4 (Two Rooms planning)")
    parts.add_argument("--plan-only", action="store_true", help="run part 4 alone")
    g = p.add_argument_group("part 4: Two Rooms planning")
    g.add_argument("--pixels", action="store_true", help="the pixel variant (specs/two_rooms_wall_pixels.yaml)")
    g.add_argument("--out", default="out", help="folder of part 4's files (default out)")
    g.add_argument("--plan-steps", type=positive_int, default=None,
                   help="training steps of the planning world model (default: the spec's train.steps)")
    g.add_argument("--planners", type=_planners, default=PLANNERS, metavar="A,B",
                   help=f"planners to compare (default {','.join(PLANNERS)})")
    g.add_argument("--episodes", type=positive_int, default=20, help="episodes per row (default 20)")
    g.add_argument("--seed", type=int, default=10_000, help="first held-out seed (default 10000)")
    g.add_argument("--max-steps", type=positive_int, default=None, help="episode length (default: the env's, 200)")
    g.add_argument("--horizon", type=positive_int, default=16, help="world-model steps planned ahead (default 16)")
    g.add_argument("--replan-every", type=positive_int, default=4, help="actions executed per plan (default 4)")
    g.add_argument("--samples", type=positive_int, default=256, help="candidates per episode per iteration "
                   "(cem, icem, mppi; default 256)")
    g.add_argument("--iterations", type=positive_int, default=8, help="refits per plan (sampling; default 8)")
    g.add_argument("--elites", type=positive_int, default=None,
                   help="candidates refitted to (sampling; default: the planner's, 32 cem and icem, 64 mppi)")
    g.add_argument("--grad-steps", type=positive_int, default=50, help="descent steps per plan (gradient; default 50)")
    g.add_argument("--restarts", type=positive_int, default=4, help="descent starts per episode (gradient; default 4)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def _planners(text: str) -> tuple[str, ...]:
    """argparse type: a comma-separated subset of :data:`PLANNERS`."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in PLANNERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"`{text}`: choose from {', '.join(PLANNERS)}")
    return names


def plan_spec(pixels: bool) -> Path:
    """Part 4's spec; a missing one (the pixel spec, before it is written) is a SpecError."""
    path = SPECS / PLAN_SPECS[pixels]
    if not path.is_file():
        raise SpecError(f"no spec for the {'pixel' if pixels else 'state'} variant of Two Rooms planning: "
                        f"{path} does not exist yet",
                        hint="run the demo without --pixels (state observations), or add the spec first")
    return path


def run(args) -> int:
    import torch  # the demo compiles, runs and trains models
    torch.manual_seed(0)
    folder = Path(args.specs) if args.specs else SPECS
    planning = not (args.quick or args.no_plan)
    spec4 = plan_spec(args.pixels) if planning else None  # before any work: a missing spec stops here
    if planning and args.replan_every > args.horizon:
        raise SpecError(f"--replan-every {args.replan_every} is longer than --horizon {args.horizon}",
                        hint="a plan holds `horizon` actions: replan at least that often")
    took: dict[str, float] = {}
    if not args.plan_only:
        t0 = time.perf_counter()
        _say("== 1. every spec: validate, compile, run on random inputs\n")
        failed = compile_all(folder, args.batch)
        took["1"] = time.perf_counter() - t0
        if failed or args.quick:
            return 2 if failed else 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: more threads only add overhead
    try:
        if not args.plan_only:
            t0 = time.perf_counter()
            _say("\n== 2. Two Rooms world model: train, then roll the predictor forward\n")
            two_rooms(args.steps)
            took["2"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            _say("\n== 3. the fork in the road: a latent captures both futures\n")
            fork(200)
            took["3"] = time.perf_counter() - t0
        if spec4 is not None:
            t0 = time.perf_counter()
            _say("\n== 4. Two Rooms planning: train a world model, plan to goals\n")
            two_rooms_planning(spec4, Path(args.out), args)
            took["4"] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    if len(took) > 1:
        _say("\ntime: " + ", ".join(f"part {k} {v:.0f} s" for k, v in took.items())
             + f"; {sum(took.values()) / 60:.1f} min in all")
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


# ------------------------------------------------------------------------------ part 4: planning
def two_rooms_planning(spec_path: Path, out: Path, opts) -> list[tuple[str, ...]]:
    """Part 4: train ``spec_path``'s world model into ``out/<spec name>/``, draw its architecture and
    training curves, run each planner of ``opts.planners`` and the two baselines on the same
    held-out episodes (``opts.episodes`` from seed ``opts.seed``, all at once), then print the
    table, the files written and each stage's time. ``opts``: the demo's flags (part 4's group).
    Returns the table's rows (method, k/n, interval, path length, final distance, plan ms)."""
    # torch, matplotlib, graphviz: the model, its training, the planners and the pictures
    from tqdm.auto import tqdm

    from ..compiler.model import compile
    from ..diagrams import DotError, render
    from ..envs import list_envs, make
    from ..envs.baselines import Expert, RandomPolicy, evaluate as run_policy
    from ..frontend.load import load
    from ..frontend.train_config import resolve_config
    from ..planning.evaluation import evaluate, plot_trajectories
    from ..training.plot import plot_run
    from ..training.trainer import train
    spec = load(spec_path)
    model = compile(spec, seed=spec.train.seed if spec.train is not None else 0)
    cfg = resolve_config(model)
    steps = opts.plan_steps or cfg.steps
    # a run shorter than the spec's warm-up would end before its peak learning rate
    short = {"warmup": steps // 10} if cfg.schedule.warmup >= steps else {}
    run_dir, took, files = out / spec.name, {}, []
    out.mkdir(parents=True, exist_ok=True)
    _say(f"training {spec_path.name} ({model.num_parameters():,} parameters) for {steps} steps, "
         f"batch {cfg.batch_size}, into {run_dir}/")
    t0 = time.perf_counter()
    res = train(model, steps=steps, out=run_dir, progress=not opts.no_progress, tensorboard=False,
                meta={"spec_path": str(spec_path)}, **short)
    took["training"] = time.perf_counter() - t0
    first, last = res.history[0], res.history[-1]
    loss = " -> ".join(f"{r['loss']:.4g} (step {r['step']})" for r in ([first, last] if first is not last else [last]))
    _say(f"trained {steps} steps in {took['training']:.0f} s ({steps / took['training']:.1f} steps/s): loss {loss}")
    if res.collapsed:
        _say("warning: the representation collapsed during training (see collapse.* in the metrics)")
    files += [res.checkpoint, run_dir / "metrics.jsonl"]

    t0 = time.perf_counter()
    try:
        files.append(render(spec_path, out / f"{spec.name}_architecture.svg").path)
    except DotError as e:  # graphviz missing or failing: the rest of the demo still stands
        err(f"note: no architecture diagram: {e}")
    files.append(plot_run(run_dir, out / f"{spec.name}_training.png"))
    took["diagram and training curves"] = time.perf_counter() - t0

    model.eval()
    where = SimpleNamespace(env=None, with_=[], max_steps=opts.max_steps)  # as `jepa-graph plan` reads it
    env_name, params = _environment(model.spec, where, list_envs())
    env = make(env_name, n=opts.episodes, seed=opts.seed, **params)
    limit = env.max_steps
    sampling = {"samples": opts.samples, "iterations": opts.iterations,
                **({} if opts.elites is None else {"elites": opts.elites})}
    settings = {m: {"steps": opts.grad_steps, "restarts": opts.restarts} if m == "gradient" else sampling
                for m in opts.planners}
    _say(f"\nplanning in {env_name} ({', '.join(f'{k}={v}' for k, v in params.items())}): "
         f"{opts.episodes} episodes of {limit} steps from held-out seed {opts.seed}, all planned at once; "
         f"horizon {opts.horizon}, replanning every {opts.replan_every} steps")
    rows, drawing = [], 0.0
    for method in opts.planners:
        t0 = time.perf_counter()
        with tqdm(total=limit, desc=method, unit="step", leave=False, disable=opts.no_progress,
                  dynamic_ncols=True) as bar:
            table, sample = evaluate(model, env, method, episodes=opts.episodes, seed=opts.seed,
                                     horizon=opts.horizon, replan_every=opts.replan_every,
                                     on_step=lambda t: bar.update(1), **settings[method])
        took[method] = time.perf_counter() - t0
        rows.append(_row(method, table, table["plan_ms_per_step"]))
        _say(f"  {method} ({', '.join(f'{k} {v}' for k, v in settings[method].items())}): "
             f"{table['successes']}/{table['episodes']} in {took[method]:.0f} s")
        t0 = time.perf_counter()
        what = f"{method}, horizon {opts.horizon}, replan every {opts.replan_every}"
        files.append(plot_trajectories(sample, env, out / f"{spec.name}_plan_{method}.png",
                                       title=f"{spec.name}: {what}, seed {opts.seed}"))
        drawing += time.perf_counter() - t0
    took["trajectory plots"] = drawing
    t0 = time.perf_counter()
    for label, policy in (("random policy", RandomPolicy(opts.seed)), ("expert (scripted)", Expert())):
        rows.append(_row(label, run_policy(env, policy, episodes=opts.episodes, seed=opts.seed), None))
    took["random policy and expert"] = time.perf_counter() - t0

    _say("")
    _table(("method", "success k/n", "95% Wilson interval", "mean path length", "mean final distance",
            "plan ms per step"), rows)
    _say(f"(the same {opts.episodes} held-out episodes in every row; distances in the environment's units, "
         f"pixels in two_rooms_wall; plan ms: planning time per environment step, all {opts.episodes} "
         f"episodes planned together on one CPU thread)")
    _say("\nfiles:")
    for f in files:
        _say(f"  {f}")
    _say("\ntime:")
    _table(("stage", "seconds"), [(k, f"{v:.1f}") for k, v in took.items()])
    return rows


def _row(method: str, t: dict, ms: float | None) -> tuple[str, ...]:
    """One row of part 4's table from an evaluation's summary (``ms`` None: a policy, no planning)."""
    lo, hi = t["ci95"]
    final = t["mean_final_distance"]
    return (method, f"{t['successes']}/{t['episodes']}", f"[{lo:.3f}, {hi:.3f}]", f"{t['mean_path_length']:.1f}",
            "-" if final is None else f"{final:.1f}", "-" if ms is None else f"{ms:.0f}")

