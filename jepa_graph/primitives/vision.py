"""Vision encoders: a conv stack (``encoder.cnn``) and a masking-aware ViT (``encoder.vit``).

``encoder.vit`` embeds patches of an image [C, H, W] (or tubelets of a clip [C, T, H, W]), adds
positions, and, given keep-indices [K] as a second input, encodes only those tokens: the I-JEPA
context encoder sees the visible patches alone, its EMA target sees them all.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from ..core.registry import BlockType, DimInt, Params, register_block
from ..core.tensors import ShapeMismatch, TType, vec
from .common import Activation
from .transformer import check_heads, check_indices, sincos_requirement, sincos_split


def _layers():  # torch only when a model is built: checking imports no torch
    from .layers import vision
    return vision


def _image(t: TType, index: int, ranks: tuple[int, ...] = (3,)) -> None:
    shapes = {3: "[B, C, H, W]", 4: "[B, C, T, H, W]"}
    want = " or ".join({3: "an image ", 4: "a clip "}[r] + shapes[r] for r in ranks)
    if not t.batched or t.dtype != "float" or len(t.shape) not in ranks:
        raise ShapeMismatch(f"expects {want} on input {index}", index, " or ".join(shapes[r] for r in ranks),
                            "reshape flat observations with `op.reshape` first" if len(t.shape) < 3 else None)


# ------------------------------------------------------------------------------------ cnn
class CNNParams(Params):
    channels: Annotated[list[DimInt], Field(min_length=1)]  # output channels of each conv layer
    kernel: int | list[int] = 3  # one size for all layers, or one per layer
    stride: int | list[int] = 2
    padding: int | list[int] = 1
    act: Activation = "relu"
    norm: Literal["none", "batch", "group"] = "none"  # after each conv, before the activation
    out: DimInt | None = None  # set: flatten + Linear to [out]; unset: tokens [H' * W', channels[-1]]


def conv_layers(p: CNNParams) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) per layer; ShapeMismatch when a list has the wrong length."""
    n = len(p.channels)
    cols = []
    for name in ("kernel", "stride", "padding"):
        v = getattr(p, name)
        v = [v] * n if isinstance(v, int) else v
        if len(v) != n:
            raise ShapeMismatch(f"has {n} conv layers but `{name}` lists {len(v)} values", None,
                                hint=f"give one `{name}` for all layers, or one per entry of `channels`")
        if any(x < (0 if name == "padding" else 1) for x in v):
            raise ShapeMismatch(f"needs `{name}` >= {0 if name == 'padding' else 1}, got {v}", None)
        cols.append(v)
    return list(zip(*cols))


def cnn_out_hw(p: CNNParams, h: int, w: int) -> tuple[int, int]:
    """Spatial size after the conv stack: floor((h + 2p - k) / s) + 1 per layer."""
    for i, (k, s, pad) in enumerate(conv_layers(p)):
        h2, w2 = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        if h2 < 1 or w2 < 1:
            raise ShapeMismatch(f"shrinks the image to nothing at conv layer {i} ({h}x{w} with kernel {k}, "
                                f"stride {s}, padding {pad}) on input 0", 0, None,
                                "use fewer layers, a smaller stride or more padding")
        h, w = h2, w2
    return h, w


@register_block("cnn", kind="encoder")
class EncoderCNN(BlockType):
    """Conv encoder over [C, H, W]: conv/norm/act layers, then a vector [out] or tokens [H'W', c]."""

    Params = CNNParams
    input_names = ("image",)

    def infer(self, p, ins):
        _image(ins[0], 0)
        _, h, w = ins[0].shape
        h, w = cnn_out_hw(p, h, w)
        return vec(p.out) if p.out is not None else TType((h * w, p.channels[-1]))

    def build(self, p, ins):
        c, h, w = ins[0].shape
        return _layers().ConvEncoder(c, p, cnn_out_hw(p, h, w))

    @classmethod
    def example(cls):
        return {"channels": [4, 8], "norm": "group", "out": 6}, [TType((3, 9, 9))]


# ------------------------------------------------------------------------------------ vit
class ViTParams(Params):
    patch: DimInt = 16  # patch side in pixels
    tubelet: DimInt = 1  # frames per token for clips [C, T, H, W] (V-JEPA uses 2)
    dim: DimInt = 192  # token width
    depth: Annotated[int, Field(ge=0)] = 12  # transformer blocks
    heads: DimInt = 3
    mlp_ratio: Annotated[float, Field(gt=0)] = 4.0  # MLP hidden width / dim
    pos: Literal["sincos", "learned"] = "sincos"  # fixed 2-D/3-D sin-cos (I-JEPA) or trained table


def vit_grid(p: ViTParams, t: TType) -> tuple[int, ...]:
    """Token grid: (H/p, W/p) for images, (T/tubelet, H/p, W/p) for clips."""
    sizes = t.shape[1:]
    steps = (p.patch, p.patch) if len(sizes) == 2 else (p.tubelet, p.patch, p.patch)
    names = ("height", "width") if len(sizes) == 2 else ("frames", "height", "width")
    for n, s, k in zip(names, sizes, steps):
        if s % k:
            what = "tubelet" if n == "frames" else "patch"
            raise ShapeMismatch(f"needs the {n} ({s}) divisible by `{what}` ({k}) on input 0", 0, None,
                                f"choose a `{what}` that divides {s}")
    return tuple(s // k for s, k in zip(sizes, steps))


@register_block("vit", kind="encoder")
class EncoderViT(BlockType):
    """ViT encoder: image [C, H, W] or clip [C, T, H, W] (+ keep-indices [K]) -> tokens [N or K, dim]."""

    Params = ViTParams
    arity = (1, 2)
    input_names = ("image", "keep_indices")

    def infer(self, p, ins):
        _image(ins[0], 0, (3, 4))
        grid = vit_grid(p, ins[0])
        if len(grid) == 2 and p.tubelet != 1:
            raise ShapeMismatch(f"has `tubelet: {p.tubelet}` but input 0 is an image, not a clip [B, C, T, H, W]",
                                0, "[B, C, T, H, W]", "remove `tubelet`, or feed a clip")
        if p.pos == "sincos" and sincos_split(p.dim, len(grid)) is None:
            raise ShapeMismatch(f"needs `dim` {sincos_requirement(len(grid))} for {len(grid)}-D sin-cos "
                                f"positions, got {p.dim}", None, hint="change `dim`, or use `pos: learned`")
        check_heads(p.dim, p.heads)
        n = math.prod(grid)
        if len(ins) == 2:
            check_indices(ins[1], 1, "keep-indices")
            if ins[1].shape[0] > n:
                raise ShapeMismatch(f"keeps at most the {n} tokens of a {'x'.join(map(str, grid))} grid on input 1",
                                    1, f"[B, <={n}] (long)")
            n = ins[1].shape[0]
        return TType((n, p.dim))

    def build(self, p, ins):
        return _layers().ViT(ins[0].shape[0], vit_grid(p, ins[0]), p)

    def index_bound(self, p, ins, index):
        return math.prod(vit_grid(p, ins[0]))

    @classmethod
    def example(cls):
        return ({"patch": 4, "dim": 16, "depth": 1, "heads": 2},
                [TType((3, 8, 12)), TType((3,), "long")])
