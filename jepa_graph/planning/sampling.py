"""Sampling planners: a Gaussian proposal per environment, refitted to the best candidates.

============ ===================================================================================
``cem``      the cross-entropy method: the proposal's mean and spread refitted to the ``elites``
             lowest-cost of ``samples`` candidates, ``iterations`` times
``icem``     iCEM (Pinneri et al. 2020): time-correlated (coloured, 1/f^beta) noise, a fraction
             of the elites kept as candidates of the next iteration, momentum on the refit
``mppi``     MPPI (:mod:`.mppi`): the refit weighs the elites by exp(-cost / temperature)
============ ===================================================================================

Every iteration evaluates ``samples`` candidates per environment in one call of the cost (one
rollout of ``samples * B`` sequences): candidate 0 is the current mean, then the proposals (an
actor's plan), the elites kept (iCEM), then draws ``mean + std * noise`` projected onto the
bounds. A candidate whose cost is not finite is never an elite nor the result. After the last
iteration the final mean is evaluated too; the plan is the lowest-cost candidate evaluated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..search.objective import Best, Objective, Params, at_step
from ..search.spaces import Continuous
from .base import ACTION, Plan, Planner, Streams, check_positive, check_real


def prior_std(space: Continuous, like: torch.Tensor) -> torch.Tensor:
    """The prior's spread as a tensor ``space.shape`` (half the box's width; 1 where unbounded)."""
    s = space.prior_std()
    return torch.as_tensor(s, dtype=like.dtype, device=like.device).expand(space.shape).clone()


@dataclass(kw_only=True)
class Sampler(Planner):
    """The loop the sampling planners share; subclasses choose the noise and the refit."""

    iterations: int = 8  # refits of the proposal
    samples: int = 256  # candidates per environment per iteration: the mean, proposals, kept elites, draws
    elites: int = 32  # the best candidates the proposal is refitted to
    init_std: float = 1.0  # first spread, as a fraction of the prior's (half the box width; 1 unbounded)
    min_std: float = 0.05  # floor of the spread, same units: keeps exploring when replanning
    momentum: float = 0.0  # mean, std <- momentum * old + (1 - momentum) * refit

    def __post_init__(self):
        check_positive(self, "iterations", "samples", "elites")
        check_real(self, "init_std")
        check_real(self, "min_std", open_lo=False)
        check_real(self, "momentum", hi=1.0, open_lo=False)
        if self.momentum >= 1.0:
            raise ValueError(f"{self.name}: `momentum` must be below 1 (1 never moves the mean)")

    # the parts subclasses change
    def noise(self, n: int, shape: tuple[int, ...]) -> torch.Tensor:
        """(n, B, *shape) unit-variance noise for the draws."""
        return self.streams.randn(n, *shape)

    def kept(self) -> int:
        """How many of the elites are candidates again in the next iteration."""
        return 0

    def refit(self, cost: torch.Tensor, elites: Params, ok: torch.Tensor, mean: Params, std: Params
              ) -> tuple[Params, Params, torch.Tensor]:
        """The new mean and std (B, *shape) per space from the elites (E, B, *shape) with costs
        ``cost`` (E, B) sorted, ``ok`` (E, B) where finite; and (B,) which environments had any."""
        w = ok.to(cost.dtype)
        return _weighted(elites, w, mean, std)

    # the loop
    def solve(self, cost: Objective, init: Params | None = None, proposals: Sequence[Params] = ()) -> Plan:
        B, dev = self.n_envs, self.device
        mean = self.start(init)  # (B, *shape)
        prior = {k: prior_std(s, mean[k]) for k, s in self.spaces.items()}
        std = {k: (prior[k] * self.init_std).expand_as(mean[k]).clone() for k in self.spaces}
        best, kept, history = Best(B, dev), None, []
        val = el = None
        for i in range(self.iterations):
            at_step(cost, i)
            xs = {}
            for k, s in self.spaces.items():
                parts = [mean[k][None]] + [p.get(k, mean[k]).to(dev)[None] for p in proposals]
                if kept is not None:
                    parts.append(kept[k])
                n = self.samples - sum(p.shape[0] for p in parts)
                if n > 0:
                    parts.append(mean[k][None] + std[k][None] * self.noise(n, s.shape))
                xs[k] = s.project(torch.cat(parts)[: self.samples])  # (P, B, *shape)
            P = xs[ACTION].shape[0]
            flat = {k: v.flatten(0, 1) for k, v in xs.items()}  # rows c * B + b
            e = cost(flat).detach()
            e = torch.where(torch.isfinite(e), e, math.inf)  # never an elite nor the minimum
            best.update(e, flat)
            E = min(self.elites, P)
            neg, idx = (-e.view(P, B)).topk(E, dim=0)  # (E, B): lowest costs first
            val = -neg
            el = {k: v.gather(0, idx.view(E, B, *([1] * (v.dim() - 2))).expand(E, *v.shape[1:]))
                  for k, v in xs.items()}
            ok = torch.isfinite(val)
            new_mean, new_std, any_ok = self.refit(val, el, ok, mean, std)
            m = self.momentum
            for k in self.spaces:
                keep = ~any_ok.view(B, *([1] * (mean[k].dim() - 1)))  # no finite elite: keep the proposal
                nm = torch.where(keep, mean[k], m * mean[k] + (1 - m) * new_mean[k])
                ns = torch.where(keep, std[k], m * std[k] + (1 - m) * new_std[k])
                mean[k], std[k] = nm, torch.maximum(ns, self.min_std * prior[k])
            n_keep = min(self.kept(), E)
            if n_keep:  # elites with a non-finite cost are not kept: the mean stands in for them
                okk = ok[:n_keep].view(n_keep, B, *([1] * (mean[ACTION].dim() - 1)))
                kept = {k: torch.where(okk, el[k][:n_keep], mean[k][None]) for k in self.spaces}
            history.append(best.value.clone())
        at_step(cost, self.iterations)
        final = {k: s.project(mean[k]) for k, s in self.spaces.items()}  # the last refit's mean, evaluated
        e = cost(final).detach()
        best.update(torch.where(torch.isfinite(e), e, math.inf), final)
        history.append(best.value.clone())
        info = {"iterations": self.iterations, "samples": self.samples, "history": torch.stack(history),
                "elites": el, "elite_costs": val, "mean": final}
        return self.result(best.params, best.value, info)


def _weighted(elites: Params, w: torch.Tensor, mean: Params, std: Params) -> tuple[Params, Params, torch.Tensor]:
    """Weighted mean and std over the elites (E, B, *shape) with weights ``w`` (E, B); environments
    whose weights are all zero keep ``mean`` and ``std``.

    The sums run over the last dim of contiguous (B, ..., E) tensors: every environment's sum in
    the same order whatever B is, so an environment's plan does not depend on the batch."""
    w = w.T.contiguous()  # (B, E)
    sw = w.sum(-1)  # (B,)
    any_ok = sw > 0
    wn = w / torch.where(any_ok, sw, torch.ones_like(sw))[:, None]
    new_mean, new_std = {}, {}
    for k, x in elites.items():
        xe = x.movedim(0, -1).contiguous()  # (B, *shape, E)
        wk = wn.view(wn.shape[0], *([1] * (xe.dim() - 2)), wn.shape[1])
        xe = torch.where(wk > 0, xe, 0.0)  # an elite of weight 0 may be anything: keep it out of the sums
        mu = (wk * xe).sum(-1)
        var = (wk * (xe - mu[..., None]) ** 2).sum(-1)
        new_mean[k], new_std[k] = mu, var.clamp(min=0).sqrt()
    return new_mean, new_std, any_ok


@dataclass(kw_only=True)
class CEM(Sampler):
    """The cross-entropy method: refit mean and std to the elites, all weighing the same."""

    name = "cem"


@dataclass(kw_only=True)
class ICEM(Sampler):
    """iCEM: coloured noise along the horizon (power spectrum 1/f^``beta``: 0 white, 2 smooth),
    ``keep`` (a fraction) of the elites reused as candidates of the next iteration, ``momentum``."""

    name = "icem"
    beta: float = 2.0  # colour of the noise along the horizon
    keep: float = 0.3  # fraction of the elites kept for the next iteration
    momentum: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        check_real(self, "beta", open_lo=False)
        check_real(self, "keep", hi=1.0, open_lo=False)

    def noise(self, n: int, shape: tuple[int, ...]) -> torch.Tensor:
        return coloured_noise(self.streams, n, shape, self.beta)

    def kept(self) -> int:
        return int(self.keep * self.elites)


def coloured_noise(streams: Streams, n: int, shape: tuple[int, ...], beta: float) -> torch.Tensor:
    """(n, B, *shape) Gaussian noise of unit variance whose power spectrum along the first axis of
    ``shape`` (the horizon) goes as 1/f^beta: random Fourier coefficients scaled by f^(-beta/2)
    (the lowest frequency standing in for 0), transformed back, divided by their exact std."""
    H, rest = shape[0], tuple(shape[1:])
    if beta == 0 or H < 2:
        return streams.randn(n, *shape)
    f = torch.fft.rfftfreq(H, device=streams.device).clamp(min=1.0 / H)  # (F,)
    scale = f ** (-beta / 2.0)
    re = streams.randn(n, *rest, f.numel()) * scale  # (n, B, *rest, F)
    im = streams.randn(n, *rest, f.numel()) * scale
    real = torch.zeros_like(scale, dtype=torch.bool)  # DC (and Nyquist, H even): real coefficients
    real[0] = True
    if H % 2 == 0:
        real[-1] = True
    im = torch.where(real, 0.0, im)
    re = torch.where(real, re * math.sqrt(2.0), re)
    # Var y_t = (2 s_0^2 + 4 sum_k s_k^2 [+ 2 s_N^2]) / H^2 for irfft's y_t = (X_0 + 2 sum_k Re X_k e^{..} [+ X_N]) / H
    var = (torch.where(real, 2.0, 4.0) * scale ** 2).sum() / H ** 2
    y = torch.fft.irfft(torch.complex(re, im), n=H) / var.sqrt()  # (n, B, *rest, H)
    return y.movedim(-1, 2)  # (n, B, H, *rest)
