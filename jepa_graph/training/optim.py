"""Optimiser and learning-rate schedule from the ``train:`` section.

Weight decay applies to weight matrices and kernels only; biases and normalisation gains (1-D
parameters) are not decayed, as in I-JEPA and most ViT recipes. The schedule is a linear
warm-up from 0 to the peak ``lr`` over ``warmup`` steps, then a half cosine down to
``final_lr`` at the last step (or constant). It is a ``LambdaLR`` whose state is only the step,
so it checkpoints as plain data.
"""
from __future__ import annotations

import math

import torch

from ..frontend.train_config import OptimizerConfig, TrainConfig


def make_optimizer(params: list[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over ``params``; two groups: decayed (dim >= 2) and not decayed."""
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": rest, "weight_decay": 0.0}) if g["params"]]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak lr after ``step`` optimiser steps (0-based step being taken next)."""
    warm = cfg.schedule.warmup
    if warm and step < warm:
        return (step + 1) / warm
    if cfg.schedule.kind == "constant":
        return 1.0
    floor = cfg.schedule.final_lr / cfg.optimizer.lr
    span = max(cfg.steps - warm - 1, 1)  # the last step (steps - 1) runs at final_lr
    t = min(max(step - warm, 0) / span, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
