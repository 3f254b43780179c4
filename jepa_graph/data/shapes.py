"""Procedural images: one coloured shape (disc, square, triangle, ring) at a random position and
scale on a dark, slightly noisy background, rendered in torch for a whole batch at once.

The ``shapes`` source sizes itself from the spec it feeds and yields what the spec asks for:

* ``image`` (3, H, W), with ``ctx_idx``/``tgt_idx`` I-JEPA multi-block masks when the spec
  takes them (grid = image / ``patch``; counts = the spec's index shapes);
* ``x1``, ``x2``: two augmented views of one image (random resized crop, flip, colour jitter,
  noise) for joint-embedding specs such as VICReg;
* always ``label`` (B,) shape class, ``pos`` (B, 2) centre in [-1, 1], ``scale`` (B,): for probes.

Example::

    imgs = render_shapes(8, 32, torch.Generator().manual_seed(0))
    imgs["image"].shape, imgs["label"]          # (8, 3, 32, 32), (8,) in 0..3
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import DataSource, register_source
from .catalog import SHAPES, ShapesParams, shapes_size
from .masks import multiblock_batch

CLASSES = ("disc", "square", "triangle", "ring")


def render_shapes(n: int, size: int, gen: torch.Generator, scale: tuple[float, float] = (0.2, 0.45),
                  noise: float = 0.05) -> dict[str, torch.Tensor]:
    """``n`` images (n, 3, size, size) in [0, 1] with their labels, centres and scales."""
    label = torch.randint(0, len(CLASSES), (n,), generator=gen)
    r = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=gen)  # half-size, in [-1, 1] units
    pos = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - r[:, None])  # keep the shape inside the frame
    colour = 0.35 + 0.65 * torch.rand(n, 3, generator=gen)
    colour = colour / colour.max(1, keepdim=True).values  # saturated: the brightest channel is 1
    lin = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")  # (size, size)
    dx = (xx[None] - pos[:, 0, None, None]) / r[:, None, None]  # (n, size, size), in shape units
    dy = (yy[None] - pos[:, 1, None, None]) / r[:, None, None]
    rho = (dx ** 2 + dy ** 2).sqrt()
    masks = torch.stack([
        rho <= 1.0,
        (dx.abs() <= 0.8) & (dy.abs() <= 0.8),
        (dy <= 0.8) & (dy >= -0.9) & (dx.abs() <= (dy + 0.9) * 0.6),  # apex up (image y grows down)
        (rho <= 1.0) & (rho >= 0.55),
    ], dim=1)  # (n, classes, size, size)
    m = masks[torch.arange(n), label].float()  # (n, size, size)
    img = m[:, None] * colour[:, :, None, None]  # (n, 3, size, size)
    img = img + noise * torch.rand(n, 3, size, size, generator=gen)
    return {"image": img.clamp(0, 1), "label": label, "pos": pos, "scale": r}


def augment(img: torch.Tensor, gen: torch.Generator, crop: tuple[float, float] = (0.5, 1.0),
            jitter: float = 0.4, noise: float = 0.03, flip: bool = True) -> torch.Tensor:
    """A random view of each image (n, 3, H, W): resized crop (area ``crop``), horizontal flip
    (``flip``), brightness/colour jitter, additive noise. Batched with one affine grid sample."""
    n = img.shape[0]
    area = crop[0] + (crop[1] - crop[0]) * torch.rand(n, generator=gen)
    s = area.sqrt()  # side of the crop, as a fraction of the image
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - s[:, None])  # crop centre
    mirror = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)  # drawn either way: same stream
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = s * (mirror if flip else 1.0), s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = 1 + jitter * (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1)  # per-channel colour jitter
    out = out * gain + noise * torch.randn(out.shape, generator=gen)
    return out.clamp(0, 1)


@register_source("shapes")
class ShapesSource(DataSource):
    """Coloured shapes; I-JEPA masks or two augmented views, as the spec's inputs ask."""

    Params = ShapesParams  # the `with:` keys (catalog.py: torch-free, for validate and info --data)

    def __init__(self, params, inputs, seed=0):
        super().__init__(params, inputs, seed)
        self.size = shapes_size(params, inputs)
        SHAPES.require_fit(params, inputs)  # the parameters against the spec's inputs
        self.grid = (self.size // params.patch,) * 2

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        p = self.p
        out = render_shapes(n, self.size, gen, p.scale, p.noise)
        if "ctx_idx" in self.inputs and "tgt_idx" in self.inputs:
            out["ctx_idx"], out["tgt_idx"] = multiblock_batch(
                n, self.grid, self.inputs["ctx_idx"].shape[0], self.inputs["tgt_idx"].shape[0], gen,
                n_blocks=p.n_blocks, target_scale=p.target_scale, target_aspect=p.target_aspect,
                context_scale=p.context_scale)
        if "x1" in self.inputs or "x2" in self.inputs:
            out["x1"] = augment(out["image"], gen, p.crop, p.jitter, flip=p.flip)
            out["x2"] = augment(out["image"], gen, p.crop, p.jitter, flip=p.flip)
        return out
