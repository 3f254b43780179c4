"""``jepa-graph energy SPEC``: the energy over a latent, or F along a line of targets, as a PNG.

    jepa-graph energy specs/fork.jepa --checkpoint runs/fork/last.pt -o z.png     # E over z
    jepa-graph energy specs/fork_no_latent.jepa --along y --between 0 1 -o line.png  # F along y

The plots are :mod:`jepa_graph.inference.landscape`'s; this command picks the weights and a
batch (the spec's data source, or random inputs) and reports the grid's minimum and z*.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path

from ..core.errors import SpecError
from ..frontend.parse_yaml import parse_value
from .common import add_path_option, out

if TYPE_CHECKING:
    import torch

HELP = "plot the energy over a latent, or F along a line of targets, to PNG"


def add_arguments(p) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--checkpoint", metavar="C", help="trained weights (default: random initial weights)")
    p.add_argument("-o", "--output", default="energy.png", help="PNG to write (default: energy.png)")
    p.add_argument("--over", metavar="NAME", help="the latent (default: the only one left to infer); other "
                   "latents are held at their part of the sample's joint minimiser z*")
    p.add_argument("--dims", default=None, help="coordinates of a continuous latent to vary, e.g. 0 or 0,1")
    p.add_argument("--lim", type=float, nargs=2, metavar=("LO", "HI"), help="latent range (default: box or -3 3)")
    p.add_argument("--along", metavar="INPUT", help="plot F along a line of this input instead (e.g. y)")
    p.add_argument("--between", type=int, nargs=2, metavar=("I", "J"), default=(0, 1),
                   help="the line's ends: INPUT of samples I and J; x from sample I (default 0 1)")
    p.add_argument("--sample", type=int, default=0, help="which sample of the batch (latent view)")
    p.add_argument("--data", help="data source (default: the spec's train.data, else random inputs)")
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="KEY=VALUE",
                   help="data source parameter (repeatable), e.g. --with paired=true")
    p.add_argument("--seed", type=int, default=0)
    add_path_option(p, help="extra composite folder")


def run(args) -> int:
    if Path(args.output).suffix.lower() != ".png":  # before any work: matplotlib would fail at the end
        raise SpecError(f"cannot write the plot to `{args.output}`: the energy plot is a PNG",
                        hint="give an output ending in .png, e.g. -o energy.png")
    # torch: the model, its inference and the data
    import torch

    from ..compiler.model import compile
    from ..inference.landscape import check_sample, energy_along, latent_landscape, plot
    from ..inference.latents import latent_spaces, resolve
    torch.manual_seed(args.seed)
    model = compile(args.spec, args.path)
    model.eval()
    if args.checkpoint:
        from ..training.checkpoint import load_checkpoint  # only with --checkpoint
        info = load_checkpoint(args.checkpoint, model, restore_rng=False)
        out(f"weights: {args.checkpoint} (step {info.get('step', '?')})")
    else:
        out("weights: random initial weights (no --checkpoint given)")
    params = {}
    for w in args.with_:
        key, value = _kv(w)
        try:
            params[key] = parse_value(value)  # the bounds of spec files: no tags, no alias bombs
        except SpecError as e:
            raise SpecError(f"`--with {w}`: {e.first.message}", hint=e.first.hint or "e.g. --with paired=true") from None
    batch, what = _batch(model, args, params)
    out(f"data: {what}")
    if not args.along and not latent_spaces(model):
        raise SpecError(f"`{model.spec.name}` has no latent to draw the energy over",
                        hint="plot F along a line of targets instead: "
                             + " or ".join(f"--along {n}" for n in _line_inputs(model)))
    if args.along:
        i, j = args.between
        if args.along not in batch:
            raise SpecError(f"`{args.along}` is not in the batch", hint="inputs: " + ", ".join(batch))
        for k in (i, j):
            check_sample(batch, k, "--between")
        land = energy_along(model, batch, args.along, batch[args.along][i], batch[args.along][j], sample=i)
        title = f"{model.spec.name}: F along {args.along} from sample {i} to {j}"
    else:
        left = resolve(model, batch, None)[0] if args.over is None else []
        if len(left) > 1:  # worded for the command line: latent_landscape's own says `over=`
            raise SpecError(f"`{model.spec.name}` leaves {len(left)} latents to infer "
                            f"({', '.join(f'`{s.name}`' for s in left)}); the energy is drawn over one",
                            hint=f"pick it with --over NAME, e.g. --over {left[0].name}; the others are held at "
                                 "their part of the sample's minimiser z*")
        dims = _dims(args.dims) if args.dims else None
        land = latent_landscape(model, batch, args.over, sample=args.sample, dims=dims,
                                lim=tuple(args.lim) if args.lim else None)
        title = f"{model.spec.name}: E over {', '.join(land.labels)} (sample {args.sample})"
    try:
        png = plot(land, args.output, title)
    except OSError as e:
        raise SpecError(f"cannot write `{args.output}`: {e.strerror or e}", hint="check the folder and its permissions") from None
    out(f"minimum {float(land.energy.min()):.4g} at {_coords(land.best)}; maximum {float(land.energy.max()):.4g}")
    if land.z_star is not None and land.kind != "discrete":  # the grid's lowest point need not be z*
        out(f"z* (the minimiser) at {_coords(land.z_star)}: E(z*) = {land.e_star:.4g}")
    for name, v in land.held.items():
        out(f"`{name}` held at its z* ({_coords(v)})")
    out(f"wrote {png}")
    return 0


def _coords(v: list[float]) -> str:
    return ", ".join(f"{b:.3g}" for b in v)


def _line_inputs(model) -> list[str]:
    """Observed float inputs of the energy: the ones a straight line between two samples makes sense for."""
    g = model.graph
    return [n for n in model.input_names("energy") if g.nodes.get(n) is not None and g.nodes[n].op == "input"
            and getattr(g.nodes[n].decl, "dtype", "float") == "float"]


def _dims(text: str) -> tuple[int, ...]:
    """``--dims 0,1`` -> (0, 1); anything else is a located-style error, not a traceback."""
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise SpecError(f"`--dims {text}` is not a list of coordinates", hint="e.g. --dims 0 or --dims 0,1") from None


def _kv(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise SpecError(f"`--with {text}` is not KEY=VALUE", hint="e.g. --with paired=true")
    return key, value


def _batch(model, args, params: dict) -> tuple[dict[str, torch.Tensor], str]:
    from ..inference.latents import latent_spaces  # torch
    source = args.data or (model.spec.train.data.source if model.spec.train and model.spec.train.data else None)
    if source is None:  # random observations; latents are left out, so they are minimised over
        latents = {s.arg for s in latent_spaces(model).values()}
        batch = {k: v for k, v in model.example_inputs(8, name="energy").items() if k not in latents}
        return batch, "random example inputs (no data source in the spec)"
    from ..data import make_source, spec_inputs  # only with a data source
    if model.spec.train and model.spec.train.data and model.spec.train.data.source == source:
        params = {**model.spec.train.data.params, **params}
    src = make_source(source, params, spec_inputs(model), args.seed)
    data = model.spec.train.data if model.spec.train and model.spec.train.data else None
    rename = data.rename if data is not None and data.source == source else {}  # as training feeds the spec
    batch = {rename.get(k, k): v for k, v in src.batch(0, 8).items()}
    return batch, f"8 samples of `{source}`" + (f" with {params}" if params else "")
