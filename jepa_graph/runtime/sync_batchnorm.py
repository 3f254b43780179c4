"""BatchNorm over the global batch under DDP, on every backend (gloo on CPU included).

torch's ``nn.SyncBatchNorm`` refuses CPU tensors once a process group is up, so the trainer
converts BatchNorm to :class:`GlobalBatchNorm` instead: in training, in a process group of more
than one rank, each rank gathers every rank's per-channel (mean, M2, count) (one all-gather of
2C + 1 numbers, with gradients: the backward all-reduces the gradient of those statistics),
merges them (Chan et al.'s parallel variance, so shards may differ in size), normalises with the
global mean and biased variance, and updates ``running_mean``/``running_var`` with the global
mean and unbiased variance exactly as BatchNorm does. Anywhere else (eval, one process) it *is*
the BatchNorm it replaced: the same module object, parameters and buffers, so programs, EMA pairs
and optimisers keep their references and checkpoints load either way.

Example::

    convert_sync_batchnorm(model)            # in place; every BatchNorm1d/2d/3d now syncs
    ddp = nn.parallel.DistributedDataParallel(model)
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from .distributed import gather_batch, gathering


class UnsyncableBatchNorm(TypeError):
    """A BatchNorm class with its own ``forward``: converting it would change what it computes.
    ``path``: the module's dotted name under the converted root."""

    def __init__(self, path: str, cls: type):
        self.path, self.cls = path, cls
        super().__init__(f"`{path}` is a {cls.__name__}, a BatchNorm with its own forward; it cannot be "
                         "synchronised across processes")


class GlobalBatchNorm(_BatchNorm):
    """Synchronised BatchNorm for any backend: batch statistics of the global batch under DDP.

    Not built directly: :func:`convert_sync_batchnorm` gives a BatchNorm this class as a base
    (``GlobalBatchNorm2d`` is a ``BatchNorm2d``), so the input checks stay the dimension's own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not gathering(self):  # eval or one process: BatchNorm itself
            return super().forward(x)
        self._check_input_dim(x)
        c, dims = x.shape[1], [0, *range(2, x.dim())]
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()  # bf16 under autocast
        var, mean = torch.var_mean(xf, dims, correction=0)  # (C,) each, this rank's shard
        count = x.numel() // max(c, 1)  # values per channel here
        n = xf.new_full((1,), count)
        rows = gather_batch(torch.cat([mean, var * n, n]).unsqueeze(0))  # (W, 2C + 1), rank order
        means, m2s, ns = rows[:, :c], rows[:, c:2 * c], rows[:, 2 * c:]  # (W, C), (W, C), (W, 1)
        total = ns.sum()
        if count <= 1 and total.item() <= 1:  # a device sync only when this shard alone could not tell
            raise ValueError(f"Expected more than 1 value per channel when training, got {int(total)} over all "
                             f"processes (input size {list(x.shape)} here)")
        g_mean = (ns * means).sum(0) / total  # (C,)
        g_m2 = m2s.sum(0) + (ns * (means - g_mean).pow(2)).sum(0)  # Chan: within + between shards
        g_var = g_m2 / total  # biased: what normalises
        if self.track_running_stats:
            self._track(g_mean.detach(), (g_m2 / (total - 1)).detach())  # unbiased: what is tracked
        shape = (1, c) + (1,) * (x.dim() - 2)
        scale = torch.rsqrt(g_var + self.eps)  # (C,)
        if self.weight is not None:
            scale = scale * self.weight
        y = (xf - g_mean.view(shape)) * scale.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """running <- (1 - f) running + f batch; f = momentum, or 1/n for the cumulative average."""
        self.num_batches_tracked.add_(1)
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), f)
        self.running_var.lerp_(var.to(self.running_var.dtype), f)


class GlobalBatchNorm1d(GlobalBatchNorm, nn.BatchNorm1d):
    """BatchNorm1d over the global batch under DDP."""


class GlobalBatchNorm2d(GlobalBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d over the global batch under DDP."""


class GlobalBatchNorm3d(GlobalBatchNorm, nn.BatchNorm3d):
    """BatchNorm3d over the global batch under DDP."""


_SYNCED: dict[type, type] = {nn.BatchNorm1d: GlobalBatchNorm1d, nn.BatchNorm2d: GlobalBatchNorm2d,
                             nn.BatchNorm3d: GlobalBatchNorm3d}


def _synced(cls: type) -> type:
    """The global-batch class of a BatchNorm class (a subclass made once for a user's own)."""
    if cls not in _SYNCED:
        _SYNCED[cls] = type(f"Global{cls.__name__}", (GlobalBatchNorm, cls), {"__module__": __name__})
    return _SYNCED[cls]


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Make every BatchNorm under ``module`` (itself included) normalise over the global batch
    under DDP; in place (each keeps its identity, parameters and buffers), returns ``module``.

    Skipped: a subtree whose root sets ``global_batch = True`` (it gathers the shards before its
    BatchNorm runs, as the VICReg expander does), torch's own ``nn.SyncBatchNorm``, and modules
    already converted. Raises :class:`UnsyncableBatchNorm` for a BatchNorm class that overrides
    ``forward``."""
    def walk(m: nn.Module, path: str) -> None:
        if getattr(m, "global_batch", False):
            return
        if isinstance(m, _BatchNorm) and not isinstance(m, (GlobalBatchNorm, nn.SyncBatchNorm)):
            if type(m).forward is not _BatchNorm.forward:
                raise UnsyncableBatchNorm(path or type(m).__name__, type(m))
            m.__class__ = _synced(type(m))  # as torch.nn.utils.parametrize does: same object, new forward
        for name, child in m.named_children():
            walk(child, f"{path}.{name}" if path else name)

    walk(module, "")
    return module
