"""The planning methods by name: ``make_planner("cem", samples=512)``, ``make_planner("icem+gradient")``.

``X+gradient`` refines sampling method X's result by gradient descent (:class:`~.gradient.Refine`);
its options are split by owner: the sampler's (``samples``, ``elites``, ...), the descent's
(``steps``, ``lr``, ``optimizer``) and ``refine`` (how many starts).
"""
from __future__ import annotations

from typing import Any

from ..core.errors import SpecError, did_you_mean
from .base import Planner, options_of
from .gradient import Gradient, Refine
from .mppi import MPPI
from .sampling import CEM, ICEM, Sampler

PLANNERS: dict[str, type[Planner]] = {"cem": CEM, "icem": ICEM, "mppi": MPPI, "gradient": Gradient}
SAMPLERS = ("cem", "icem", "mppi")
METHODS = (*PLANNERS, *(f"{s}+gradient" for s in SAMPLERS))


def make_planner(method: str | Planner, **options: Any) -> Planner:
    """The planner called ``method`` with hyperparameters ``options`` (unknown names and bad values
    are SpecErrors naming the valid ones); a :class:`Planner` instance is returned as it is."""
    if isinstance(method, Planner):
        if options:
            raise SpecError(f"options {sorted(options)} go to a planner by name; `{method.name}` is built already",
                            hint="set them on the planner you pass, e.g. CEM(samples=512)")
        return method
    if not isinstance(method, str) or (method not in METHODS):
        raise SpecError(f"unknown planning method `{method}`", hint=did_you_mean(str(method), METHODS, "methods"))
    base, _, refine = method.partition("+")
    if not refine:
        return _build(PLANNERS[base], options, method)
    cls = PLANNERS[base]
    mine, theirs = set(options_of(cls)), {"steps", "lr", "optimizer"}
    unknown = [k for k in options if k not in mine | theirs | {"refine"}]
    if unknown:
        raise SpecError(f"`{method}` has no option `{unknown[0]}`",
                        hint=did_you_mean(unknown[0], sorted(mine | theirs | {"refine"}), "options"))
    sampler = _build(cls, {k: v for k, v in options.items() if k in mine}, method)
    grad = dict(steps=20, lr=0.05, restarts=1)
    grad.update({k: v for k, v in options.items() if k in theirs})
    assert isinstance(sampler, Sampler)
    return Refine(sampler=sampler, gradient=_build(Gradient, grad, method), refine=options.get("refine", 4))


def _build(cls: type[Planner], options: dict[str, Any], method: str) -> Planner:
    known = options_of(cls)
    for k in options:
        if k not in known:
            raise SpecError(f"`{method}` has no option `{k}`", hint=did_you_mean(k, known, "options"))
    return cls(**options)
