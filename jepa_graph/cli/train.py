"""``jepa-graph train SPEC [key=value ...]`` and ``jepa-graph plot RUN``.

Overrides are applied to the spec's data before validation, so they are checked exactly like
the file; a bad one points at itself on the command line::

    $ jepa-graph train specs/two_rooms.yaml train.lr=-1
    <command line>:1:48: error: `train.optimizer.lr`: input should be greater than 0, got `-1`

Values are YAML scalars or flow collections (``train.data.with={size: 32}``). The spec's
``train:`` shorthands (``lr:``, ``warmup:``, ``data: NAME``, ...) are expanded first, so an
override wins whichever spelling either side uses: ``train.optimizer.lr=0.5`` beats the file's
``lr: 1e-3``, and ``train.data.with.episodes=4`` works on ``data: two_rooms``. A section's name
form sets only its name: ``train.optimizer=sgd`` keeps the spec's ``lr`` (as
``train.optimizer.name=sgd`` does); ``train.data=NAME`` keeps the section when NAME is its source,
and otherwise starts the new source from its defaults (the old ``with:`` and ``rename:`` were the
old source's). Overrides may come before or after the options. Under ``torchrun
--nproc_per_node=N`` the same command trains with DistributedDataParallel.
"""
from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import Location, SpecError, register_source
from ..frontend.train_config import NAME_FORMS, SHORTHANDS

CMDLINE = "<command line>"


def apply_overrides(raw, overrides: list[str], prefix: str = "") -> None:
    """Set ``a.b.c=value`` pairs in ``raw.data`` (a RawSpec), locating each at its argument.

    ``train:`` is brought to its long form before the first override and after each one, so
    the last value given for a setting wins, whichever spelling set it."""
    expand_shorthands(raw)
    line = prefix
    for arg in overrides:
        line += " " if line else ""
        col = len(line) + 1
        line += arg
        key, eq, text = arg.partition("=")
        if not eq or not key:
            register_source(CMDLINE, line)
            raise SpecError(f"override `{arg}` is not key=value", Location(CMDLINE, 1, col),
                            "write e.g. train.lr=3e-4 train.steps=500")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            register_source(CMDLINE, line)
            raise SpecError(f"override `{arg}`: value is not valid YAML ({e.__class__.__name__})",
                            Location(CMDLINE, 1, col + len(key) + 1), "quote strings with spaces") from None
        path = tuple(key.split("."))
        node = raw.data
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                register_source(CMDLINE, line)
                raise SpecError(f"override `{arg}`: `{'.'.join(path[:i + 1])}` is not a mapping",
                                Location(CMDLINE, 1, col), "override a leaf value")
            node = nxt
        loc_key, loc_val = Location(CMDLINE, 1, col), Location(CMDLINE, 1, col + len(key) + 1)
        for i in range(1, len(path) + 1):  # new parents point at the argument too
            raw.keys.setdefault(path[:i], loc_key)
            raw.values.setdefault(path[:i], loc_key)
        name_key = NAME_FORMS.get(path[1]) if len(path) == 2 and path[0] == "train" else None
        if name_key and isinstance(value, str) and isinstance(node.get(path[1]), dict):
            _set_name(raw, node[path[1]], path, name_key, value, loc_key, loc_val)
        else:
            node[path[-1]] = value
            raw.keys[path], raw.values[path] = loc_key, loc_val
            _drop_below(raw, path, loc_val)
        expand_shorthands(raw, overriding=True)
    register_source(CMDLINE, line)


def expand_shorthands(raw, overriding: bool = False) -> None:
    """Rewrite ``raw``'s ``train:`` section in its long form, in place, positions moving along:
    ``lr: X`` -> ``optimizer: {lr: X}`` (and weight_decay, warmup, final_lr), ``data: NAME`` ->
    ``data: {source: NAME}``, ``optimizer: NAME`` -> ``optimizer: {name: NAME}``.

    A shorthand beside its long form (``lr:`` and ``optimizer: {lr:}``) is an error in the file;
    ``overriding``: the shorthand was just set on the command line and replaces the long form.
    """
    train = raw.data.get("train") if isinstance(raw.data, dict) else None
    if not isinstance(train, dict):
        return
    for section, key in NAME_FORMS.items():
        if isinstance(train.get(section), str):
            train[section] = {key: train[section]}
            at = raw.at(("train", section))
            raw.keys[("train", section, key)] = raw.values[("train", section, key)] = at
    for key, section in SHORTHANDS.items():
        if key not in train:
            continue
        if train.get(section) is None:
            train[section] = {}
            raw.keys[("train", section)] = raw.values[("train", section)] = raw.at(("train", key), key=True)
        sub = train[section]
        if not isinstance(sub, dict):  # `optimizer: [..]`: validation reports the section
            continue
        if key in sub and not overriding:
            raise SpecError(f"`train.{key}` and `train.{section}.{key}` both set the {section}'s `{key}`",
                            raw.at(("train", key), key=True),
                            f"keep one: `{key}:` at the top of `train:` is short for `{section}: {{{key}: ...}}`")
        sub[key] = train.pop(key)
        for table in (raw.keys, raw.values):
            for p in [p for p in table if p[:2] == ("train", key)]:
                table[("train", section) + p[1:]] = table.pop(p)


def _set_name(raw, section: dict, path: tuple, key: str, name: str, loc_key: Location, loc_val: Location) -> None:
    """``train.optimizer=sgd`` on a written ``optimizer:`` section: set its ``name`` and keep the rest.
    A new data source drops the old one's ``with:`` and ``rename:``; the same one keeps them."""
    if key == "source" and section.get("source") != name:
        for gone in ("with", "rename"):
            section.pop(gone, None)
            for table in (raw.keys, raw.values):
                for p in [p for p in table if p[:len(path) + 1] == path + (gone,)]:
                    del table[p]
    section[key] = name
    raw.keys[path + (key,)], raw.values[path + (key,)] = loc_key, loc_val


def _drop_below(raw, path: tuple, loc: Location) -> None:
    """Positions inside a replaced value now live on the command line."""
    for table in (raw.keys, raw.values):
        for p in [p for p in table if len(p) > len(path) and p[:len(path)] == path]:
            table[p] = loc


def load_with_overrides(spec_path: str, overrides: list[str]):
    """Parse ``spec_path``, apply ``overrides``, validate: a :class:`~jepa_graph.spec.Spec`."""
    from ..frontend.load import build_spec, parse_file
    raw = parse_file(spec_path)
    apply_overrides(raw, overrides, prefix=f"jepa-graph train {shlex.quote(spec_path)}")
    return build_spec(raw)


# ------------------------------------------------------------------------------------ train
def add_train_arguments(p) -> None:
    _intermixed(p)
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="change any spec value, e.g. train.lr=3e-4 train.steps=500 train.device=cuda")
    p.add_argument("--out", default=None, help="run folder (default: train.out, else runs/<spec name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt exactly where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--path", action="append", default=None, metavar="DIR", help="extra composite-block folder")


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


def run_train(args) -> int:
    from ..runtime import distributed
    from ..training.checkpoint import SpecMismatch
    from ..compiler.model import compile
    from ..training.trainer import Trainer
    logging.getLogger("jepa_graph").setLevel(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    spec = load_with_overrides(args.spec, args.overrides)
    cfg = spec.train
    out = Path(args.out or (cfg.out if cfg and cfg.out else f"runs/{spec.name}"))
    seed = cfg.seed if cfg else 0
    model = compile(spec, args.path, seed=seed)
    try:
        trainer = Trainer(model, out=out, resume=args.resume, progress=not args.no_progress,
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
        _out(f"{spec.name}: step {result.step}/{trainer.cfg.steps}: {terms}")
        _out(f"checkpoint: {result.checkpoint}")
        _out(f"metrics: {out / 'metrics.jsonl'}  (plot: jepa-graph plot {out})")
        if result.collapsed:
            _out("warning: a representation collapsed during training (see collapse.* in the metrics)")
    return 0


# ------------------------------------------------------------------------------------- plot
def add_plot_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run folder (or its metrics.jsonl)")
    p.add_argument("-o", "--output", default=None, help="PNG to write (default: RUN/metrics.png)")


def run_plot(args) -> int:
    from ..training.plot import plot_run
    path = plot_run(args.run, args.output)
    _out(f"wrote {path}")
    return 0


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


# the `jepa-graph` CLI looks these up per command (see cli.EXTERNAL)
COMMANDS: dict[str, Any] = {
    "train": (add_train_arguments, run_train),
    "plot": (add_plot_arguments, run_plot),
}
