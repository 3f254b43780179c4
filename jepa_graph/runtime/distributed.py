"""DistributedDataParallel plumbing for ``torchrun``: the same command, any number of processes.

Under ``torchrun --nproc_per_node=N`` the environment carries ``RANK``/``WORLD_SIZE``; the
trainer joins the process group (nccl on GPU, gloo on CPU), wraps the training program in DDP
(gradients averaged across ranks), and each rank takes its shard of the global batch. Blocks
whose output depends on the whole batch see the global one: the batch-statistics regularisers
gather the shards (:func:`gather_batch`), BatchNorm is synchronised (``sync_batchnorm.py``).
Rank 0 writes checkpoints and metrics. Without those variables everything here is a no-op.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn


def setup() -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this rank's GPU when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.is_initialized():
        name = f"cuda:{local_rank}"
    return torch.device(name)


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def average(record: dict, device: torch.device) -> dict:
    """Average float metrics over ranks (each rank logged its shard's values)."""
    if not dist.is_initialized():
        return record
    keys = [k for k, v in record.items() if isinstance(v, float)]
    t = torch.tensor([record[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {**record, **dict(zip(keys, t.tolist()))}


def average_grads(params: list, skip: set[int]) -> None:
    """All-reduce (mean) the gradients of ``params`` not in ``skip`` (ids of DDP-managed ones)."""
    for p in params:
        if id(p) not in skip:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def gathering(module: nn.Module) -> bool:
    """Whether a batch-statistics block should see the global batch: training, in a process group
    of more than one rank. Without a group this is ``False`` before any collective is touched, and
    dynamo folds ``dist.is_initialized()`` to a constant, so compiled single-process graphs hold
    no trace of the gather."""
    return module.training and dist.is_initialized() and dist.get_world_size() > 1


class _FullGather(torch.autograd.Function):
    """All-gather along dim 0 with gradients (VICReg's ``FullGatherLayer``): forward concatenates
    every rank's (b, ...) into (W * b, ...); backward sums the output gradient over ranks and
    returns this rank's slice. Every rank computes the same full-batch statistic R, so the sum is
    W * dR/dx_local; DDP's mean over W ranks then leaves exactly the single-process dR/dtheta."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.b = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)  # sum over ranks
        r = dist.get_rank()
        return grad[r * ctx.b:(r + 1) * ctx.b]


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """(b, ...) on each rank -> the global (W * b, ...) in rank order, differentiable; every
    rank's shard must be one size (the trainer splits the batch evenly)."""
    return _FullGather.apply(x)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
