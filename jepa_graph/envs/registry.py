"""The environments by name: ``@register_env("name")`` and ``make(name, n, seed, **params)``."""
from __future__ import annotations

import inspect
from typing import Any

from ..core.errors import SpecError, did_you_mean
from .base import BatchedEnv

_ENVS: dict[str, type[BatchedEnv]] = {}


def register_env(name: str):
    """Class decorator: register a :class:`BatchedEnv` under ``name`` (unique)."""
    def deco(cls: type[BatchedEnv]) -> type[BatchedEnv]:
        if name in _ENVS and _ENVS[name] is not cls:
            raise ValueError(f"environment `{name}` is already registered ({_ENVS[name].__qualname__})")
        _ENVS[name] = cls
        return cls
    return deco


def list_envs() -> list[str]:
    """The registered environments' names."""
    return sorted(_ENVS)


def get_env(name: str) -> type[BatchedEnv]:
    """The environment class registered as ``name``; a SpecError naming the closest ones if none."""
    if name not in _ENVS:
        raise SpecError(f"unknown environment `{name}`", hint=did_you_mean(name, _ENVS, "environments"))
    return _ENVS[name]


def make(name: str, n: int = 16, seed: int | None = 0, **kw: Any) -> BatchedEnv:
    """``n`` copies of environment ``name`` stepped together, seeded with ``seed``; ``kw`` are its
    parameters (e.g. ``door=0.6`` for ``two_rooms``). Call ``reset()`` before ``step``."""
    cls = get_env(name)
    sig = inspect.signature(cls.__init__).parameters
    params = [p for p in sig if p not in ("self", "num_envs", "seed")]
    open_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    for key in kw:
        if key not in params and not open_kw:
            raise SpecError(f"environment `{name}` has no parameter `{key}`",
                            hint=did_you_mean(key, params, "parameters"))
    return cls(n, seed=seed, **kw)
