"""The spaces the searches move in: continuous (real, or a box) and discrete, of any shape.

A search holds its candidates as named tensors of rows ``c * B + b`` (candidate ``c`` of problem
``b``), one tensor per space, each row one point of the space, of shape :attr:`Space.value_shape`:

============== ================================================================================
``Continuous`` real values of ``shape``, optionally within ``[lo, hi]`` (floats, or tensors that
               broadcast to ``shape``: bounds per element). A point is a float tensor ``shape``.
``Discrete``   ``shape`` independent choices of ``k`` values each. A point is their one-hot
               encoding, a float tensor ``(*shape, k)``: how a discrete value enters a graph.
============== ================================================================================

A latent ``z: [8] box(-1, 1)`` is ``Continuous((8,), -1, 1)``; a discrete latent ``[K]`` is
``Discrete((), K)``; a planner's action sequence of horizon H is ``Continuous((H, A), lo, hi)``.

Example::

    a = Continuous((16, 2), -1.0, 1.0)        # 16 steps of a 2-D action in [-1, 1]
    x = a.sample(64)                          # (64, 16, 2) uniform in the box
    a.inside(a.project(3 * x)).all()          # True
    M, vals = combinations({"z": Discrete((2,), 3)})   # 9 joint values: vals["z"] (9, 2, 3)
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

Bound = float | torch.Tensor | None  # None: unbounded on that side


@dataclass(frozen=True, eq=False)
class Space(ABC):
    """What every space offers the searches; rows are points, ``(n, *value_shape)``."""

    shape: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if any(d < 1 for d in self.shape):
            raise ValueError(f"a space's dims must be >= 1, got shape {self.shape}")

    @property
    def value_shape(self) -> tuple[int, ...]:
        """The shape of one point as a tensor."""
        return self.shape

    @abstractmethod
    def init(self, n: int, device=None) -> torch.Tensor:
        """Where a search starts without a guess: the prior's mode, ``n`` rows."""

    @abstractmethod
    def sample(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the space's search prior."""

    @abstractmethod
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (n, *value_shape) onto the space."""

    @abstractmethod
    def inside(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) True where row ``x[i]`` lies in the space."""


@dataclass(frozen=True, eq=False)
class Continuous(Space):
    """Real values of ``shape``; ``lo``, ``hi`` bound them (None: unbounded on that side).

    A bound is a float or a tensor that broadcasts to ``shape`` (an action's own range per
    component). The prior is uniform on a box (both bounds), else N(0, 1) projected."""

    lo: Bound = None
    hi: Bound = None

    def __post_init__(self):
        super().__post_init__()
        for side in ("lo", "hi"):
            b = getattr(self, side)
            if isinstance(b, torch.Tensor):
                if torch.broadcast_shapes(b.shape, self.shape) != self.shape:
                    raise ValueError(f"bound `{side}` of shape {list(b.shape)} is not one value per element "
                                     f"of the space's shape {list(self.shape)}")
                b = b.float()
            elif b is not None:
                b = float(b)
                if math.isinf(b) and (b < 0) == (side == "lo"):
                    b = None  # -inf below, +inf above: no bound
            object.__setattr__(self, side, b)
        if isinstance(self.lo, torch.Tensor) != isinstance(self.hi, torch.Tensor) and self.box:
            object.__setattr__(self, "lo", torch.as_tensor(self.lo, dtype=torch.float))  # clamp takes two
            object.__setattr__(self, "hi", torch.as_tensor(self.hi, dtype=torch.float))  # of a kind
        if self.box and bool(torch.as_tensor(self.lo > self.hi).any()):
            raise ValueError(f"a box needs lo <= hi, got lo={self.lo}, hi={self.hi}")

    @property
    def box(self) -> bool:
        """Bounded on both sides."""
        return self.lo is not None and self.hi is not None

    def bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The bounds as tensors ``value_shape`` in the dtype and device of ``like`` (+-inf where unbounded)."""
        def full(b, default):
            b = default if b is None else b
            return torch.as_tensor(b, dtype=like.dtype, device=like.device).expand(self.shape)
        return full(self.lo, -math.inf), full(self.hi, math.inf)

    def prior_std(self) -> float | torch.Tensor:
        """The spread of the prior: half the box's width, else 1."""
        return (self.hi - self.lo) / 2 if self.box else 1.0

    def init(self, n: int, device=None) -> torch.Tensor:
        return self.project(torch.zeros(n, *self.shape, device=device))

    def sample(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.box:
            u = torch.rand(n, *self.shape, device=device, generator=generator)
            return self.lo + (self.hi - self.lo) * u if isinstance(self.lo, float) else \
                _on(self.lo, u) + (_on(self.hi, u) - _on(self.lo, u)) * u
        return self.project(torch.randn(n, *self.shape, device=device, generator=generator))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.lo is None and self.hi is None:
            return x
        return x.clamp(_on(self.lo, x), _on(self.hi, x))

    def project_(self, x: torch.Tensor) -> None:
        """:meth:`project` in place."""
        if self.lo is not None or self.hi is not None:
            x.clamp_(_on(self.lo, x), _on(self.hi, x))

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        if self.lo is not None:
            ok &= (x >= _on(self.lo, x)).flatten(1).all(1)
        if self.hi is not None:
            ok &= (x <= _on(self.hi, x)).flatten(1).all(1)
        return ok


@dataclass(frozen=True, eq=False)
class Discrete(Space):
    """``shape`` independent choices among ``k`` values; a point is their one-hot ``(*shape, k)``."""

    k: int = 2

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.k, bool) or int(self.k) != self.k or self.k < 1:
            raise ValueError(f"a discrete space needs k >= 1 values, got k={self.k!r}")
        object.__setattr__(self, "k", int(self.k))

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (*self.shape, self.k)

    @property
    def count(self) -> int:
        """How many points the space has: k ** prod(shape)."""
        return self.k ** math.prod(self.shape)

    def one_hot(self, idx: torch.Tensor) -> torch.Tensor:
        """(n, *shape) long -> (n, *shape, k) float one-hot."""
        return torch.eye(self.k, device=idx.device)[idx]  # F.one_hot checks the range: a sync per call

    def init(self, n: int, device=None) -> torch.Tensor:
        return self.one_hot(torch.zeros(n, *self.shape, dtype=torch.long, device=device))

    def sample(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform one-hots."""
        return self.one_hot(torch.randint(0, self.k, (n, *self.shape), device=device, generator=generator))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Points are one-hots already: unchanged (a search only ever proposes one-hots)."""
        return x

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) True where every choice of the row is a one-hot."""
        hot = ((x == 0) | (x == 1)).all(-1) & (x.sum(-1) == 1)  # (n, *shape)
        return hot.flatten(1).all(1) if hot.dim() > 1 else hot


def combinations(spaces: dict[str, Space], device=None) -> tuple[int, dict[str, torch.Tensor]]:
    """Every joint value of the discrete spaces among ``spaces``: ``(M, values)``, ``values``
    mapping each discrete space's name to its (M, *value_shape) one-hots, M = prod of their
    :attr:`Discrete.count` (the first space varies slowest). ``(1, {})`` without discrete spaces."""
    disc = {name: s for name, s in spaces.items() if isinstance(s, Discrete)}
    if not disc:
        return 1, {}
    cells = [math.prod(s.shape) for s in disc.values()]  # independent choices per space
    axes = [torch.arange(s.k, device=device) for s, c in zip(disc.values(), cells) for _ in range(c)]
    grids = [g.flatten() for g in torch.meshgrid(*axes, indexing="ij")]  # one (M,) per choice
    out, i = {}, 0
    for (name, s), c in zip(disc.items(), cells):
        idx = torch.stack(grids[i:i + c], 1).view(-1, *s.shape)  # (M, *shape)
        out[name], i = s.one_hot(idx), i + c
    return grids[0].numel(), out


def _on(b: Bound, x: torch.Tensor):
    """A bound as ``clamp`` takes it beside ``x``: a float as is, a tensor on x's device and dtype."""
    return b.to(x) if isinstance(b, torch.Tensor) else b
