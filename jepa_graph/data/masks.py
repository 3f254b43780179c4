"""Mask samplers: I-JEPA multi-block masks and V-JEPA tube masks, as fixed-size index tensors.

I-JEPA (Assran et al., 2023, section 3) samples M target blocks (scale 0.15-0.2 of the image,
aspect ratio 0.75-1.5) and one large context block (scale 0.85-1.0, aspect 1), then removes
the target patches from the context so the task is not trivial. Specs here take a *fixed*
number of indices (``ctx_idx [n_ctx]``, ``tgt_idx [n_tgt]``), so target blocks are added
until they hold ``n_tgt`` patches (the last block cut in raster order; topped up with adjacent
patches if ``n_blocks`` blocks fall short), and the context block minus the targets is cut (at
random) or topped up (nearest patches first) to ``n_ctx``. Indices are
row-major in the patch grid, sorted, context and target disjoint.

V-JEPA (Bardes et al., 2024) masks *tubes*: one spatial mask repeated over every time step, so
a hidden patch cannot be copied from the next frame.
"""
from __future__ import annotations

import math

import torch


def _block(gh: int, gw: int, scale: tuple[float, float], aspect: tuple[float, float],
           gen: torch.Generator) -> torch.Tensor:
    """A random rectangle of patches: (gh, gw) bool."""
    s = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=gen))
    la, lb = math.log(aspect[0]), math.log(aspect[1])
    ar = math.exp(la + (lb - la) * float(torch.rand((), generator=gen)))
    area = s * gh * gw
    h = max(1, min(gh, round(math.sqrt(area * ar))))
    w = max(1, min(gw, round(math.sqrt(area / ar))))
    top = int(torch.randint(0, gh - h + 1, (), generator=gen))
    left = int(torch.randint(0, gw - w + 1, (), generator=gen))
    m = torch.zeros(gh, gw, dtype=torch.bool)
    m[top:top + h, left:left + w] = True
    return m


def _fit(chosen: torch.Tensor, allowed: torch.Tensor, k: int, gen: torch.Generator, gw: int) -> torch.Tensor:
    """Exactly ``k`` patches: a random subset of ``chosen``, or ``chosen`` plus the allowed
    patches nearest to it (grid distance, random ties). Flat bool masks (N,)."""
    idx = chosen.nonzero().flatten()
    if len(idx) >= k:
        keep = idx[torch.randperm(len(idx), generator=gen)[:k]]
    else:
        pool = (allowed & ~chosen).nonzero().flatten()
        if len(idx):
            r, c = pool // gw, pool % gw
            d = ((r[:, None] - idx[None] // gw).abs() + (c[:, None] - idx[None] % gw).abs()).min(1).values
        else:
            d = torch.zeros(len(pool))
        order = torch.argsort(d.float() + 0.5 * torch.rand(len(pool), generator=gen))
        keep = torch.cat([idx, pool[order[:k - len(idx)]]])
    out = torch.zeros_like(chosen)
    out[keep] = True
    return out


def multiblock(gh: int, gw: int, n_ctx: int, n_tgt: int, gen: torch.Generator, n_blocks: int = 4,
               target_scale: tuple[float, float] = (0.15, 0.2), target_aspect: tuple[float, float] = (0.75, 1.5),
               context_scale: tuple[float, float] = (0.85, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """One I-JEPA mask on a (gh, gw) patch grid: (ctx_idx (n_ctx,), tgt_idx (n_tgt,)) long, sorted."""
    N = gh * gw
    if n_ctx + n_tgt > N:
        raise ValueError(f"n_ctx + n_tgt = {n_ctx + n_tgt} exceeds the {gh}x{gw} = {N} patches")
    tgt = torch.zeros(N, dtype=torch.bool)
    for _ in range(n_blocks):  # blocks until the targets are full; the last one is cut in raster order
        new = (_block(gh, gw, target_scale, target_aspect, gen).flatten() & ~tgt).nonzero().flatten()
        need = n_tgt - int(tgt.sum())
        tgt[new[:need]] = True
        if len(new) >= need:
            break
    tgt = _fit(tgt, torch.ones(N, dtype=torch.bool), n_tgt, gen, gw)
    ctx = _block(gh, gw, context_scale, (1.0, 1.0), gen).flatten() & ~tgt
    ctx = _fit(ctx, ~tgt, n_ctx, gen, gw)
    return ctx.nonzero().flatten(), tgt.nonzero().flatten()


def multiblock_batch(n: int, grid: tuple[int, int], n_ctx: int, n_tgt: int, gen: torch.Generator,
                     **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` independent multi-block masks: (n, n_ctx), (n, n_tgt) long."""
    pairs = [multiblock(grid[0], grid[1], n_ctx, n_tgt, gen, **kw) for _ in range(n)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def tube_batch(n: int, grid: tuple[int, int, int], n_ctx: int, n_tgt: int, gen: torch.Generator,
               **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Tube masks on a (T, gh, gw) token grid: a spatial multi-block mask repeated over T.

    ``n_ctx`` and ``n_tgt`` count tokens and must be multiples of T. Returns (n, n_ctx), (n, n_tgt)
    long indices, row-major in (time, height, width).
    """
    T, gh, gw = grid
    if n_ctx % T or n_tgt % T:
        raise ValueError(f"tube masks need token counts divisible by the {T} time steps (got {n_ctx}, {n_tgt})")
    kw.setdefault("target_scale", (0.5, 0.6))  # V-JEPA's long-range tubes cover much of the frame
    kw.setdefault("n_blocks", 2)
    ctx, tgt = multiblock_batch(n, (gh, gw), n_ctx // T, n_tgt // T, gen, **kw)  # spatial (n, k)
    offsets = torch.arange(T) * gh * gw  # (T,)
    expand = lambda s: (offsets[None, :, None] + s[:, None, :]).reshape(n, -1)  # (n, T * k), time-major
    return expand(ctx), expand(tgt)
