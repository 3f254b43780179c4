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

``jepa-graph energy SPEC --checkpoint C`` (:mod:`jepa_graph.cli.energy`) draws the same from the command line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.errors import SpecError
from .latents import EnergyFn, latent_spaces, resolve
from .minimize import minimize_energy


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
    check_sample(given, sample)
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
    if input not in model.input_names("energy"):
        raise SpecError(f"`{input}` is not an input of the energy of `{model.spec.name}`",
                        hint="inputs: " + ", ".join(model.input_names("energy")))
    check_sample(batch, sample)
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
        # matplotlib: only to draw (an optional extra, and slow to import)
        import matplotlib
        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt  # after use("Agg"): the backend is chosen first
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


def check_sample(batch: dict[str, torch.Tensor], i: int, what: str = "sample") -> None:
    """Refuse a sample index outside the batch (a negative or too large index would otherwise
    slice out an empty batch and fail deep inside the search)."""
    n = next((v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor)), None)
    if n is not None and not 0 <= i < n:
        raise SpecError(f"{what} {i} is not in the batch of {n} samples", hint=f"use 0 to {n - 1}")
