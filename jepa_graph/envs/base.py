"""The batched environment protocol: ``num_envs`` copies of one task stepped together, in torch.

It follows gymnasium's vector API (``VectorEnv``) so an adapter either way is a thin wrapper:

===================================== ==========================================================
``num_envs``                          how many environments run side by side (N)
``single_observation_space``          :class:`ArraySpec` of one environment's observation
``observation_space``                 the batched one: shape ``(N, *single)``
``single_action_space``               :class:`ArraySpec` of one action, with its ``low``/``high``
``action_space``                      the batched one
``reset(seed=None, options=None)``    -> ``(obs, info)``; ``seed`` reseeds the environment's
                                      generator, ``options={"reset_mask": (N,) bool}`` resets
                                      only those environments
``step(action)``                      ``action`` (N, *action) -> ``(obs, reward, terminated,
                                      truncated, info)``: (N, *obs), (N,) float, (N,) bool,
                                      (N,) bool, a dict of (N, ...) tensors
``success()``                         (N,) bool: which environments reached their goal
``goal``                              (N, *obs) the goal of each environment, as an observation
``render()``                          (N, H, W, 3) uint8 RGB frames, ready for ``plt.imshow``
===================================== ==========================================================

Tensors, not numpy arrays, and batched on the first dim. Environments never reset themselves
(gymnasium's ``AutoresetMode.DISABLED``, stated in ``metadata["autoreset_mode"]``): a planner
or a data collector decides when an episode ends and calls ``reset`` with a ``reset_mask``.
Every draw comes from the environment's own :class:`torch.Generator` (``generator``), so a run
is a pure function of its seed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch


@dataclass(frozen=True)
class ArraySpec:
    """Shape, dtype and range of one tensor (gymnasium's ``Box``), with names for its dims.

    ``names``: one per dim, the spec's dim names where they match (``("obs",)``, ``("C", "H",
    "W")``), so a model's input can be checked against the environment's observation."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    low: float | None = None  # None: unbounded
    high: float | None = None
    names: tuple[str, ...] | None = None

    def batched(self, n: int) -> ArraySpec:
        """The spec of ``n`` of these stacked on a new first dim ``N``."""
        return ArraySpec((n, *self.shape), self.dtype, self.low, self.high,
                         None if self.names is None else ("N", *self.names))

    def contains(self, x: torch.Tensor) -> bool:
        """Whether ``x`` has this shape and dtype and lies in the range."""
        return (tuple(x.shape) == self.shape and x.dtype == self.dtype
                and (self.low is None or bool((x >= self.low).all()))
                and (self.high is None or bool((x <= self.high).all())))


class BatchedEnv(ABC):
    """``num_envs`` environments stepped together; subclasses implement the abstract methods.

    A subclass sets ``single_observation_space`` and ``single_action_space`` and keeps its own
    generator: ``self.generator``, seeded by ``seed`` and again by ``reset(seed=...)``."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": "Disabled", "render_modes": ["rgb_array"]}
    render_mode: str = "rgb_array"
    single_observation_space: ArraySpec
    single_action_space: ArraySpec

    def __init__(self, num_envs: int, seed: int | None = None, device: str | torch.device = "cpu",
                 generator: torch.Generator | None = None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.num_envs, self.device = num_envs, torch.device(device)
        if generator is not None and seed is not None:
            raise ValueError("pass a seed or a generator, not both")
        self.generator = generator if generator is not None else self._seeded(seed)

    def _seeded(self, seed: int | None) -> torch.Generator:
        gen = torch.Generator(self.device)
        if seed is None:
            gen.seed()  # nondeterministic, as gymnasium without a seed
        else:
            gen.manual_seed(seed)
        return gen

    @property
    def observation_space(self) -> ArraySpec:
        return self.single_observation_space.batched(self.num_envs)

    @property
    def action_space(self) -> ArraySpec:
        return self.single_action_space.batched(self.num_envs)

    @abstractmethod
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Start new episodes: ``(obs (N, *obs), info)``. ``seed`` reseeds the generator first;
        ``options["reset_mask"]`` (N,) bool resets only those environments."""

    @abstractmethod
    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                  dict[str, torch.Tensor]]:
        """One step of every environment: ``(obs, reward, terminated, truncated, info)``."""

    @abstractmethod
    def success(self) -> torch.Tensor:
        """(N,) bool: which environments are at their goal now."""

    @property
    @abstractmethod
    def goal(self) -> torch.Tensor:
        """(N, *obs): each environment's goal, as the observation one would see there."""

    @abstractmethod
    def render(self) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB frames of the current states."""

    def close(self) -> None:
        """Release resources (none by default)."""

    def reset_mask(self, options: dict[str, Any] | None) -> torch.Tensor | None:
        """``options["reset_mask"]`` checked: (N,) bool on the env's device, or None."""
        mask = (options or {}).get("reset_mask")
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=self.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != (self.num_envs,):
            raise ValueError(f"reset_mask must be a ({self.num_envs},) bool tensor, "
                             f"got {mask.dtype} {list(mask.shape)}")
        return mask

    def check_action(self, action: torch.Tensor) -> torch.Tensor:
        """``action`` as a float tensor (N, *action) on the env's device, or a ValueError saying why not."""
        action = torch.as_tensor(action, device=self.device)
        want = self.action_space.shape
        if tuple(action.shape) != want:
            raise ValueError(f"step takes actions {list(want)} (num_envs, *action), got {list(action.shape)}")
        if not action.is_floating_point():
            raise ValueError(f"step takes float actions, got {action.dtype}")
        return action.to(self.single_action_space.dtype)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_envs={self.num_envs}, obs={list(self.single_observation_space.shape)}, "
                f"action={list(self.single_action_space.shape)})")
