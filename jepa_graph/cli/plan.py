"""``jepa-graph plan SPEC --checkpoint C``: planned episodes in the spec's environment, reported.

    jepa-graph plan specs/two_rooms.yaml --checkpoint runs/two_rooms_world_model/last.pt --episodes 64
    jepa-graph plan specs/two_rooms.yaml --checkpoint C --method mppi --horizon 20 --weight reach=2 -o mppi.png

Runs :func:`jepa_graph.planning.evaluation.evaluate` on held-out seeds (``--seed``, default
10000: the data sources draw from small seeds) and prints the success rate with its Wilson 95%
interval, the mean path length and steps, and the planning time per step; writes a PNG of sample
trajectories (start, goal, walls, the path, the plans). The environment is ``--env``, else the
spec's ``train.data`` source when an environment has its name. Under ``torchrun`` the episodes
are split across the ranks and the table is gathered; rank 0 prints it.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from ..core.errors import SpecError, did_you_mean
from ..frontend.parse_yaml import parse_value
from .common import add_path_option, out, positive_float, positive_int

HELP = "run the planner in the spec's environment: success rate, path length, planning time, PNG"
METHODS = ("cem", "icem", "mppi", "gradient", "cem+gradient", "icem+gradient", "mppi+gradient")  # planning.methods


def add_arguments(p) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--checkpoint", metavar="C", help="trained weights (default: random initial weights)")
    p.add_argument("--episodes", type=positive_int, default=32, help="evaluation episodes (default 32)")
    p.add_argument("--method", default="cem", help=f"planner: {', '.join(METHODS)} (default cem)")
    p.add_argument("--actor", action="store_true", help="act with the spec's actor instead of planning (Mode-1)")
    p.add_argument("--horizon", type=positive_int, default=16, help="world-model steps planned ahead (default 16)")
    p.add_argument("--replan-every", type=positive_int, default=1, help="execute k actions per plan (default 1)")
    p.add_argument("--samples", type=positive_int, help="candidates per environment per iteration (sampling)")
    p.add_argument("--iterations", type=positive_int, help="refits of the proposal (sampling)")
    p.add_argument("--elites", type=positive_int, help="candidates the proposal is refitted to (sampling)")
    p.add_argument("--steps", type=positive_int, help="descent steps (gradient)")
    p.add_argument("--lr", type=positive_float, help="descent step size (gradient)")
    p.add_argument("--restarts", type=positive_int, help="descent starts per environment (gradient)")
    p.add_argument("--latent", choices=("zero", "sample", "optimise"), default="zero",
                   help="the world model's latent while planning (default zero: the prior's mode)")
    p.add_argument("--weight", action="append", default=[], metavar="TERM=W",
                   help="a cost term's weight for this run (repeatable), e.g. --weight reach=2")
    p.add_argument("--env", help="environment (default: the spec's train.data source, when one has its name)")
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="KEY=VALUE",
                   help="environment parameter (repeatable), e.g. --with door=0.6")
    p.add_argument("--batch", type=positive_int, default=16, help="environments run at once (default 16)")
    p.add_argument("--max-steps", type=positive_int, help="episode length (default: the environment's)")
    p.add_argument("--seed", type=int, default=10_000, help="first evaluation seed (default 10000, held out)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("-o", "--output", default="plan.png", help="PNG of sample trajectories (default plan.png)")
    add_path_option(p, help="extra composite folder")


def run(args) -> int:
    if Path(args.output).suffix.lower() != ".png":  # before any work: the plot comes at the end
        raise SpecError(f"cannot write the trajectories to `{args.output}`: they are drawn as a PNG",
                        hint="give an output ending in .png, e.g. -o plan.png")
    if args.method not in METHODS:
        raise SpecError(f"unknown planning method `{args.method}`", hint=did_you_mean(args.method, METHODS, "methods"))
    # torch: the model, the environment and the planners
    import torch

    from ..compiler.model import compile
    from ..envs import list_envs, make
    from ..planning.evaluation import evaluate, plot_trajectories
    from ..runtime import distributed
    rank, world, local = distributed.setup()
    try:
        device = distributed.pick_device(args.device, local)
        torch.manual_seed(args.seed)
        model = compile(args.spec, args.path).to(device)
        model.eval()
        if args.checkpoint:
            from ..training.checkpoint import load_checkpoint  # only with --checkpoint
            info = load_checkpoint(args.checkpoint, model, restore_rng=False)
            weights = f"{args.checkpoint} (step {info.get('step', '?')})"
        else:
            weights = "random initial weights (no --checkpoint given)"
        name, params = _environment(model.spec, args, list_envs())
        env = make(name, n=args.batch, seed=args.seed, **params)
        options = {k: getattr(args, k) for k in ("samples", "iterations", "elites", "steps", "lr", "restarts")
                   if getattr(args, k) is not None}
        weights_at = {k: _number(v, "--weight") for k, v in (_kv(w, "--weight", "reach=2") for w in args.weight)}
        control = dict(horizon=args.horizon, replan_every=args.replan_every, max_steps=args.max_steps,
                       mode="actor" if args.actor else "plan", **options)
        if not args.actor:
            control.update(latent=args.latent, weights=weights_at or None)
        table, sample = evaluate(model, env, args.method, episodes=args.episodes, seed=args.seed, rank=rank,
                                 world=world, **control)
        if rank == 0:
            _report(args, table, weights, name, params, env, device, world, options)
            what = "actor" if args.actor else f"{args.method}, horizon {args.horizon}"
            png = plot_trajectories(sample, env, args.output, title=f"{model.spec.name}: {what} in {name}")
            out(f"wrote {png}")
    finally:
        distributed.shutdown()
    return 0


def _report(args, table, weights, name, params, env, device, world, options) -> None:
    n = table["episodes"]
    out(f"weights: {weights}")
    extra = f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else ""
    ranks = f" on {world} ranks" if world > 1 else ""
    out(f"environment: {name}{extra}, {env.num_envs} at a time on {device}{ranks}; "
        f"{n} episodes from seed {args.seed}")
    if args.actor:
        out("policy: the spec's actor (Mode-1)")
    else:
        opts = f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else ""
        out(f"planner: {args.method}, horizon {args.horizon}, replan every {args.replan_every}{opts}")
    lo, hi = table["ci95"]
    out(f"success rate {table['success_rate']:.3f} ({table['successes']}/{n}), 95% CI [{lo:.3f}, {hi:.3f}]")
    final = table["mean_final_distance"]
    out(f"path length {table['mean_path_length']:.3f} (mean), steps {table['mean_steps']:.1f} (mean)"
        + (f", final distance to the goal {final:.3f} (mean)" if final is not None else ""))
    out(f"planning time {table['plan_ms_per_step']:.1f} ms per step ({env.num_envs} environments at once)")


def _environment(spec, args, envs: list[str]) -> tuple[str, dict]:
    """The environment's name and parameters: ``--env``, else the spec's data source's name, with
    the source's parameters the environment also takes, then ``--with``."""
    from ..envs import get_env  # torch: called from run(), after the model is built
    from ..planning.world import spec_loc
    data = spec.train.data if spec.train is not None else None
    name = args.env or (data.source if data is not None and data.source in envs else None)
    if name is None:
        raise SpecError(f"`{spec.name}` names no environment to plan in", spec_loc(spec, "train", "data"),
                        f"pick one with --env ({', '.join(envs)})")
    cls = get_env(name)
    takes = set(inspect.signature(cls.__init__).parameters) - {"self", "num_envs", "seed", "generator", "device"}
    params = {k: v for k, v in (data.params.items() if data is not None and data.source == name else [])
              if k in takes}
    for w in args.with_:
        k, v = _kv(w, "--with", "door=0.6")
        params[k] = parse_value(v)
    if args.max_steps is not None and "max_steps" in takes:
        params["max_steps"] = args.max_steps
    return name, params


def _kv(text: str, flag: str, example: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise SpecError(f"`{flag} {text}` is not KEY=VALUE", hint=f"e.g. {flag} {example}")
    return key, value


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SpecError(f"`{flag}`: `{text}` is not a number", hint=f"e.g. {flag} reach=2") from None
