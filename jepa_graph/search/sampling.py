"""Sampling searches: the cross-entropy method and random search, for B problems at once.

=========== ===================================================================================
cem         Gaussian (continuous spaces, projected onto their bounds) and categorical (discrete,
            one per choice) proposals per problem, refitted to the ``elites`` best of ``samples``
            candidates, ``steps`` times; round 0's first candidate is the start point itself
sample      ``samples`` candidates per problem: the start point and prior draws, the best kept
=========== ===================================================================================

Each keeps, per problem, the lowest value among every candidate it evaluated. Example::

    space = {"a": Continuous((H, A), -1.0, 1.0)}
    best = cem(lambda p: cost(p["a"]), space, B, steps=20, samples=256, elites=16)
    best.params["a"], best.value                     # (B, H, A), (B,)
"""
from __future__ import annotations

import torch

from .gradient import device_of, split, starts
from .objective import Best, Objective, Params, at_step
from .spaces import Discrete, Space


def cem(f: Objective, spaces: dict[str, Space], B: int, *, init: Params | None = None, steps: int, samples: int,
        elites: int, probs: Params | None = None, generator: torch.Generator | None = None, device=None) -> Best:
    """Cross-entropy method over ``spaces`` for B problems.

    Args:
        f: the objective, (samples * B,) values of candidates laid out ``c * B + b``.
        init: each continuous space's first mean (B, *shape) (default its prior's mode); the
            proposal's first spread is the prior's (:meth:`Continuous.prior_std`).
        probs: each discrete space's first categorical (B, *shape, k) (default uniform); round 0's
            first candidate takes every choice's likeliest value.
    """
    if not 1 <= elites <= samples:
        raise ValueError(f"cem needs 1 <= elites <= samples, got elites={elites}, samples={samples}")
    device = device_of(init, device)
    cont, disc = split(spaces)
    mean = starts(cont, init, B, device)  # (B, *shape)
    std = {k: torch.zeros_like(mean[k]) + s.prior_std() for k, s in cont.items()}
    prob = {k: (probs or {}).get(k, torch.full((B, *s.value_shape), 1.0 / s.k, device=device))
            for k, s in disc.items()}  # (B, *shape, k)
    best = Best(B, device)
    for i in range(steps):
        at_step(f, i)
        xs = {}
        for k, s in spaces.items():
            if isinstance(s, Discrete):
                p = prob[k].reshape(-1, s.k)  # (B * cells, k)
                idx = torch.multinomial(p, samples, replacement=True, generator=generator)  # (B * cells, P)
                if i == 0:
                    idx[:, 0] = p.argmax(1)
                idx = idx.T.reshape(samples * B, *s.shape)  # rows c * B + b
                xs[k] = s.one_hot(idx)  # (P * B, *shape, k)
            else:
                noise = torch.randn(samples, *mean[k].shape, device=device, generator=generator)
                if i == 0:
                    noise[0] = 0.0
                xs[k] = s.project(mean[k] + std[k] * noise).flatten(0, 1)  # (P * B, *shape)
        e = f(xs)
        best.update(e, xs)
        top = (-e.view(samples, B)).topk(elites, dim=0).indices  # (elites, B)
        for k, s in spaces.items():
            x = xs[k].view(samples, B, *xs[k].shape[1:])
            el = x.gather(0, top.view(elites, B, *([1] * (x.dim() - 2))).expand(elites, *x.shape[1:]))
            if isinstance(s, Discrete):  # refit the categorical, keeping some mass on every value
                prob[k] = 0.9 * el.mean(0) + 0.1 * prob[k]
            else:
                mean[k], std[k] = el.mean(0), el.std(0, unbiased=False) + 1e-4
    return best


def sample(f: Objective, spaces: dict[str, Space], B: int, *, init: Params | None = None, samples: int,
           generator: torch.Generator | None = None, device=None) -> Best:
    """Random search: the start point (``init``, default each prior's mode) plus ``samples - 1``
    prior draws per problem, in one call of ``f``; the best kept."""
    device = device_of(init, device)
    split(spaces)
    init = starts(spaces, init, B, device)
    xs = {k: torch.cat([init[k]] + [s.sample((samples - 1) * B, device, generator)]) for k, s in spaces.items()}
    at_step(f, 0)
    best = Best(B, device)
    best.update(f(xs), xs)
    return best
