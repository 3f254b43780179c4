"""Energy landscapes: E(x, y, z) over a latent, or F(x, y) along a line of targets, as PNG plots.

Three views of one sample of a batch:

* ``latent``: E over the values of a discrete latent (bars), over one coordinate of a continuous
  latent (a curve) or two (a heat map); the other coordinates sit at the minimiser z*. Other
  latents the batch leaves out are held at their part of the joint z* of the plotted sample (one
  :func:`~jepa_graph.minimize_energy` over all of them), so the plot is a slice through z*. The
  grid's lowest point is the landscape's minimum; z* is marked beside it with E(z*) (a local
  search can stop above the grid's minimum, and a grid misses a minimum between its points).
* ``along``: F(x, y(t)) = min_z E(x, y(t), z) for y(t) = (1 - t) a + t b, t in [-0.25, 1.25]:
  two wells for a latent model at a fork, one well at the average for a model without z.

Example::

    plot_latent_landscape(model, batch, "z.png")
    plot_energy_along(model, batch, "y", a, b, "fork.png")

``jepa-graph energy SPEC --checkpoint C`` draws the same from the command line.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.errors import SpecError
from .latents import EnergyFn, latent_spaces, resolve


@dataclass
class Landscape:
    """Energies on a grid: ``axes`` (1 or 2 tensors of grid values), ``energy`` (grid shaped)."""

    axes: list[torch.Tensor]
    energy: torch.Tensor
    labels: list[str]
    kind: str  # "discrete" | "curve" | "map" | "along"
    best: list[float]  # where the grid's minimum ``energy.min()`` is, one number per axis
    z_star: list[float] | None = None  # where the minimiser's z* is on the axes (latent views)
    e_star: float | None = None  # E(x, y, z*)
    held: dict[str, list[float]] = field(default_factory=dict)  # other latents, held at their z*


@torch.no_grad()
def latent_landscape(model, batch: dict[str, torch.Tensor], over: str | None = None, *, sample: int = 0,
                     dims: tuple[int, ...] | None = None, lim: tuple[float, float] | None = None,
                     resolution: int = 101) -> Landscape:
    """E(x, y, z) of sample ``sample`` over latent ``over``, everything in one batched call.

    ``over`` may be left out when one latent is left to infer. Other latents not in ``batch``
    are held at their part of the joint minimiser z* of the sample (listed in ``held``)."""
    from .minimize import minimize_energy
    if over is None:
        spaces, given = resolve(model, batch, None)
        if len(spaces) != 1:
            raise SpecError(f"a landscape is drawn over one latent; `{model.spec.name}` leaves "
                            f"{', '.join(f'`{s.name}`' for s in spaces)} to infer",
                            hint=f"pick one with `over=`, e.g. over=\"{spaces[0].name}\" (the others are held at "
                                 "their z*), or give the others in the batch")
    else:
        spaces, given = resolve(model, batch, over, rest=True)
    s, others = spaces[0], spaces[1:]
    _check_sample(given, sample)
    one = {k: v[sample:sample + 1] for k, v in given.items()}
    held, z_star = {}, None
    if others or not s.discrete:  # the joint z* of this sample: the others are held there
        rows = {k: v[sample:sample + 1] for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim()}
        zs, _ = minimize_energy(model, {**rows, **one}, over=[o.name for o in spaces])
        z_star = zs[s.name]
        one.update({o.arg: zs[o.name] for o in others})
        held = {o.name: [float(v) for v in zs[o.name].flatten()] for o in others}
    plain = EnergyFn(model, one, [s], f"the landscape of `{s.name}`", hoist=True)
    held_r = sum(float(o.penalty(one[o.arg], o.extra_regs)) for o in others)  # R of the held: a constant

    def fn(zs):  # E + R over the plotted latent, the value the joint search minimised
        return plain(zs) + held_r

    if s.discrete:
        e = fn({s.arg: s.one_hot(torch.arange(s.k, device=_device(one)))}).cpu()
        i = int(e.argmin())
        return Landscape([torch.arange(s.k)], e, [f"{s.name} (value)"], "discrete", [float(i)],
                         [float(z_star.argmax())] if z_star is not None else [float(i)],
                         float(e[int(z_star.argmax())]) if z_star is not None else float(e[i]), held)
    flat = z_star.flatten(1)[0]  # (n,) the minimiser; unvaried coordinates stay here
    dims = tuple(dims) if dims is not None else tuple(range(min(2, flat.numel())))
    if not 1 <= len(dims) <= 2 or any(not 0 <= d < flat.numel() for d in dims) or len(set(dims)) != len(dims):
        raise SpecError(f"`dims` picks 1 or 2 of the {flat.numel()} coordinates of `{s.name}` (all different), "
                        f"got {list(dims)}",
                        hint=f"coordinates are numbered 0 to {flat.numel() - 1}")
    lo, hi = lim or ((s.lo, s.hi) if s.kind == "box" else (-3.0, 3.0))
    if not lo < hi:
        raise SpecError(f"the latent range must have LO < HI, got {lo:g} {hi:g}", hint="e.g. --lim -3 3")
    n = resolution if len(dims) == 1 else max(2, int(resolution ** 0.5 * 6))
    ax = torch.linspace(lo, hi, n, device=flat.device)
    grids = torch.meshgrid(*([ax] * len(dims)), indexing="ij")
    z = flat.expand(grids[0].numel(), -1).clone()
    for d, gr in zip(dims, grids):
        z[:, d] = gr.flatten()
    e = fn({s.arg: z.view(-1, *s.shape)}).view(grids[0].shape).cpu()
    e_star = float(fn({s.arg: z_star})[0])
    at = torch.unravel_index(e.argmin(), e.shape)  # the grid's minimum, per axis
    return Landscape([ax.cpu()] * len(dims), e, [f"{s.name}[{d}]" for d in dims], "curve" if len(dims) == 1 else "map",
                     [float(ax[int(i)]) for i in at], [float(flat[d]) for d in dims], e_star, held)


@torch.no_grad()
def energy_along(model, batch: dict[str, torch.Tensor], input: str, a: torch.Tensor, b: torch.Tensor, *,
                 sample: int = 0, n: int = 121, extend: float = 0.25, **kw) -> Landscape:
    """F(x, y(t)) for y(t) = (1 - t) a + t b, t in [-extend, 1 + extend]; ``a``, ``b`` one sample
    of ``input`` (no batch dim). Latents not in ``batch`` are minimised (``kw`` to minimize_energy)."""
    from .minimize import minimize_energy
    if input not in model.input_names("energy"):
        raise SpecError(f"`{input}` is not an input of the energy of `{model.spec.name}`",
                        hint="inputs: " + ", ".join(model.input_names("energy")))
    _check_sample(batch, sample)
    t = torch.linspace(-extend, 1 + extend, n, device=a.device)
    line = (1 - t).view(-1, *([1] * a.dim())) * a + t.view(-1, *([1] * a.dim())) * b  # (n, ...)
    rows = {k: v[sample:sample + 1].expand(n, *v.shape[1:]) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    rows[input] = line
    names = model.input_names("energy")
    if not any(s.arg in names and s.name not in rows for s in latent_spaces(model).values()):
        missing = [m for m in names if m not in rows]
        if missing:
            raise SpecError(f"the energy needs {', '.join(f'`{m}`' for m in missing)} in the batch")
        e = EnergyFn(model, {k: rows[k] for k in names}, [], f"the energy along `{input}`")({})
    else:
        _, e = minimize_energy(model, rows, **kw)
    return Landscape([t.cpu()], e.cpu(), [f"t: {input} = (1 - t) a + t b"], "along", [float(t[e.argmin()])])


def plot(land: Landscape, path: str | Path, title: str = "") -> Path:
    """Write ``land`` to a PNG (matplotlib, Agg backend). Returns the path."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("plotting needs matplotlib", hint="pip install 'jepa-graph[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 4.5) if land.kind == "map" else (6, 3.6))
    if land.kind == "discrete":  # enumerated: the lowest bar is the exact minimum over the values
        ax.bar(land.axes[0].numpy(), land.energy.numpy(), color="#c44")
        ax.set_xticks(land.axes[0].numpy())
        ax.set_ylabel("E(x, y, z)")
    elif land.kind == "map":
        x, y = land.axes
        im = ax.pcolormesh(x.numpy(), y.numpy(), land.energy.T.numpy(), shading="auto", cmap="viridis")
        fig.colorbar(im, ax=ax, label="E(x, y, z)")
        ax.plot(*land.best, "wo", mfc="none", markersize=10, label=f"grid min {float(land.energy.min()):.3g}")
        if land.z_star is not None:
            ax.plot(*land.z_star, "w*", markersize=12, label=f"z*, E(z*) = {land.e_star:.3g}")
        ax.set_ylabel(land.labels[1])
        ax.legend(loc="upper right")
    else:
        ax.plot(land.axes[0].numpy(), land.energy.numpy(), color="#c44")
        low = f"min {float(land.energy.min()):.3g} at {land.best[0]:.3g}"  # the grid's
        ax.axvline(land.best[0], color="gray", ls=":", label=low)
        if land.kind == "curve" and land.z_star is not None:
            ax.plot(land.z_star[0], land.e_star, "k*", markersize=11, label=f"z*, E(z*) = {land.e_star:.3g}")
        if land.kind == "along":
            for t, name in ((0.0, "a"), (1.0, "b")):
                ax.axvline(t, color="k", lw=0.6)
                ax.annotate(f" {name}", (t, 0.97), xycoords=("data", "axes fraction"), ha="left", va="top")
        ax.set_ylabel("F(x, y)" if land.kind == "along" else "E(x, y, z)")
        ax.legend(loc="best")
    ax.set_xlabel(land.labels[0])
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latent_landscape(model, batch, path, over=None, title: str = "", **kw) -> Path:
    """:func:`latent_landscape` drawn to ``path`` (PNG)."""
    return plot(latent_landscape(model, batch, over, **kw), path, title or f"{model.spec.name}: energy over the latent")


def plot_energy_along(model, batch, input: str, a, b, path, title: str = "", **kw) -> Path:
    """:func:`energy_along` drawn to ``path`` (PNG)."""
    return plot(energy_along(model, batch, input, a, b, **kw), path, title or f"{model.spec.name}: F along `{input}`")


def _device(t: dict[str, torch.Tensor]) -> torch.device:
    return next(iter(t.values())).device if t else torch.device("cpu")


# ---------------------------------------------------------------------------------- the CLI
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
    p.add_argument("--path", action="append", default=None, metavar="DIR", help="extra composite folder")


def run(args) -> int:
    import yaml
    from ..compiler.model import compile
    torch.manual_seed(args.seed)
    model = compile(args.spec, args.path)
    model.eval()
    if args.checkpoint:
        from ..training.checkpoint import load_checkpoint
        info = load_checkpoint(args.checkpoint, model, restore_rng=False)
        _say(f"weights: {args.checkpoint} (step {info.get('step', '?')})")
    else:
        _say("weights: random initial weights (no --checkpoint given)")
    params = {}
    for w in args.with_:
        key, value = _kv(w)
        try:
            params[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise SpecError(f"`--with {w}`: the value is not valid YAML", hint="e.g. --with paired=true") from None
    batch, what = _batch(model, args, params)
    _say(f"data: {what}")
    if not args.along and not latent_spaces(model):
        raise SpecError(f"`{model.spec.name}` has no latent to draw the energy over",
                        hint="plot F along a line of targets instead: "
                             + " or ".join(f"--along {n}" for n in _line_inputs(model)))
    if args.along:
        i, j = args.between
        if args.along not in batch:
            raise SpecError(f"`{args.along}` is not in the batch", hint="inputs: " + ", ".join(batch))
        for k in (i, j):
            _check_sample(batch, k, "--between")
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
        out = plot(land, args.output, title)
    except OSError as e:
        raise SpecError(f"cannot write `{args.output}`: {e.strerror or e}", hint="check the folder and its permissions") from None
    _say(f"minimum {float(land.energy.min()):.4g} at {_coords(land.best)}; maximum {float(land.energy.max()):.4g}")
    if land.z_star is not None and land.kind != "discrete":  # the grid's lowest point need not be z*
        _say(f"z* (the minimiser) at {_coords(land.z_star)}: E(z*) = {land.e_star:.4g}")
    for name, v in land.held.items():
        _say(f"`{name}` held at its z* ({_coords(v)})")
    _say(f"wrote {out}")
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


def _check_sample(batch: dict[str, torch.Tensor], i: int, what: str = "sample") -> None:
    """Refuse a sample index outside the batch (a negative or too large index would otherwise
    slice out an empty batch and fail deep inside the search)."""
    n = next((v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor)), None)
    if n is not None and not 0 <= i < n:
        raise SpecError(f"{what} {i} is not in the batch of {n} samples", hint=f"use 0 to {n - 1}")


def _kv(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise SpecError(f"`--with {text}` is not KEY=VALUE", hint="e.g. --with paired=true")
    return key, value


def _batch(model, args, params: dict) -> tuple[dict[str, torch.Tensor], str]:
    source = args.data or (model.spec.train.data.source if model.spec.train and model.spec.train.data else None)
    if source is None:  # random observations; latents are left out, so they are minimised over
        latents = {s.arg for s in latent_spaces(model).values()}
        batch = {k: v for k, v in model.example_inputs(8, name="energy").items() if k not in latents}
        return batch, "random example inputs (no data source in the spec)"
    from ..data import make_source, spec_inputs
    if model.spec.train and model.spec.train.data and model.spec.train.data.source == source:
        params = {**model.spec.train.data.params, **params}
    src = make_source(source, params, spec_inputs(model), args.seed)
    return src.batch(0, 8), f"8 samples of `{source}`" + (f" with {params}" if params else "")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
