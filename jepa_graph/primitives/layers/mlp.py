"""Torch modules of the MLP blocks (``primitives/mlp.py`` holds their shape rules)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from .common import MLP, Scale, activation, mlp_layers

if TYPE_CHECKING:
    from ..mlp import ACParams, ActorParams


class ActionConditionedMLP(nn.Module):
    """Each input (state, action, latent) through its own Linear+act, concatenated, then an MLP.

    The seed article's predictor: state_net(s), action_net(a) -> combined_net([.,.])."""

    def __init__(self, in_dims: list[int], p: ACParams):
        super().__init__()
        self.state_net = nn.Sequential(nn.Linear(in_dims[0], p.branch), activation(p.act))
        self.action_net = nn.Sequential(nn.Linear(in_dims[1], p.branch), activation(p.act))
        self.latent_net = nn.Sequential(nn.Linear(in_dims[2], p.branch), activation(p.act)) if len(in_dims) > 2 else None
        self.combined_net = nn.Sequential(*mlp_layers([p.branch * len(in_dims), *p.hidden, p.out], p.act))

    def forward(self, s: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = [self.state_net(s), self.action_net(a)]  # (B, branch) each
        if self.latent_net is not None:
            h.append(self.latent_net(z))
        return self.combined_net(torch.cat(h, dim=1))


def actor(n_in: int, p: ActorParams) -> MLP:
    """The policy MLP, ending in tanh (scaled onto ``bounds`` unless they are [-1, 1])."""
    layers = mlp_layers([n_in, *p.hidden, p.out], p.act)
    if p.bounds is not None:
        layers.append(nn.Tanh())
        if tuple(p.bounds) != (-1.0, 1.0):
            layers.append(Scale(*p.bounds))
    return MLP(layers)
