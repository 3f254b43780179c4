"""Gradient search: discrete spaces enumerated, continuous ones moved by projected Adam or L-BFGS.

:func:`descend` takes every joint value of the discrete spaces (:func:`~.spaces.combinations`)
and, for each, moves the continuous spaces from ``restarts`` starting points per problem, every
row on its own: Adam projects onto the bounds after each step; L-BFGS keeps a curvature history
and a line search per row and only ever evaluates points inside the bounds. A row stops once it
has converged (its value and its point no longer change, to ``tol_e`` and ``tol_z``) or at the
step cap; ``Best.converged`` and ``Best.steps`` say which, per problem. With no continuous space
it is enumeration: every value in one batched call.

Example (B problems, an action sequence of horizon H in a box)::

    space = {"a": Continuous((H, A), -1.0, 1.0)}
    best = descend(lambda p: cost(p["a"]), space, B, steps=100, lr=1.0, optimizer="lbfgs",
                   tol_e=1e-6, tol_z=1e-3)
    best.params["a"], best.value, best.converged     # (B, H, A), (B,), (B,) bool
"""
from __future__ import annotations

import logging
import math

import torch

from .objective import Best, Objective, Params, at_step, what
from .spaces import Continuous, Discrete, Space, combinations

log = logging.getLogger(__name__)


# a row has converged once the test held on this many steps in a row (one step may stall by chance)
WINDOW = 2


def split(spaces: dict[str, Space]) -> tuple[dict[str, Continuous], dict[str, Discrete]]:
    """The continuous and the discrete spaces of ``spaces``, by name."""
    for name, s in spaces.items():
        if not isinstance(s, (Continuous, Discrete)):
            raise TypeError(f"space `{name}` is a {type(s).__name__}; the searches take Continuous and Discrete spaces")
    return ({k: s for k, s in spaces.items() if isinstance(s, Continuous)},
            {k: s for k, s in spaces.items() if isinstance(s, Discrete)})


def starts(spaces: dict[str, Space], init: Params | None, B: int, device) -> Params:
    """The start point (B, *value_shape) of every space: ``init``'s where given, else its prior's mode."""
    init = init or {}
    return {k: init[k] if k in init else s.init(B, device) for k, s in spaces.items()}


def device_of(init: Params | None, device):
    """``device`` if given, else that of the start points, else None (the default device)."""
    return device if device is not None else next((v.device for v in (init or {}).values()), None)


def _tile(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(n, ...) -> (before * n * after, ...): each row repeated ``after`` times, the block ``before`` times."""
    return t.repeat_interleave(after, 0).repeat(before, *([1] * (t.dim() - 1)))


def descend(f: Objective, spaces: dict[str, Space], B: int, *, init: Params | None = None, steps: int, lr: float,
            optimizer: str = "adam", restarts: int = 1, trial: Objective | None = None,
            generator: torch.Generator | None = None, device=None, tol_e: float = 0.0, tol_z: float = 0.0,
            window: int = WINDOW) -> Best:
    """Enumerate the discrete spaces; minimise ``f`` over the continuous ones by projected Adam or
    per-row L-BFGS, for B problems at once, each row until it converges or ``steps`` run out.

    Args:
        f: the objective, (C * B,) values of candidates laid out ``c * B + b``.
        spaces: name -> space; ``f`` gets a tensor of each name.
        B: problems.
        init: start points (B, *value_shape) by name (continuous spaces; default each one's
            prior mode); restart 0 starts there, the other ``restarts - 1`` from prior draws:
            with ``generator``, one draw per problem; without, one draw per restart from a fixed
            seed, shared by every problem (deterministic, and independent of the batch).
        steps, lr: the cap on a row's steps and the step size (L-BFGS: its first trial step).
        optimizer: "adam" or "lbfgs".
        trial: how L-BFGS evaluates its line-search trial points (default ``f``); a non-finite
            value there only rejects the trial.
        tol_e, tol_z, window: a row has converged once, on ``window`` steps in a row, its value
            changed by at most ``tol_e * (1 + |value|)`` and no coordinate moved more than
            ``tol_z``; it then stops moving. The defaults (0) stop a row only when it no longer
            changes at all (so the row runs to the cap as it would without the test).

    Every row moves on its own, so a row's result does not depend on the other rows: the batch
    stays one tensor and a converged row is masked (it keeps its point), not removed; the loop
    ends when every row has converged or at the cap. Adam costs one value-and-gradient evaluation
    of all rows per step (and one more at the cap); every point it visits may become the best.
    L-BFGS (:func:`_lbfgs`) costs one evaluation at the start, then per step one for each trial
    step of its line search (one when every row takes its first trial); it also stops a row whose
    gradient vanishes or whose steepest descent no longer goes down; the best is each row's last
    iterate.

    Returns the :class:`~.objective.Best` per problem: ``params`` (B, *value_shape), ``value`` (B,),
    ``converged`` (B,) bool and ``steps`` (B,) long of the row that gave the best (enumeration
    alone: all converged, 0 steps).
    """
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    device = device_of(init, device)
    cont, _ = split(spaces)
    M, disc = combinations(spaces, device)
    R = restarts if cont else 1
    fixed = {k: _tile(v, 1, R * B) for k, v in disc.items()}  # (M * R * B, *value_shape)
    init = starts(cont, init, B, device)
    x0 = {}
    for k, s in cont.items():  # restart 0 from init, the others from the prior
        z0 = [init[k]] + _draws(s, R - 1, B, device, generator)
        x0[k] = torch.cat(z0).repeat(M, *([1] * len(s.shape)))  # (M * R * B, ...)
    best = Best(B, device)
    if not cont:
        at_step(f, 0)
        best.update(f(fixed), fixed)
        best.converged = torch.ones(B, dtype=torch.bool, device=best.value.device)
        best.steps = torch.zeros(B, dtype=torch.long, device=best.value.device)
        return best

    def record(e: torch.Tensor, xs: Params) -> None:
        # a guard: only points inside their bounds may be the best (both optimisers project first)
        best.update(torch.where(_inside(xs, cont), e.detach(), math.inf), {**fixed, **xs})

    stop = _Stop(tol_e, tol_z, window)
    with torch.enable_grad():  # x needs gradients even when the caller runs under no_grad
        if optimizer == "adam":  # every point visited may be the best: Adam does not descend monotonically
            converged, taken = _adam(f, fixed, cont, x0, record, stop, steps=steps, lr=lr)
        else:  # the last iterate: the lowest point the row accepted, the most converged of equals
            flat = _Flat(cont, x0)
            g = trial or f
            x, fx, converged, taken = _lbfgs(f, lambda x, trial=False: (g if trial else f)({**fixed, **flat.unpack(x)}),
                                             flat, stop, steps=steps, lr=lr)
            record(fx, flat.unpack(x))
    best.converged, best.steps = converged[best.row], taken[best.row]
    return best


class _Stop:
    """The per-row convergence test of :func:`descend`: ``update`` after each step with the
    value before and after it and how far each row moved; ``converged`` (rows,) never reverts."""

    def __init__(self, tol_e: float, tol_z: float, window: int):
        self.tol_e, self.tol_z, self.window = tol_e, tol_z, window
        self.streak: torch.Tensor | None = None
        self.converged: torch.Tensor | None = None

    def start(self, n: int, device) -> None:
        self.streak = torch.zeros(n, dtype=torch.long, device=device)
        self.converged = torch.zeros(n, dtype=torch.bool, device=device)

    def update(self, before: torch.Tensor, after: torch.Tensor, moved: torch.Tensor) -> None:
        """``before``, ``after`` (rows,) values; ``moved`` (rows,) the largest |dz| of the step."""
        meets = ((after - before).abs() <= self.tol_e * (1 + after.abs())) & (moved <= self.tol_z)
        self.streak = torch.where(meets, self.streak + 1, 0)
        self.converged |= self.streak >= self.window


# Adam's moment decays and denominator guard (torch.optim.Adam's defaults)
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def _adam(f: Objective, fixed: Params, cont: dict[str, Continuous], x0: Params, record, stop: _Stop, *,
          steps: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected Adam (torch.optim.Adam's update, per coordinate) on every row at once, a converged
    row frozen where it is; ``record`` sees every point evaluated. Returns per row whether it
    converged (rows,) bool and the steps it took (rows,) long."""
    x = {k: v.detach().clone() for k, v in x0.items()}
    m = {k: torch.zeros_like(v) for k, v in x.items()}
    v2 = {k: torch.zeros_like(v) for k, v in x.items()}
    n = next(iter(x.values())).shape[0]
    dev = next(iter(x.values())).device
    stop.start(n, dev)
    taken = torch.zeros(n, dtype=torch.long, device=dev)
    e_prev = moved = None
    for i in range(steps + 1):
        at_step(f, i)
        if i == steps:  # the cap: the last point is evaluated, not moved from
            with torch.no_grad():
                e = f({**fixed, **x})
        else:
            xs = {k: z.requires_grad_(True) for k, z in x.items()}
            e = f({**fixed, **xs})
        record(e, x)
        if e_prev is not None:
            stop.update(e_prev, e.detach(), moved)
        if i == steps or bool(stop.converged.all()):
            break
        grads = torch.autograd.grad(e.sum(), list(xs.values()))  # weights get no .grad
        live = ~stop.converged
        bc1, bc2 = 1 - _BETA1 ** (i + 1), math.sqrt(1 - _BETA2 ** (i + 1))
        moved = torch.zeros(n, device=dev)
        with torch.no_grad():
            for (k, s), g in zip(cont.items(), grads):
                keep = live.view(-1, *([1] * (g.dim() - 1)))
                m[k] = torch.where(keep, m[k].lerp(g, 1 - _BETA1), m[k])
                v2[k] = torch.where(keep, v2[k] * _BETA2 + (1 - _BETA2) * g * g, v2[k])
                z = x[k].detach()
                zn = torch.where(keep, s.project(z - (lr / bc1) * m[k] / (v2[k].sqrt() / bc2 + _EPS)), z)
                moved = torch.maximum(moved, (zn - z).abs().flatten(1).amax(1))
                x[k] = zn
        taken += live
        e_prev = e.detach()
    return stop.converged, taken


def _draws(s: Continuous, n: int, B: int, device, generator: torch.Generator | None) -> list[torch.Tensor]:
    """``n`` start points (B, *shape) from ``s``'s prior: per problem from ``generator``, else
    each one a single draw (seeded 0, on the CPU so every device starts alike) for all problems."""
    if generator is not None:
        return [s.sample(B, device, generator) for _ in range(n)]
    shared = s.sample(n, None, torch.Generator().manual_seed(0))  # (n, *shape)
    shared = shared if device is None else shared.to(device)
    return [z[None].expand(B, *s.shape) for z in shared]


class _Flat:
    """The continuous spaces of every row as one (rows, d) matrix ``x``, with the bounds ``lo``, ``hi`` (d,)."""

    def __init__(self, spaces: dict[str, Continuous], x0: Params):
        self.spaces, self.sizes = spaces, [math.prod(s.shape) for s in spaces.values()]
        self.x = torch.cat([x0[k].detach().flatten(1) for k in spaces], 1)
        lohi = [s.bounds(self.x) for s in spaces.values()]
        self.lo = torch.cat([lo.flatten() for lo, _ in lohi])
        self.hi = torch.cat([hi.flatten() for _, hi in lohi])

    def unpack(self, x: torch.Tensor) -> Params:
        return {k: c.reshape(-1, *s.shape) for (k, s), c in zip(self.spaces.items(), x.split(self.sizes, 1))}


# L-BFGS: pairs kept per row, line-search trials per step before each further one shrinks the step
# tenfold, Armijo's c1, the rounding allowance of the approximate Wolfe test (relative to |f|), the
# smallest curvature s'y kept, a vanished gradient, a step too small to move x (relative to |x| + 1)
_HISTORY, _LS_TRIES, _C1, _F_EPS, _CURV_EPS, _GRAD_TOL, _STEP_TOL = 10, 10, 1e-4, 1e-6, 1e-10, 1e-7, 1e-7
_LS_MAX = 100  # a bound only: the step reaches _STEP_TOL from any float32 length well within it


def _lbfgs(obj: Objective, value, flat: _Flat, stop: _Stop, *, steps: int,
           lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projected L-BFGS from ``flat.x``, every row (candidate) on its own, all rows batched.

    Each row has its own last ``_HISTORY`` (s, y) pairs (tensors (m, rows, d); a pair with
    s'y <= ``_CURV_EPS`` is skipped), its own two-loop recursion and scaling gamma = s'y / y'y,
    and its own backtracking line search: every trial evaluates all rows at once, each row taking
    its own first step with sufficient decrease (Armijo, or Hager-Zhang's approximate Wolfe where
    rounding hides the decrease near a minimum) and the others shrinking theirs by quadratic
    interpolation (tenfold after a non-finite trial energy, which only rejects the trial, and
    after ``_LS_TRIES`` trials), until the step no longer moves the row (``_STEP_TOL``, or a
    tenth of ``stop.tol_z``), so even a huge ``lr`` backtracks to a useful step. The first trial
    step is ``lr`` (with no history, along -g, one that moves the row at most ``lr`` in L1 norm).
    Coordinates a bound holds against their gradient stay put for the step and trial points are
    projected onto the box, so every point is feasible. A row whose search fails forgets its
    history and next tries steepest descent; one whose steepest descent fails, whose gradient
    vanishes, or that passes ``stop``'s test, is done (stops moving); a warning is logged for rows
    that stop at their start point with a gradient left where some trial overflowed. ``value``
    maps (rows, d) (and ``trial=True`` for line-search points) to (rows,); ``obj`` is told the step.

    Returns each row's last iterate (rows, d), its value (rows,), whether it converged (rows,)
    bool (done with a finite value, not stuck at its start) and the steps it took (rows,) long."""
    lo, hi, x = flat.lo, flat.hi, flat.x
    N, d = x.shape
    S, Y, rho = x.new_zeros(_HISTORY, N, d), x.new_zeros(_HISTORY, N, d), x.new_zeros(_HISTORY, N)
    gamma = x.new_ones(N)

    def f_and_grad(x: torch.Tensor, trial: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        e = value(x, trial=trial)
        return e.detach(), torch.autograd.grad(e.sum(), x)[0]  # (N,), (N, d); weights get no .grad

    at_step(obj, 0)
    f, g = f_and_grad(x)
    done = ~(torch.isfinite(f) & torch.isfinite(g).all(1))  # (N,) rows that no longer move
    moved, blown = torch.zeros_like(done), torch.zeros_like(done)  # blown: a trial step overflowed
    stop.start(N, x.device)
    taken = torch.zeros(N, dtype=torch.long, device=x.device)
    for i in range(steps):
        at_step(obj, i)
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))  # (N, d) not held by the box
        gf = g * free
        done |= (gf.abs().amax(1) <= _GRAD_TOL) | stop.converged
        if done.all():
            break
        taken += ~done
        p = -_two_loop(gf, S, Y, rho, gamma) * free
        dg = (gf * p).sum(1)  # f'(0) along p
        fresh = ~(dg < 0) | (rho == 0).all(0)  # no history, or its direction does not go down
        rho[:, fresh] = 0.0
        p = torch.where(fresh[:, None], -gf, p)
        dg = torch.where(fresh, -(gf * gf).sum(1), dg)
        t = torch.where(fresh, lr * (1.0 / gf.abs().sum(1)).clamp(max=1.0), torch.full_like(f, lr))
        # (N,) no move below: rounding, or a tenth of tol_z (a step that short would pass the test anyway)
        tiny = torch.clamp(_STEP_TOL * (x.abs().amax(1) + 1), min=0.1 * stop.tol_z) / p.abs().amax(1).clamp(min=1e-30)
        pending = ~done
        xn, fn_, gn = x, f, g  # each row's accepted point; the current one until it accepts
        for k in range(_LS_MAX):
            xt = torch.where(pending[:, None], (x + t[:, None] * p).clamp(lo, hi), xn)
            e, gt = f_and_grad(xt, trial=True)
            drop, slope = (g * (xt - x)).sum(1), (gt * (xt - x)).sum(1)  # t f'(0), t f'(t) along the step
            armijo = e <= f + _C1 * drop
            wolfe = (e <= f + _F_EPS * f.abs()) & (slope >= 0.9 * drop) & (slope <= -0.8 * drop)
            ok = pending & (drop < 0) & torch.isfinite(e) & (armijo | wolfe)
            blown |= pending & ~torch.isfinite(e)
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
        stop.update(f, fn_, s.abs().amax(1))
        x, f, g = xn, fn_, gn
        done |= ~(torch.isfinite(f) & torch.isfinite(g).all(1))
    gf = g * ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))  # the gradient a step could follow
    done |= (gf.abs().amax(1) <= _GRAD_TOL) | stop.converged  # as the next step would find
    # not a minimum to rounding: a gradient left and only overflowing steps (every trial finite and
    # higher, down to steps that no longer move z, is a minimum along the gradient, e.g. at R(z)'s L1 kink)
    stuck = ~moved & blown & (gf.abs().amax(1) > 1e-4 * (f.abs() + 1)) & torch.isfinite(f)
    if steps > 0 and stuck.any():
        log.warning("%s: L-BFGS left %d of %d row(s) at their start point: no step along the gradient "
                    "(largest |dE/dz| %.3g) lowered the energy and some overflowed; the energy may overflow "
                    "nearby, or `lr` (%g) be far off: try optimizer=\"adam\"", what(obj), int(stuck.sum()), N,
                    float(gf[stuck].abs().max()), lr)
    return x, f, done & ~stuck & torch.isfinite(f), taken


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


def _inside(params: Params, spaces: dict[str, Continuous]) -> torch.Tensor:
    """(rows,) True where every space's point of the row lies within its bounds."""
    first = next(iter(params.values()))
    ok = torch.ones(first.shape[0], dtype=torch.bool, device=first.device)
    with torch.no_grad():
        for k, s in spaces.items():
            ok &= s.inside(params[k])
    return ok


def _project(params: Params, spaces: dict[str, Continuous]) -> None:
    with torch.no_grad():
        for k, s in spaces.items():
            s.project_(params[k])
