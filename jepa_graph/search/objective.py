"""What a search minimises, and the per-problem best it keeps.

Every search solves B problems at once. Its candidates are named tensors (one per space, see
:mod:`jepa_graph.search.spaces`) of rows ``c * B + b``: candidate ``c`` of problem ``b``. The
objective maps them to one value per row, lower is better::

    def f(params: dict[str, torch.Tensor]) -> torch.Tensor:   # (C * B, ...) each -> (C * B,)
        a = params["a"]                                       # e.g. action sequences (C * B, H, A)
        return ((a - target.repeat(a.shape[0] // B, 1, 1)) ** 2).flatten(1).sum(1)

Any callable with that signature will do. Two optional attributes let an objective say more in
its messages: ``step`` (the search sets it to the step about to run) and ``what`` (what is being
searched, for the search's log lines). Energy minimisation's ``EnergyFn`` is one such objective.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch

Params = dict[str, torch.Tensor]  # space name -> candidates, rows c * B + b


class Objective(Protocol):
    """``f(params) -> (C * B,)`` values of the candidates ``params`` (rows ``c * B + b``)."""

    def __call__(self, params: Params) -> torch.Tensor: ...


def at_step(f: Objective, i: int) -> None:
    """Tell ``f`` the step about to run, when it keeps one (a ``step`` attribute), for its messages."""
    if hasattr(f, "step"):
        f.step = i


def what(f: Objective) -> str:
    """How ``f`` names itself in log lines."""
    return getattr(f, "what", None) or getattr(f, "__name__", None) or type(f).__name__


class Best:
    """Per-problem running minimum over candidate rows laid out ``c * B + b``.

    ``value`` (B,) the lowest value seen per problem (+inf before any), ``params`` the point
    where (a dict of (B, *value_shape) tensors, None before the first update), ``row`` (B,) the
    row of the update call that gave it. A descent fills ``converged`` (B,) bool, whether the row
    that gave the best had converged, and ``steps`` (B,) int, the steps it took (None otherwise)."""

    def __init__(self, B: int, device=None):
        self.B = B
        self.value = torch.full((B,), math.inf, device=device)
        self.params: Params | None = None
        self.row = torch.arange(B, device=device)
        self.converged: torch.Tensor | None = None
        self.steps: torch.Tensor | None = None

    def update(self, values: torch.Tensor, params: Params) -> None:
        """``values`` (C * B,) of the candidates ``params`` (C * B, ...)."""
        e = values.detach().view(-1, self.B)  # (C, B)
        if self.value.device != e.device:
            self.value, self.row = self.value.to(e.device), self.row.to(e.device)
        val, c = e.min(0)  # best candidate of this call, per problem
        rows = c * self.B + torch.arange(self.B, device=e.device)
        better = val < self.value
        if self.params is None:
            self.params = {k: v.detach()[rows].clone() for k, v in params.items()}
        else:
            for k, v in params.items():
                m = better.view(-1, *([1] * (v.dim() - 1)))
                self.params[k] = torch.where(m, v.detach()[rows], self.params[k])
        self.value = torch.where(better, val, self.value)
        self.row = torch.where(better, rows, self.row)
