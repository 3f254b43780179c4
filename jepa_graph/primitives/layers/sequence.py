"""Torch modules of the sequence blocks (``primitives/sequence.py`` holds their shape rules)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import mlp_layers


class SliceSteps(nn.Module):
    """(B, T, ...) -> (B, stop - start, ...)."""

    def __init__(self, start: int, stop: int | None):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.stop]

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"


def step_distance(a: torch.Tensor, b: torch.Tensor, fn: str, beta: float = 1.0) -> torch.Tensor:
    """D_t per sample and step: (B, T, ...) twice -> (B, T), each energy's distance at one step."""
    if fn == "cosine":  # 1 - cos(a, b) along the feature (last) dim, averaged over any other dims
        d = 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)
    elif fn == "l2":
        d = (a - b).pow(2)
    elif fn == "l1":
        d = (a - b).abs()
    else:
        d = F.smooth_l1_loss(a, b, reduction="none", beta=beta)
    return d.flatten(2).mean(2) if d.dim() > 2 else d


class Discounted(nn.Module):
    """sum_t gamma^t D_t / sum_t gamma^t per sample: (B, T, ...) twice -> (B,)."""

    def __init__(self, fn: str, gamma: float, beta: float = 1.0):
        super().__init__()
        self.fn, self.gamma, self.beta = fn, gamma, beta

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = step_distance(a, b, self.fn, self.beta)  # (B, T)
        w = self.gamma ** torch.arange(d.shape[1], device=d.device, dtype=d.dtype)  # (T,)
        return (d * w).sum(1) / w.sum()

    def extra_repr(self) -> str:
        return f"{self.fn}, gamma={self.gamma}"


class TemporalSmoothness(nn.Module):
    """Mean over the batch, steps and features of (s_{t+1} - s_t)^2: (B, T, ...) -> ()."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(s[:, 1:], s[:, :-1])


class InverseDynamics(nn.Module):
    """An MLP head a_t = g([s_t, s_{t+1}]) and its mean squared error against the true a_t.

    ``pairs``: inputs are states (B, T+1, ...) and actions (B, T, ...); otherwise one transition
    s_t (B, ...), s_{t+1} (B, ...), a_t (B, ...)."""

    def __init__(self, n_state: int, n_act: int, hidden: list[int], act: str, pairs: bool):
        super().__init__()
        self.pairs = pairs
        self.head = nn.Sequential(*mlp_layers([2 * n_state, *hidden, n_act], act))

    def forward(self, s: torch.Tensor, second: torch.Tensor, third: torch.Tensor | None = None) -> torch.Tensor:
        if self.pairs:  # states (B, T+1, ...), actions (B, T, ...): every consecutive pair, (B, T, 2 * S)
            x = torch.cat([s[:, :-1].flatten(2), s[:, 1:].flatten(2)], -1)
            target = second.flatten(2)  # (B, T, A)
        else:  # one transition: s_t, s_{t+1}, a_t
            x = torch.cat([s.flatten(1), second.flatten(1)], -1)  # (B, 2 * S)
            target = third.flatten(1)  # (B, A)
        return F.mse_loss(self.head(x), target)


class PathMetric(nn.Module):
    """``tight`` * the squared excess of ||s_i - s_j|| over ``scale`` * the path length between them
    (sum of the action norms), plus the mean of relu(``margin`` - ||s - s'||) over states of
    different windows: states (B, T+1, ...), actions (B, T, ...) -> ()."""

    def __init__(self, margin: float, scale: float, tight: float, all_pairs: bool):
        super().__init__()
        self.margin, self.scale, self.tight, self.all_pairs = margin, scale, tight, all_pairs

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        s = s.flatten(2)  # (B, T+1, S)
        step = self.scale * a.flatten(2).norm(dim=-1)  # (B, T): the most each move can travel
        if self.all_pairs:
            cum = F.pad(step.cumsum(1), (1, 0))  # (B, T+1): path length from the window's start
            i, j = torch.triu_indices(s.shape[1], s.shape[1], 1, device=s.device)  # every pair i < j
            d = _norm(s[:, j] - s[:, i])  # (B, P)
            bound = cum[:, j] - cum[:, i]
        else:
            d, bound = _norm(s[:, 1:] - s[:, :-1]), step
        over = F.relu(d - bound).pow(2).mean()
        apart = F.relu(self.margin - _norm(s - s.roll(1, 0))).mean()  # each window against another
        return self.tight * over + apart

    def extra_repr(self) -> str:
        return f"margin={self.margin}, scale={self.scale}, tight={self.tight}, all_pairs={self.all_pairs}"


def _norm(v: torch.Tensor) -> torch.Tensor:
    """The Euclidean norm along the last dim, with a finite gradient at 0 (sqrt of sum + 1e-12)."""
    return (v.pow(2).sum(-1) + 1e-12).sqrt()


class Unrolled(nn.Module):
    """Stands for an unrolled predictor in ``model.blocks``: it holds no weights (its steps run
    the world model's predictor, inlined into each program that needs them), so calling it alone
    has nothing to run."""

    def __init__(self, step: str, mode: str):
        super().__init__()
        self.step, self.mode = step, mode

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f"an unrolled predictor runs inside the compiled programs (it steps `{self.step}`); "
                           "call the model, or its `rollout` program")

    def extra_repr(self) -> str:
        return f"step={self.step}, mode={self.mode}"
