"""``jepa-graph plot RUN``: a run's loss terms and collapse monitors over steps, as one PNG.

Panels: the loss and each objective term (log scale unless a term goes negative), the learning
rate, the EMA momenta, the wall-leak probe's shares (``leak.*``, ``stall.*``: fractions, on a
linear 0-1 scale of their own, so they do not squash the losses' log scale; its count of moves
scored, ``leak.blocked``, is not drawn), and per monitored representation the mean per-dimension
std and the effective rank (the collapse monitors).
"""
from __future__ import annotations

from pathlib import Path

from ..core.errors import SpecError
from .metrics import read_metrics

_SKIP = ("step", "steps_per_s", "lr", "leak.blocked")  # not a loss term; leak.blocked a count, not a share
_SHARES = ("leak.", "stall.")  # fractions in [0, 1] (training/metrics.py's wall_leaks)
_LEAKS = "wall-leak probe: shares of blocked moves leaked, of free moves stalled"


def plot_run(run: str | Path, output: str | Path | None = None) -> Path:
    """Draw ``run``'s metrics.jsonl to ``output`` (default ``<run>/metrics.png``)."""
    try:
        # matplotlib: only to draw (an optional extra, and slow to import)
        import matplotlib
        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt  # after use("Agg"): the backend is chosen first
    except ImportError:
        raise SpecError("plotting needs matplotlib", hint="pip install 'jepa-graph[plot]'") from None
    run = Path(run)
    metrics = run / "metrics.jsonl" if run.is_dir() else run
    if not metrics.is_file():
        raise SpecError(f"no metrics at {metrics}", hint="give a run folder written by `jepa-graph train`")
    rows = read_metrics(metrics)
    if not rows:
        raise SpecError(f"{metrics} holds no records yet",
                        hint="`jepa-graph train` writes one every `train.log_every` steps: wait for the "
                             "first, or check that the run got that far")
    panels = panels_of(list(dict.fromkeys(k for r in rows for k in r)))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, ks) in zip(axes[:, 0], panels):
        lo = hi = 0.0
        for k in ks:
            pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
            if pts:
                xs, ys = zip(*pts)
                lo, hi = min(lo, min(ys)), max(hi, max(ys))
                ax.plot(xs, ys, label=k, lw=1.2)
        if title == "loss terms" and lo >= 0 and hi > 0:
            ax.set_yscale("log", nonpositive="mask")  # terms of very different sizes; exact zeros drop out
        if title == _LEAKS:
            ax.set_ylim(-0.02, 1.02)  # shares: the whole range, so runs and steps compare at a glance
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"{metrics.parent.name}", fontsize=11)
    fig.tight_layout()
    out = Path(output) if output else metrics.parent / "metrics.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def panels_of(keys: list[str]) -> list[tuple[str, list[str]]]:
    """The panels for metric ``keys``, in order: ``(title, keys drawn in it)``, empty ones left out."""
    losses = [k for k in keys if k not in _SKIP and not k.startswith(("ema.", "collapse.", *_SHARES))]
    lrs = [k for k in keys if k == "lr"]
    ema = [k for k in keys if k.startswith("ema.")]
    shares = [k for k in keys if k not in _SKIP and k.startswith(_SHARES)]
    stds = [k for k in keys if k.startswith("collapse.") and k.endswith(".std")]
    ranks = [k for k in keys if k.startswith("collapse.") and k.endswith(".erank")]
    panels = [("loss terms", losses), ("learning rate", lrs), ("EMA momentum", ema), (_LEAKS, shares),
              ("std per dim (mean): near 0 = collapse", stds), ("effective rank: near 1 = collapse", ranks)]
    return [p for p in panels if p[1]]
