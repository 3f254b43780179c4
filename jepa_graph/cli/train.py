"""``jepa-graph train SPEC [key=value ...]``: train on the spec's data source.

Overrides (:mod:`jepa_graph.frontend.overrides`) are applied to the spec's data before
validation, so they are checked exactly like the file; a bad one points at itself on the
command line::

    $ jepa-graph train specs/two_rooms.yaml train.lr=-1
    <command line>:1:48: error: `train.optimizer.lr`: input should be greater than 0, got `-1`

Overrides may come before or after the options. Under ``torchrun --nproc_per_node=N`` the same
command trains with DistributedDataParallel.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..frontend.overrides import load_with_overrides
from .common import add_path_option, out

HELP = "train on the spec's data source: checkpoints, metrics (key=value overrides)"


def add_arguments(p) -> None:
    _intermixed(p)
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="change any spec value, e.g. train.lr=3e-4 train.steps=500 train.device=cuda")
    p.add_argument("--out", default=None, help="run folder (default: train.out, else runs/<spec name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt exactly where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_path_option(p, help="extra composite-block folder")


def _intermixed(p) -> None:
    """Let ``p`` take its positionals between options (``train SPEC --out X train.steps=2``).

    The top-level parser calls a subcommand's ``parse_known_args``; plain argparse fills
    ``overrides`` (nargs="*") with the first run of positionals and leaves later ones
    unrecognised. ``parse_known_intermixed_args`` parses options first, then positionals; it
    calls ``parse_known_args`` itself, so the inner calls go to the plain method.
    """
    plain = p.parse_known_args
    busy = False

    def parse_known_args(args=None, namespace=None):
        nonlocal busy
        if busy:
            return plain(args, namespace)
        busy = True
        try:
            return p.parse_known_intermixed_args(args, namespace)
        finally:
            busy = False

    p.parse_known_args = parse_known_args


RESUME_MISMATCH_HINT = ("this run folder holds a run of another architecture: train into a new folder with a "
                        "different --out, drop --resume to start this one over, or train the spec it was "
                        "trained with (its text is stored in the checkpoint)")


def run(args) -> int:
    # torch: the model, its trainer and the collectives
    from ..compiler.model import compile
    from ..runtime import distributed
    from ..training.checkpoint import SpecMismatch
    from ..training.trainer import Trainer
    logging.getLogger("jepa_graph").setLevel(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    spec = load_with_overrides(args.spec, args.overrides)
    cfg = spec.train
    run_dir = Path(args.out or (cfg.out if cfg and cfg.out else f"runs/{spec.name}"))
    seed = cfg.seed if cfg else 0
    model = compile(spec, args.path, seed=seed)
    try:
        trainer = Trainer(model, out=run_dir, resume=args.resume, progress=not args.no_progress,
                          meta={"overrides": list(args.overrides), "spec_path": str(args.spec)})
    except SpecMismatch as e:  # the library's hint names Python keywords this command has no flag for
        raise SpecMismatch(e.first.message, e.first.loc, RESUME_MISMATCH_HINT) from None
    try:
        result = trainer.fit()
    finally:
        distributed.shutdown()
    if trainer.rank == 0:
        last = result.history[-1] if result.history else {}
        terms = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "steps_per_s", "lr")
                          and not k.startswith(("ema.", "collapse.")) and isinstance(v, float))
        out(f"{spec.name}: step {result.step}/{trainer.cfg.steps}: {terms}")
        out(f"checkpoint: {result.checkpoint}")
        out(f"metrics: {run_dir / 'metrics.jsonl'}  (plot: jepa-graph plot {run_dir})")
        if result.collapsed:
            out("warning: a representation collapsed during training (see collapse.* in the metrics)")
    return 0
