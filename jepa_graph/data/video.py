"""Procedural videos: a coloured shape moving in a straight line (bouncing off the borders), with
V-JEPA tube masks.

The ``video`` source yields ``clip`` (3, T, H, W) and, when the spec takes them, ``ctx_idx`` /
``tgt_idx`` tube masks over the (T / tubelet, H / patch, W / patch) token grid (counts from the
spec's index shapes), plus ``label`` (B,) and ``velocity`` (B, 2) for probes.

Example::

    v = render_videos(4, frames=8, size=32, gen=torch.Generator().manual_seed(0))
    v["clip"].shape                      # (4, 3, 8, 32, 32)
"""
from __future__ import annotations

import torch

from . import DataSource, register_source
from .catalog import VIDEO, VideoParams, video_clip
from .masks import tube_batch
from .shapes import CLASSES


def _bounce(p: torch.Tensor, lim: torch.Tensor) -> torch.Tensor:
    """Reflect positions into [-lim, lim] (a ball bouncing between walls)."""
    span = 2 * lim
    q = torch.remainder(p + lim, 2 * span)
    return torch.where(q > span, 2 * span - q, q) - lim


def render_videos(n: int, frames: int, size: int, gen: torch.Generator, max_speed: float = 0.25,
                  noise: float = 0.03) -> dict[str, torch.Tensor]:
    """``n`` clips (n, 3, frames, size, size) in [0, 1] of one moving shape each."""
    label = torch.randint(0, len(CLASSES), (n,), generator=gen)
    r = 0.25 + 0.15 * torch.rand(n, generator=gen)
    lim = (1 - r)[:, None]  # (n, 1): centre range that keeps the shape inside
    p0 = (torch.rand(n, 2, generator=gen) * 2 - 1) * lim
    vel = (torch.rand(n, 2, generator=gen) * 2 - 1) * max_speed  # per frame, in [-1, 1] units
    colour = 0.35 + 0.65 * torch.rand(n, 3, generator=gen)
    colour = colour / colour.max(1, keepdim=True).values
    lin = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    out = []
    for t in range(frames):
        pos = _bounce(p0 + t * vel, lim)  # (n, 2)
        dx = (xx[None] - pos[:, 0, None, None]) / r[:, None, None]
        dy = (yy[None] - pos[:, 1, None, None]) / r[:, None, None]
        rho = (dx ** 2 + dy ** 2).sqrt()
        masks = torch.stack([rho <= 1, (dx.abs() <= 0.8) & (dy.abs() <= 0.8),
                             (dy <= 0.8) & (dy >= -0.9) & (dx.abs() <= (dy + 0.9) * 0.6),
                             (rho <= 1) & (rho >= 0.55)], 1)
        m = masks[torch.arange(n), label].float()
        out.append(m[:, None] * colour[:, :, None, None])  # (n, 3, size, size)
    clip = torch.stack(out, 2)  # (n, 3, T, size, size)
    clip = clip + noise * torch.rand(clip.shape, generator=gen)
    return {"clip": clip.clamp(0, 1), "label": label, "velocity": vel}


@register_source("video")
class VideoSource(DataSource):
    """Moving-shape clips with tube masks sized from the spec."""

    Params = VideoParams  # the `with:` keys (catalog.py: torch-free, for validate and info --data)

    def __init__(self, params, inputs, seed=0):
        super().__init__(params, inputs, seed)
        self.frames, self.size = video_clip(inputs)
        VIDEO.require_fit(params, inputs)  # the parameters against the spec's inputs
        self.grid = (self.frames // params.tubelet, self.size // params.patch, self.size // params.patch)

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        out = render_videos(n, self.frames, self.size, gen, self.p.max_speed)
        if "ctx_idx" in self.inputs and "tgt_idx" in self.inputs:
            out["ctx_idx"], out["tgt_idx"] = tube_batch(
                n, self.grid, self.inputs["ctx_idx"].shape[0], self.inputs["tgt_idx"].shape[0], gen,
                target_scale=self.p.target_scale, n_blocks=self.p.n_blocks)
        return out
