"""A data source's parameters (``train.data.with``): the strict base model, ``[lo, hi]`` range
types, and the located errors a bad ``with:`` gets. Imports no torch: ``jepa-graph validate``
checks ``train.data`` with these before anything is sampled.

Example::

    class MyParams(SourceParams):
        noise: float = Field(0.1, ge=0, description="observation noise")
    params_problems("my_source", MyParams, {"nosie": 0.2})   # (None, [Diagnostic(... did you mean `noise`?)])
"""
from __future__ import annotations

from typing import Annotated, Any, Callable, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from ..core.errors import Diagnostic, Location, did_you_mean
from ..frontend.train_config import _number

__all__ = ["SourceParams", "FractionRange", "PositiveRange", "params_problems"]


class SourceParams(BaseModel):
    """Base for a source's parameters (``train.data.with``). Strict: unknown keys are errors, and a
    number is a number: ``episodes: true`` is not 1 and ``noise: "0.1"`` is text (``1e-3`` is fine)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # `noise: .inf` is no setting

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, v: Any, info: ValidationInfo) -> Any:
        ann = cls.model_fields[info.field_name].annotation
        if (_takes(ann, int) or _takes(ann, float)) and not (_takes(ann, bool) or _takes(ann, str)):
            for x in v if isinstance(v, (list, tuple)) else [v]:
                _number(x)  # raises on `true` and on text that is no number
        return v


def _takes(ann: Any, t: type) -> bool:
    """Whether annotation ``ann`` (``int | None``, ``tuple[float, float]``, ``Annotated[...]``) accepts ``t`` values."""
    return ann is t or ann is Any or any(_takes(a, t) for a in get_args(ann))


def _ordered(lo_hi: tuple[float, float]) -> tuple[float, float]:
    if lo_hi[0] > lo_hi[1]:
        raise ValueError(f"[{lo_hi[0]:g}, {lo_hi[1]:g}] is a [lo, hi] range: lo must not exceed hi")
    return lo_hi


def _fractions(lo_hi: tuple[float, float]) -> tuple[float, float]:
    if not all(0 < x <= 1 for x in lo_hi):
        raise ValueError(f"[{lo_hi[0]:g}, {lo_hi[1]:g}] are fractions of the frame: each in (0, 1]")
    return _ordered(lo_hi)


def _positive(lo_hi: tuple[float, float]) -> tuple[float, float]:
    if not all(x > 0 for x in lo_hi):
        raise ValueError(f"[{lo_hi[0]:g}, {lo_hi[1]:g}] are ratios: each above 0")
    return _ordered(lo_hi)


FractionRange = Annotated[tuple[float, float], AfterValidator(_fractions)]
"""A ``[lo, hi]`` range of fractions (of an image's area or side): 0 < lo <= hi <= 1."""
PositiveRange = Annotated[tuple[float, float], AfterValidator(_positive)]
"""A ``[lo, hi]`` range of positive ratios (aspect ratios): 0 < lo <= hi."""


def params_problems(name: str, Params: type[SourceParams], params: dict[str, Any],
                    at: Callable[..., Location | None]) -> tuple[SourceParams | None, list[Diagnostic]]:
    """``params`` validated as source ``name``'s ``Params``: (the parameters, []) or (None, one
    located diagnostic per problem, in pydantic's order). ``at(*path)`` locates a path under
    ``train.data`` (``at("with", "noise")``)."""
    try:
        return Params.model_validate(params), []
    except ValidationError as e:
        return None, [_diagnostic(name, Params, err, at) for err in e.errors()]


def _diagnostic(name: str, Params: type[SourceParams], err: Any, at: Callable[..., Location | None]) -> Diagnostic:
    key = ".".join(str(x) for x in err["loc"])
    allowed = list(Params.model_fields)
    if not err["loc"]:  # a rule over several parameters (a model validator): located at `with:`
        msg = err["msg"].removeprefix("Value error, ")
        return Diagnostic(f"data source `{name}`: {msg}", at("with"), "parameters of `" + name + "`: " + ", ".join(allowed))
    field = Params.model_fields.get(str(err["loc"][0]))
    if err["type"] == "extra_forbidden":
        hint = did_you_mean(str(err["loc"][-1]), allowed, "parameters")
    elif field is not None and field.default is not None and not field.is_required():
        default = list(field.default) if isinstance(field.default, tuple) else \
            str(field.default).lower() if isinstance(field.default, bool) else field.default
        hint = f"`{err['loc'][0]}` is {default} unless set (parameters of `{name}`: {', '.join(allowed)})"
    else:
        hint = "parameters of `" + name + "`: " + ", ".join(allowed)
    msg = err["msg"].removeprefix("Value error, ")
    return Diagnostic(f"data source `{name}`: `{key}`: {msg}", at("with", *err["loc"]), hint)
