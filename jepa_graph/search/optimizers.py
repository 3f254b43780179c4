"""The searches behind :func:`jepa_graph.minimize_energy`, each over a batch of B samples at once.

Every search lays its candidates out as rows ``c * B + b`` (candidate ``c`` of sample ``b``), runs
them all through each :class:`~jepa_graph.latents.EnergyFn` call, and keeps, per sample, the
lowest energy among the points it offers (L-BFGS: each row's last iterate; the others: every
point evaluated) and where:

=========== ===================================================================================
descend     discrete latents enumerated (every combination of values), continuous ones moved by
            Adam or L-BFGS from ``restarts`` starting points, projected onto their box each step;
            every row on its own (L-BFGS keeps a curvature history and line search per row)
cem         cross-entropy method: Gaussian (continuous) and categorical (discrete) proposals
            refitted to the ``elites`` best of ``samples`` candidates, ``steps`` times
sample      ``samples`` random candidates from the prior (the start point among them)
=========== ===================================================================================

Enumeration is ``descend`` with no continuous latent: all K values in one batched pass.
"""
from __future__ import annotations

import logging
import math

import torch

from ..inference.latents import EnergyFn, LatentSpace

log = logging.getLogger(__name__)
Z = dict[str, torch.Tensor]  # latent placeholder name -> tensor, rows c * B + b


class Best:
    """Per-sample running minimum over candidate rows laid out ``c * B + b``."""

    def __init__(self, B: int, device):
        self.B, self.e, self.z = B, torch.full((B,), math.inf, device=device), None

    def update(self, e: torch.Tensor, zs: Z) -> None:
        """``e`` (C * B,) energies of candidates ``zs`` (C * B, ...)."""
        e = e.detach().view(-1, self.B)  # (C, B)
        val, c = e.min(0)  # best candidate of this call, per sample
        rows = c * self.B + torch.arange(self.B, device=e.device)
        better = val < self.e
        if self.z is None:
            self.z = {k: v.detach()[rows].clone() for k, v in zs.items()}
        else:
            for k, v in zs.items():
                m = better.view(-1, *([1] * (v.dim() - 1)))
                self.z[k] = torch.where(m, v.detach()[rows], self.z[k])
        self.e = torch.where(better, val, self.e)


def combinations(spaces: list[LatentSpace], device) -> tuple[int, Z]:
    """Every joint value of the discrete latents: (M, one-hot per latent), M = prod K."""
    disc = [s for s in spaces if s.discrete]
    if not disc:
        return 1, {}
    grids = torch.meshgrid(*[torch.arange(s.k, device=device) for s in disc], indexing="ij")
    return grids[0].numel(), {s.arg: s.one_hot(gr.flatten()) for s, gr in zip(disc, grids)}


def _tile(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(n, ...) -> (before * n * after, ...): each row repeated ``after`` times, the block ``before`` times."""
    return t.repeat_interleave(after, 0).repeat(before, *([1] * (t.dim() - 1)))


def descend(fn: EnergyFn, spaces: list[LatentSpace], init: Z, B: int, *, steps: int, lr: float,
            optimizer: str = "adam", restarts: int = 1, generator=None, device=None) -> Best:
    """Enumerate discrete latents; minimise continuous ones by projected Adam or per-row L-BFGS.

    ``steps`` counts outer iterations; each row's result is independent of the other rows. Adam
    costs one energy-and-gradient evaluation of all rows per step, and one energy evaluation at
    the end; every point it visits may become z*. L-BFGS (:func:`_lbfgs`) costs one evaluation at
    the start, then per step one for each trial step of its line search (one when every row takes
    its first trial; more, each shortening the step, until the step no longer moves the row), and
    stops early once every row has converged; z* is each row's last iterate.
    """
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    cont = [s for s in spaces if not s.discrete]
    M, disc = combinations(spaces, device)
    R = restarts if cont else 1
    fixed = {k: _tile(v, 1, R * B) for k, v in disc.items()}  # (M * R * B, K)
    starts = {}
    for s in cont:  # restart 0 from init, the others from the prior
        z0 = [init[s.arg]] + [s.sample(B, device, generator) for _ in range(R - 1)]
        starts[s.arg] = torch.cat(z0).repeat(M, *([1] * len(s.shape)))  # (M * R * B, ...)
    best = Best(B, device)
    if not cont:
        fn.step = 0
        best.update(fn(fixed), fixed)
        return best

    def record(e: torch.Tensor, zs: Z) -> None:
        # a guard: only points inside their box may become z* (both optimisers project first)
        best.update(torch.where(_inside(zs, cont), e.detach(), math.inf), {**fixed, **zs})

    with torch.enable_grad():  # z needs gradients even when the caller runs under no_grad
        if optimizer == "adam":  # every point visited may be z*: Adam does not descend monotonically
            params = {k: v.detach().clone().requires_grad_(True) for k, v in starts.items()}
            opt = torch.optim.Adam(list(params.values()), lr=lr)
            for i in range(steps):
                fn.step = i
                e = fn({**fixed, **params})
                record(e, params)
                grads = torch.autograd.grad(e.sum(), list(params.values()))  # weights get no .grad
                for p, gr in zip(params.values(), grads):
                    p.grad = gr
                opt.step()
                _project(params, cont)
            fn.step = steps
            with torch.no_grad():
                record(fn({**fixed, **params}), params)
        else:  # the last iterate: the lowest point the row accepted, the most converged of equals
            flat = _Flat(cont, starts)
            x, f = _lbfgs(fn, lambda x, trial=False: fn({**fixed, **flat.unpack(x)}, trial), flat, steps=steps, lr=lr)
            record(f, flat.unpack(x))
    return best


class _Flat:
    """The continuous latents of every row as one (rows, d) matrix ``x``, with the box ``lo``, ``hi`` (d,)."""

    def __init__(self, spaces: list[LatentSpace], starts: Z):
        self.spaces, self.sizes = spaces, [math.prod(s.shape) for s in spaces]
        self.x = torch.cat([starts[s.arg].detach().flatten(1) for s in spaces], 1)
        self.lo = torch.cat([torch.full((n,), s.lo) for s, n in zip(spaces, self.sizes)]).to(self.x)
        self.hi = torch.cat([torch.full((n,), s.hi) for s, n in zip(spaces, self.sizes)]).to(self.x)

    def unpack(self, x: torch.Tensor) -> Z:
        return {s.arg: c.reshape(-1, *s.shape) for s, c in zip(self.spaces, x.split(self.sizes, 1))}


# L-BFGS: pairs kept per row, line-search trials per step before each further one shrinks the step
# tenfold, Armijo's c1, the rounding allowance of the approximate Wolfe test (relative to |f|), the
# smallest curvature s'y kept, a vanished gradient, a step too small to move x (relative to |x| + 1)
_HISTORY, _LS_TRIES, _C1, _F_EPS, _CURV_EPS, _GRAD_TOL, _STEP_TOL = 10, 10, 1e-4, 1e-6, 1e-10, 1e-7, 1e-7
_LS_MAX = 100  # a bound only: the step reaches _STEP_TOL from any float32 length well within it


def _lbfgs(fn: EnergyFn, energy, flat: _Flat, *, steps: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected L-BFGS from ``flat.x``, every row (candidate) on its own, all rows batched.

    Each row has its own last ``_HISTORY`` (s, y) pairs (tensors (m, rows, d); a pair with
    s'y <= ``_CURV_EPS`` is skipped), its own two-loop recursion and scaling gamma = s'y / y'y,
    and its own backtracking line search: every trial evaluates all rows at once, each row taking
    its own first step with sufficient decrease (Armijo, or Hager-Zhang's approximate Wolfe where
    rounding hides the decrease near a minimum) and the others shrinking theirs by quadratic
    interpolation (tenfold after a non-finite trial energy, which only rejects the trial, and
    after ``_LS_TRIES`` trials), until the step no longer moves the row (``_STEP_TOL``), so even a
    huge ``lr`` backtracks to a useful step. The first trial step is ``lr`` (with no history,
    along -g, one that moves the row at most ``lr`` in L1 norm). Coordinates a bound holds against
    their gradient stay put for the step and trial points are projected onto the box, so every
    point is feasible. A row whose search fails forgets its history and next tries steepest
    descent; one whose steepest descent fails, or whose gradient vanishes, is done (stops moving);
    a warning is logged for rows that stop at their start point with a gradient left. ``energy``
    maps (rows, d) (and ``trial=True`` for line-search points) to (rows,).

    Returns each row's last iterate (rows, d) and its energy (rows,)."""
    lo, hi, x = flat.lo, flat.hi, flat.x
    N, d = x.shape
    S, Y, rho = x.new_zeros(_HISTORY, N, d), x.new_zeros(_HISTORY, N, d), x.new_zeros(_HISTORY, N)
    gamma = x.new_ones(N)

    def f_and_grad(x: torch.Tensor, trial: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        e = energy(x, trial=trial)
        return e.detach(), torch.autograd.grad(e.sum(), x)[0]  # (N,), (N, d); weights get no .grad

    fn.step = 0
    f, g = f_and_grad(x)
    done = ~(torch.isfinite(f) & torch.isfinite(g).all(1))  # (N,) rows that no longer move
    moved = torch.zeros_like(done)
    for i in range(steps):
        fn.step = i
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))  # (N, d) not held by the box
        gf = g * free
        done |= gf.abs().amax(1) <= _GRAD_TOL
        if done.all():
            break
        p = -_two_loop(gf, S, Y, rho, gamma) * free
        dg = (gf * p).sum(1)  # f'(0) along p
        fresh = ~(dg < 0) | (rho == 0).all(0)  # no history, or its direction does not go down
        rho[:, fresh] = 0.0
        p = torch.where(fresh[:, None], -gf, p)
        dg = torch.where(fresh, -(gf * gf).sum(1), dg)
        t = torch.where(fresh, lr * (1.0 / gf.abs().sum(1)).clamp(max=1.0), torch.full_like(f, lr))
        tiny = _STEP_TOL * (x.abs().amax(1) + 1) / p.abs().amax(1).clamp(min=1e-30)  # (N,) no move below
        pending = ~done
        xn, fn_, gn = x, f, g  # each row's accepted point; the current one until it accepts
        for k in range(_LS_MAX):
            xt = torch.where(pending[:, None], (x + t[:, None] * p).clamp(lo, hi), xn)
            e, gt = f_and_grad(xt, trial=True)
            drop, slope = (g * (xt - x)).sum(1), (gt * (xt - x)).sum(1)  # t f'(0), t f'(t) along the step
            armijo = e <= f + _C1 * drop
            wolfe = (e <= f + _F_EPS * f.abs()) & (slope >= 0.9 * drop) & (slope <= -0.8 * drop)
            ok = pending & (drop < 0) & torch.isfinite(e) & (armijo | wolfe)
            xn, fn_, gn = torch.where(ok[:, None], xt, xn), torch.where(ok, e, fn_), torch.where(ok[:, None], gt, gn)
            pending &= ~ok
            t = torch.where(pending, _backtrack(t, f, e, dg) if k + 1 < _LS_TRIES else 0.1 * t, t)
            if not (pending & (t > tiny)).any():  # every row accepted, or its step no longer moves it
                break
        moved |= ~pending & ~done
        s, y = xn - x, gn - g
        sy = (s * y).sum(1)
        keep = ~done & ~pending & (sy > _CURV_EPS)  # moved, with positive curvature along the step
        if keep.any():  # the newest pair goes last; a row that keeps none keeps its history as it was
            S = torch.where(keep[None, :, None], torch.cat([S[1:], s[None]]), S)
            Y = torch.where(keep[None, :, None], torch.cat([Y[1:], y[None]]), Y)
            rho = torch.where(keep[None], torch.cat([rho[1:], (1.0 / sy)[None]]), rho)
            gamma = torch.where(keep, sy / (y * y).sum(1), gamma)
        done |= pending & fresh  # not even steepest descent goes lower: a minimum, to precision
        rho[:, pending] = 0.0
        x, f, g = xn, fn_, gn
        done |= ~(torch.isfinite(f) & torch.isfinite(g).all(1))
    gf = g * ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))  # the gradient a step could follow
    stuck = ~moved & (gf.abs().amax(1) > 1e-4 * (f.abs() + 1)) & torch.isfinite(f)  # not a minimum to rounding
    if steps > 0 and stuck.any():
        log.warning("%s: L-BFGS left %d of %d row(s) at their start point: no step along the gradient "
                    "(largest |dE/dz| %.3g) lowered the energy; it may be non-smooth or overflow nearby, "
                    "or `lr` (%g) be far off: try optimizer=\"adam\"", fn.what, int(stuck.sum()), N,
                    float(gf[stuck].abs().max()), lr)
    return x, f


def _two_loop(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, rho: torch.Tensor,
              gamma: torch.Tensor) -> torch.Tensor:
    """H g (N, d) per row, H the L-BFGS inverse Hessian of pairs ``S``, ``Y`` (m, N, d) with
    ``rho`` = 1 / s'y (m, N), newest last, and H0 = gamma I (N,). A slot with rho = 0 is empty."""
    q, alpha = g.clone(), [None] * len(S)
    for j in reversed(range(len(S))):
        alpha[j] = rho[j] * (S[j] * q).sum(1)
        q -= alpha[j][:, None] * Y[j]
    r = gamma[:, None] * q
    for j in range(len(S)):
        r += S[j] * (alpha[j] - rho[j] * (Y[j] * r).sum(1))[:, None]
    return r


def _backtrack(t: torch.Tensor, f0: torch.Tensor, ft: torch.Tensor, dg: torch.Tensor) -> torch.Tensor:
    """The next trial step per row: the minimum of the quadratic through f(0) = f0, f'(0) = dg and
    f(t) = ft, kept within [0.1 t, 0.5 t] (0.1 t when ft is not finite)."""
    curv = ft - f0 - dg * t
    tq = torch.where(torch.isfinite(curv) & (curv > 0), -dg * t * t / (2 * curv), 0.1 * t)
    return torch.minimum(torch.maximum(tq, 0.1 * t), 0.5 * t)


def _inside(params: Z, spaces: list[LatentSpace]) -> torch.Tensor:
    """(rows,) True where every box latent of the row lies in its box."""
    first = next(iter(params.values()))
    ok = torch.ones(first.shape[0], dtype=torch.bool, device=first.device)
    with torch.no_grad():
        for s in spaces:
            if s.kind == "box":
                z = params[s.arg].flatten(1)
                ok &= ((z >= s.lo) & (z <= s.hi)).all(1)
    return ok


def _project(params: Z, spaces: list[LatentSpace]) -> None:
    with torch.no_grad():
        for s in spaces:
            if s.kind == "box":
                params[s.arg].clamp_(s.lo, s.hi)


def cem(fn: EnergyFn, spaces: list[LatentSpace], init: Z, B: int, *, steps: int, samples: int, elites: int,
        probs: Z | None = None, generator=None, device=None) -> Best:
    """Cross-entropy method; the first candidate of the first round is ``init`` itself."""
    if not 1 <= elites <= samples:
        raise ValueError(f"cem needs 1 <= elites <= samples, got elites={elites}, samples={samples}")
    mean = {s.arg: init[s.arg] for s in spaces if not s.discrete}  # (B, ...)
    std = {s.arg: torch.full_like(init[s.arg], s.prior_std()) for s in spaces if not s.discrete}
    prob = {s.arg: (probs or {}).get(s.arg, torch.full((B, s.k), 1.0 / s.k, device=device))
            for s in spaces if s.discrete}  # (B, K)
    best = Best(B, device)
    for i in range(steps):
        fn.step = i
        zs = {}
        for s in spaces:
            if s.discrete:
                idx = torch.multinomial(prob[s.arg], samples, replacement=True, generator=generator)  # (B, P)
                if i == 0:
                    idx[:, 0] = prob[s.arg].argmax(1)
                zs[s.arg] = s.one_hot(idx.T.flatten())  # (P * B, K)
            else:
                noise = torch.randn(samples, *mean[s.arg].shape, device=device, generator=generator)
                if i == 0:
                    noise[0] = 0.0
                zs[s.arg] = s.project(mean[s.arg] + std[s.arg] * noise).flatten(0, 1)  # (P * B, ...)
        e = fn(zs)
        best.update(e, zs)
        top = (-e.view(samples, B)).topk(elites, dim=0).indices  # (elites, B)
        for s in spaces:
            z = zs[s.arg].view(samples, B, *zs[s.arg].shape[1:])
            el = z.gather(0, top.view(elites, B, *([1] * (z.dim() - 2))).expand(elites, *z.shape[1:]))
            if s.discrete:  # refit the categorical, keeping some mass on every value
                prob[s.arg] = 0.9 * el.mean(0) + 0.1 * prob[s.arg]
            else:
                mean[s.arg], std[s.arg] = el.mean(0), el.std(0, unbiased=False) + 1e-4
    return best


def sample(fn: EnergyFn, spaces: list[LatentSpace], init: Z, B: int, *, samples: int, generator=None,
           device=None) -> Best:
    """Random search: ``init`` plus ``samples - 1`` prior draws per sample, best kept."""
    zs = {s.arg: torch.cat([init[s.arg]] + [s.sample((samples - 1) * B, device, generator)])
          for s in spaces}
    fn.step = 0
    best = Best(B, device)
    best.update(fn(zs), zs)
    return best
