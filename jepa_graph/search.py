"""The searches behind :func:`jepa_graph.minimize_energy`, each over a batch of B samples at once.

Every search lays its candidates out as rows ``c * B + b`` (candidate ``c`` of sample ``b``), runs
them through one :class:`~jepa_graph.latents.EnergyFn` call per step, and keeps, per sample, the
lowest energy it has seen and where:

=========== ===================================================================================
descend     discrete latents enumerated (every combination of values), continuous ones moved by
            Adam or L-BFGS from ``restarts`` starting points, projected onto their box each step
cem         cross-entropy method: Gaussian (continuous) and categorical (discrete) proposals
            refitted to the ``elites`` best of ``samples`` candidates, ``steps`` times
sample      ``samples`` random candidates from the prior (the start point among them)
=========== ===================================================================================

Enumeration is ``descend`` with no continuous latent: all K values in one batched pass.
"""
from __future__ import annotations

import math

import torch

from .latents import EnergyFn, LatentSpace

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
    """Enumerate discrete latents; minimise continuous ones by projected gradient descent."""
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
    params = {k: v.detach().clone().requires_grad_(True) for k, v in starts.items()}
    with torch.enable_grad():  # z needs gradients even when the caller runs under no_grad

        def evaluate() -> torch.Tensor:
            e = fn({**fixed, **params})
            # L-BFGS's line search tries points before they are projected: only feasible ones count
            best.update(torch.where(_inside(params, cont), e.detach(), math.inf), {**fixed, **params})
            return e

        def set_grads(e: torch.Tensor) -> None:
            grads = torch.autograd.grad(e.sum(), list(params.values()))  # weights get no .grad
            for p, gr in zip(params.values(), grads):
                p.grad = gr.contiguous()  # a slice of a concat's gradient is strided; L-BFGS views it flat

        if optimizer == "adam":
            opt = torch.optim.Adam(list(params.values()), lr=lr)
            for i in range(steps):
                fn.step = i
                set_grads(evaluate())
                opt.step()
                _project(params, cont)
        elif optimizer == "lbfgs":
            # max_iter=1 per outer step so each step can be projected; the curvature history persists
            opt = torch.optim.LBFGS(list(params.values()), lr=lr, max_iter=1, line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                e = evaluate()
                set_grads(e)
                return e.sum().detach()

            for i in range(steps):
                fn.step = i
                opt.step(closure)
                _project(params, cont)
        else:
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    fn.step = steps
    with torch.no_grad():
        best.update(fn({**fixed, **params}), {**fixed, **params})
    return best


def _inside(params: Z, spaces: list[LatentSpace]) -> torch.Tensor:
    """(rows,) True where every box latent of the row lies in its box."""
    ok = torch.ones(next(iter(params.values())).shape[0], dtype=torch.bool, device=next(iter(params.values())).device)
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
