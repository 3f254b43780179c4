"""What each built-in data source takes and yields, known without torch: its ``Params`` (the
``train.data.with`` keys), a one-line description, and what a batch holds, per key: the shape as
text (``[B, H+1, obs]``) for people, and as a function of the parameters and the spec's inputs
(:class:`~jepa_graph.core.tensors.TType` per key) for checks. The sources' sampling code (torch)
lives in the modules named here and uses the same functions to size itself, so this is not a
second description that could drift (``tests/data/test_catalog.py`` compares it with real batches).

``jepa-graph validate`` checks ``train.data`` with it (:mod:`jepa_graph.data.check`);
``jepa-graph info --data [NAME]`` and the README's table show it (:mod:`jepa_graph.data.describe`).

Example::

    info = CATALOG["two_rooms"]
    p = info.Params(horizon=4)
    info.yields(p, {})["x_seq"]          # TType((5, 2)): per sample, 5 states of 2 numbers
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import Field, model_validator

from ..core.tensors import TType
from .params import FractionRange, PositiveRange, SourceParams

Inputs = dict[str, TType]  # the spec's top-level inputs and actions: name -> per-sample TType


@dataclass(frozen=True)
class Yield:
    """One key of a source's batches: its shape as text (``[B, H+1, obs]``), dtype and meaning."""

    shape: str
    about: str
    dtype: str = "float"  # float | long | bool, as TType

    def text(self) -> str:
        return self.shape + ("" if self.dtype == "float" else f" ({self.dtype})")  # as TType prints


@dataclass(frozen=True)
class SourceInfo:
    """A data source as the checker, ``info --data`` and the README see it (no torch).

    ``yields(params, inputs)``: key -> per-sample TType of each batch; ``fits(params, inputs)``:
    why the parameters do not fit the spec's inputs, or None (the source's constructor raises it).
    Both are None for a user's source, whose batches are known only once it runs."""

    name: str
    Params: type[SourceParams]
    doc: str  # one line
    keys: dict[str, Yield] = field(default_factory=dict)  # every key it may yield
    symbols: str = ""  # what the letters in the shapes stand for
    main: tuple[str, ...] = ()  # the `with:` keys most runs set (the README's table)
    module: str | None = None  # the module of jepa_graph.data that registers it
    yields: Callable[[Any, Inputs], dict[str, TType]] | None = None
    fits: Callable[[Any, Inputs], str | None] | None = None

    def require_fit(self, params: Any, inputs: Inputs) -> None:
        """Raise ValueError saying why ``params`` do not fit the spec's ``inputs`` (the source's
        constructor calls this; :func:`~jepa_graph.data.make_source` reports it at ``train.data.with``)."""
        why = self.fits(params, inputs) if self.fits is not None else None
        if why:
            raise ValueError(why)

    @classmethod
    def of(cls, name: str, source: type) -> "SourceInfo":
        """What a registered class (a user's source) tells without running: its Params and docstring."""
        doc = (source.__doc__ or "").strip().splitlines()
        return cls(name, source.Params, doc[0] if doc else "")


def _image(t: TType | None) -> bool:
    return t is not None and len(t.shape) == 3


# ------------------------------------------------------------------------------------ two_rooms
MAX_COLLECTED_STEPS = 2 ** 26  # ~67M steps (~1.3 GB of states and actions): more does not fit a laptop


class TwoRoomsParams(SourceParams):
    episodes: int = Field(512, ge=1, description="trajectories collected at start")
    length: int = Field(32, ge=1, description="steps per trajectory")
    policy: str = Field("mixed", pattern="^(random|expert|mixed)$",
                        description="collection policy; mixed: half of the episodes each")
    noise: float = Field(0.5, ge=0, le=10, description="expert action noise (std; actions lie in [-1, 1])")
    door: float = Field(0.4, gt=0, le=2, description="door width (the rooms span [-1, 1])")
    speed: float = Field(0.1, gt=0, description="displacement per step at |a| = 1")
    obs: str = Field("auto", pattern="^(auto|state|pixels)$",
                     description="auto: pixels when the spec's x is an image")
    horizon: int = Field(0, ge=0, description="> 0: also yield x_seq, a_seq of this many steps")

    @model_validator(mode="after")
    def _fits_in_memory(self) -> "TwoRoomsParams":
        # collected once at start: states and actions of every step, ~20 bytes each
        if self.episodes * (self.length + 1) > MAX_COLLECTED_STEPS:
            raise ValueError(f"episodes x (length + 1) = {self.episodes * (self.length + 1):,} steps is more than "
                             f"the {MAX_COLLECTED_STEPS:,} a source collects up front; lower episodes or length")
        return self


def two_rooms_view(p: TwoRoomsParams, inputs: Inputs) -> tuple[bool, int]:
    """(pixels?, image side): pixels with ``obs: pixels``, or ``auto`` and an image ``x`` in the
    spec, whose side sets the size (64 otherwise)."""
    x = inputs.get("x")
    return p.obs == "pixels" or (p.obs == "auto" and _image(x)), x.shape[-1] if _image(x) else 64


def _two_rooms_fits(p: TwoRoomsParams, inputs: Inputs) -> str | None:
    if p.horizon >= p.length:
        return f"horizon {p.horizon} needs trajectories longer than length {p.length}"
    return None


def _two_rooms_yields(p: TwoRoomsParams, inputs: Inputs) -> dict[str, TType]:
    pixels, size = two_rooms_view(p, inputs)
    obs, H = ((3, size, size) if pixels else (2,)), p.horizon
    out = {"x": obs, "a": (2,), "x_next": obs, "goal": obs, "state": (2,), "state_next": (2,)}
    if H:
        out |= {"x_seq": (H + 1, *obs), "a_seq": (H, 2)}
    return {k: TType(s) for k, s in out.items()}


TWO_ROOMS = SourceInfo(
    "two_rooms", TwoRoomsParams,
    "transitions of a 2-D agent in two rooms joined by a door (states or pixels), from random-walk and expert policies",
    {"x": Yield("[B, obs]", "an observation"),
     "x_next": Yield("[B, obs]", "the observation after action a"),
     "goal": Yield("[B, obs]", "the episode's goal, observed"),
     "a": Yield("[B, 2]", "the action taken in x, in [-1, 1]"),
     "state": Yield("[B, 2]", "the position behind x"),
     "state_next": Yield("[B, 2]", "the position behind x_next"),
     "x_seq": Yield("[B, H+1, obs]", "H+1 observations in a row (with horizon H > 0)"),
     "a_seq": Yield("[B, H, 2]", "the H actions between them (with horizon H > 0)")},
    "obs: [2] positions, or [3, S, S] images with `obs: pixels`, or `auto` and a spec whose x is [3, S, S] "
    "(S = 64 otherwise); H: horizon",
    ("episodes", "length", "policy", "obs", "horizon"), "two_rooms", _two_rooms_yields, _two_rooms_fits)


# ------------------------------------------------------------------------------- two_rooms_wall
WALL_SIDE = 65  # the arena's side in pixels (jepa_graph.envs.wall_rooms)


class TwoRoomsWallParams(SourceParams):
    episodes: int = Field(1024, ge=1, le=1_000_000, description="trajectories collected at start (~1.5 kB each)")
    length: int = Field(90, ge=1, le=10_000, description="steps per trajectory: 91 states, as published")
    horizon: int = Field(16, ge=1, description="steps per served window (x_seq has horizon + 1), <= length")
    door_share: float = Field(0.25, ge=0, le=1, description="share of trajectories forced through the door")
    variant: str = Field("random", pattern="^(random|fixed)$",
                         description="per-trajectory layouts, or wall 32 door 18")
    kappa: float = Field(5.0, gt=0, le=1e4, description="concentration of the heading's turns")
    obs: str = Field("auto", pattern="^(auto|state|pixels)$",
                     description="auto: pixels when the spec's x is an image")


def wall_pixels(p: TwoRoomsWallParams, inputs: Inputs) -> bool:
    """Images with ``obs: pixels``, or ``auto`` and an image ``x`` in the spec."""
    return p.obs == "pixels" or (p.obs == "auto" and _image(inputs.get("x")))


def _wall_fits(p: TwoRoomsWallParams, inputs: Inputs) -> str | None:
    if p.horizon > p.length:
        return f"horizon {p.horizon} needs trajectories of at least as many steps (length {p.length})"
    return None


def _wall_yields(p: TwoRoomsWallParams, inputs: Inputs) -> dict[str, TType]:
    obs, H = ((2, WALL_SIDE, WALL_SIDE) if wall_pixels(p, inputs) else (4,)), p.horizon
    return {"x": TType(obs), "a": TType((2,)), "x_next": TType(obs), "blocked": TType((), "bool"),
            "goal": TType(obs), "x_seq": TType((H + 1, *obs)), "a_seq": TType((H, 2)),
            "blocked_seq": TType((H,), "bool"), "state": TType((4,)), "state_next": TType((4,)),
            "state_seq": TType((H + 1, 4)), "through": TType((), "bool")}


TWO_ROOMS_WALL = SourceInfo(
    "two_rooms_wall", TwoRoomsWallParams,
    "windows of offline random walks in the published Two Rooms protocol (65x65 px, walls stop moves)",
    {"x": Yield("[B, obs]", "the window's first observation"),
     "x_next": Yield("[B, obs]", "the observation after action a"),
     "goal": Yield("[B, obs]", "the window's last observation"),
     "a": Yield("[B, 2]", "the window's first action, a displacement in pixels"),
     "blocked": Yield("[B]", "a wall stopped action a", "bool"),
     "through": Yield("[B]", "the trajectory is one forced through the door", "bool"),
     "state": Yield("[B, 4]", "the true state behind x: x, y, wall_x, door_y (pixels)"),
     "state_next": Yield("[B, 4]", "the true state behind x_next"),
     "x_seq": Yield("[B, H+1, obs]", "the window's observations"),
     "state_seq": Yield("[B, H+1, 4]", "the true states behind them"),
     "a_seq": Yield("[B, H, 2]", "the window's actions"),
     "blocked_seq": Yield("[B, H]", "the actions a wall stopped", "bool")},
    "obs: [4] states, or [2, 65, 65] images with `obs: pixels`, or `auto` and a spec whose x is an image; "
    "H: horizon",
    ("episodes", "horizon", "door_share", "variant", "obs"), "wall_rooms", _wall_yields, _wall_fits)


# --------------------------------------------------------------------------------------- shapes
class ShapesParams(SourceParams):
    size: int | None = Field(None, ge=8, description="image side; default: from the spec's image input")
    patch: int = Field(8, ge=1, description="patch side for masks (match the encoder's `patch`)")
    scale: FractionRange = Field((0.2, 0.45), description="shape half-size range, fraction of the frame")
    noise: float = Field(0.05, ge=0, description="background noise amplitude")
    n_blocks: int = Field(4, ge=1, description="target blocks per I-JEPA mask")
    target_scale: FractionRange = Field((0.15, 0.2), description="area of each target block, fraction of the image")
    target_aspect: PositiveRange = Field((0.75, 1.5), description="height / width of a target block")
    context_scale: FractionRange = Field((0.85, 1.0), description="area of the context block")
    crop: FractionRange = Field((0.5, 1.0), description="view crop area range (x1/x2)")
    jitter: float = Field(0.4, ge=0, description="view colour jitter")
    flip: bool = Field(True, description="mirror views left-right at random; an invariance to it forgets "
                                         "left from right")


def shapes_size(p: ShapesParams, inputs: Inputs) -> int:
    """The image side: ``size``, else the last dim of the spec's ``image`` (or ``x1``, ``x``), else 32."""
    img = next((inputs[k] for k in ("image", "x1", "x") if k in inputs), None)
    return p.size or (img.shape[-1] if img is not None else 32)


def _shapes_fits(p: ShapesParams, inputs: Inputs) -> str | None:
    size = shapes_size(p, inputs)
    if size % p.patch:
        return f"image size {size} is not a multiple of patch {p.patch}"
    return _masks_fit(inputs, 1, size // p.patch, f"a {size}x{size} image in {p.patch}-px patches")


def _masks_fit(inputs: Inputs, steps: int, side: int, grid: str) -> str | None:
    """Why the spec's ``ctx_idx``, ``tgt_idx`` counts cannot be masks of a (steps, side, side)
    token grid (the same token repeated over ``steps``), or None (also without both)."""
    if not ("ctx_idx" in inputs and "tgt_idx" in inputs):
        return None
    n_ctx, n_tgt = inputs["ctx_idx"].shape[0], inputs["tgt_idx"].shape[0]
    if n_ctx % steps or n_tgt % steps:
        return f"the spec's ctx_idx [{n_ctx}] and tgt_idx [{n_tgt}] are tube masks over {steps} time steps: " \
               f"each count must be a multiple of {steps}"
    if (n_ctx + n_tgt) // steps > side * side:
        return f"the spec's ctx_idx [{n_ctx}] and tgt_idx [{n_tgt}] need {n_ctx + n_tgt} disjoint tokens, " \
               f"but {grid} has {steps * side * side}"
    return None


def _masks(inputs: Inputs) -> dict[str, TType]:
    """``ctx_idx``, ``tgt_idx`` as the spec declares them, when it takes both."""
    if "ctx_idx" in inputs and "tgt_idx" in inputs:
        return {k: TType((inputs[k].shape[0],), "long") for k in ("ctx_idx", "tgt_idx")}
    return {}


def _shapes_yields(p: ShapesParams, inputs: Inputs) -> dict[str, TType]:
    img = TType((3,) + (shapes_size(p, inputs),) * 2)
    out = {"image": img, "label": TType((), "long"), "pos": TType((2,)), "scale": TType(()), **_masks(inputs)}
    if "x1" in inputs or "x2" in inputs:
        out |= {"x1": img, "x2": img}
    return out


SHAPES = SourceInfo(
    "shapes", ShapesParams,
    "coloured shapes at random positions and scales, with I-JEPA multi-block masks or two augmented views",
    {"image": Yield("[B, 3, S, S]", "one shape (disc, square, triangle, ring) on a dark, noisy background"),
     "label": Yield("[B]", "its class, 0..3", "long"),
     "pos": Yield("[B, 2]", "its centre, in [-1, 1]"),
     "scale": Yield("[B]", "its half-size"),
     "ctx_idx": Yield("[B, n_ctx]", "context patches of an I-JEPA mask (when the spec takes ctx_idx and tgt_idx; "
                                    "counts from their shapes)", "long"),
     "tgt_idx": Yield("[B, n_tgt]", "its target patches, disjoint from the context", "long"),
     "x1": Yield("[B, 3, S, S]", "an augmented view of the image (when the spec takes x1 or x2)"),
     "x2": Yield("[B, 3, S, S]", "another view of it")},
    "S: `size`, else the side of the spec's image, x1 or x, else 32; masks cut it into `patch`-px patches",
    ("size", "patch", "crop", "flip"), "shapes", _shapes_yields, _shapes_fits)


# ---------------------------------------------------------------------------------------- video
class VideoParams(SourceParams):
    patch: int = Field(8, ge=1, description="spatial patch (match the encoder)")
    tubelet: int = Field(2, ge=1, description="frames per token (match the encoder)")
    max_speed: float = Field(0.25, ge=0, description="per frame, in units of half the frame")
    target_scale: FractionRange = Field((0.5, 0.6), description="spatial area of each target block, fraction "
                                                                "of the frame")
    n_blocks: int = Field(2, ge=1, description="target blocks per tube mask")


def video_clip(inputs: Inputs) -> tuple[int, int]:
    """(frames, side) of the spec's ``clip`` [3, T, S, S], else (8, 32)."""
    clip = inputs.get("clip")
    _, frames, _, size = clip.shape if clip is not None else (3, 8, 32, 32)
    return frames, size


def _video_fits(p: VideoParams, inputs: Inputs) -> str | None:
    frames, size = video_clip(inputs)
    if size % p.patch or frames % p.tubelet:
        return f"clip {frames}x{size}x{size} does not split into {p.tubelet}x{p.patch}x{p.patch} tubelets"
    return _masks_fit(inputs, frames // p.tubelet, size // p.patch,
                      f"a {frames}x{size}x{size} clip in {p.tubelet}x{p.patch}x{p.patch} tubelets")


def _video_yields(p: VideoParams, inputs: Inputs) -> dict[str, TType]:
    frames, size = video_clip(inputs)
    return {"clip": TType((3, frames, size, size)), "label": TType((), "long"), "velocity": TType((2,)),
            **_masks(inputs)}


VIDEO = SourceInfo(
    "video", VideoParams,
    "short procedural videos of a moving shape, with V-JEPA tube masks",
    {"clip": Yield("[B, 3, T, S, S]", "a shape moving in a straight line, bouncing off the borders"),
     "label": Yield("[B]", "its class, 0..3", "long"),
     "velocity": Yield("[B, 2]", "its velocity per frame"),
     "ctx_idx": Yield("[B, n_ctx]", "context tokens of a tube mask over the (T/tubelet, S/patch, S/patch) grid "
                                    "(when the spec takes ctx_idx and tgt_idx)", "long"),
     "tgt_idx": Yield("[B, n_tgt]", "its target tokens", "long")},
    "T, S: from the spec's clip [3, T, S, S], else 8 and 32",
    ("patch", "tubelet", "max_speed"), "video", _video_yields, _video_fits)


# ----------------------------------------------------------------------------------------- fork
class ForkParams(SourceParams):
    angle: float = Field(math.pi / 6, gt=0, lt=math.pi / 2, description="half-angle between the branches")
    noise: float = Field(0.02, ge=0, description="observation noise on y")
    paired: bool = Field(False, description="samples (2i, 2i+1) share x and take the left, then the right "
                                            "branch (plots)")


FORK = SourceInfo(
    "fork", ForkParams,
    "the fork in the road: a car before a fork and after it, on the left or right branch (a bimodal next state)",
    {"x": Yield("[B, 4]", "the state before the fork: position, velocity"),
     "y": Yield("[B, 4]", "the state after it, on either branch at random"),
     "branch": Yield("[B]", "which: 0 left, 1 right", "long")},
    "", ("noise", "paired"), "fork_source",
    lambda p, inputs: {"x": TType((4,)), "y": TType((4,)), "branch": TType((), "long")})


CATALOG: dict[str, SourceInfo] = {s.name: s for s in (TWO_ROOMS, TWO_ROOMS_WALL, SHAPES, VIDEO, FORK)}
"""The built-in sources by name; each is registered by ``jepa_graph.data.<module>``."""
