"""The one input check: does a batch fit a program's inputs? Model calls, training and energy
minimisation all ask it, so one bad batch gets one located message whichever path it takes.

The signature is data, passed in: one entry per input with ``name`` (the keyword), ``ttype``
(per-sample ``shape`` and ``dtype``: float | long | bool; None when unknown), ``loc`` (where the
spec declares it) and ``steps`` (True: one value per rollout step, (B, H, *shape)); ``str()`` of
an entry is its batched type, ``[B, 4]``. The compiler's
:class:`~jepa_graph.compiler.programs.Arg` is one; nothing here imports the compiler.

Checks, in order: every input is there; each is a tensor with a batch dim, the declared
per-sample shape and dtype, floats in the weights' dtype and on their device; all share one batch
size (and a rollout's step inputs one horizon); with ``unexpected``, no other keyword is given.
The first problem is a :class:`Diagnostic` at the input's declaration, with a hint.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch

from ..core.errors import BlockRuntimeError, Diagnostic, SpecError, closest


class InputError(SpecError, BlockRuntimeError):
    """Inputs that do not fit a program: a located :class:`SpecError` (bad user input, with a hint),
    and a :class:`BlockRuntimeError` for code that catches a program's run-time failures."""


def dtype_kind(v: torch.Tensor) -> str:
    """A tensor's dtype as a spec writes it: float, long (int64; index ops need it) or bool."""
    if v.dtype == torch.bool:
        return "bool"
    return "float" if v.is_floating_point() else "long" if v.dtype == torch.int64 else str(v.dtype).removeprefix("torch.")


def input_problem(args: Iterable[Any], inputs: Mapping[str, Any], *, weights: torch.Tensor | None = None,
                  device: bool = True, owner: str = "the model", unexpected: str | None = None) -> Diagnostic | None:
    """The first way ``inputs`` do not fit ``args`` (see the module doc), or None.

    ``weights``: a floating parameter whose dtype (and, with ``device``, device) float inputs must
    share; ``owner``: the model's name in messages; ``unexpected``: the program's description
    (``program `forward` of `tiny```) when keywords it does not take are an error."""
    args = list(args)
    missing = [a for a in args if a.name not in inputs]
    extra = [k for k in inputs if all(k != a.name for a in args)] if unexpected else []
    if missing:
        names = ", ".join(f"`{a.name}`" for a in missing)
        hint = "add " + ", ".join(f"`{a.name}` {a}" for a in missing) + " to the batch"
        if extra:
            near = closest(extra[0], [a.name for a in missing])
            hint += f"; {unexpected} takes no `{extra[0]}`" + (f" (did you mean `{near[0]}`?)" if near else "")
        return Diagnostic(f"input {names} is missing" if len(missing) == 1 else f"inputs {names} are missing",
                          missing[0].loc, hint)
    for a in args:
        bad = _problem(a, inputs[a.name], weights, device, owner)
        if bad is not None:
            return bad
    for what, dim, picked in (("batch size", 0, args), ("horizon H", 1, [a for a in args if getattr(a, "steps", False)])):
        sizes = {a.name: inputs[a.name].shape[dim] for a in picked}
        if len(set(sizes.values())) > 1:
            first = next(iter(sizes.values()))
            odd = next(a for a in picked if sizes[a.name] != first)
            unit = "" if dim == 0 else " steps"
            return Diagnostic(f"the inputs disagree on the {what}: " + ", ".join(f"`{k}` has {b}{unit}" for k, b in sizes.items()),
                              odd.loc, "give every input B rows" if dim == 0 else "give every step input H steps: (B, H, ...)")
    if extra:
        return Diagnostic(f"unexpected input `{extra[0]}`", None,
                          f"{unexpected} takes ({', '.join(a.name for a in args)})")
    return None


def check_inputs(args: Iterable[Any], inputs: Mapping[str, Any], **kw: Any) -> None:
    """Raise :class:`InputError` for the first problem :func:`input_problem` finds."""
    bad = input_problem(args, inputs, **kw)
    if bad is not None:
        raise InputError(bad)


def _problem(a: Any, v: Any, weights: torch.Tensor | None, device: bool, owner: str) -> Diagnostic | None:
    key, want, loc = a.name, a.ttype, a.loc
    if not isinstance(v, torch.Tensor):
        kind = "float32" if want is None or want.dtype == "float" else {"long": "long"}.get(want.dtype, want.dtype)
        got = type(v).__name__ if type(v).__module__ == "builtins" else f"{type(v).__module__}.{type(v).__name__}"
        return Diagnostic(f"input `{key}` should be a torch tensor{f' {a}' if want is not None else ''}, got {got}", loc,
                          f"convert it: `torch.as_tensor({key}, dtype=torch.{kind})`")
    if v.dim() == 0:
        return Diagnostic(f"input `{key}` has no batch dim", loc, f"a batch of one is `{key}[None]`")
    if want is not None:
        lead = 2 if getattr(a, "steps", False) else 1  # (B, H, ...) for a rollout's step inputs
        if v.dim() < lead or tuple(v.shape[lead:]) != tuple(want.shape):
            how = "the batch dim comes first, then the declared shape" if lead == 1 else \
                "a rollout takes one per step: the batch dim, the horizon H, then the declared shape"
            unbatched = f"; a batch of one is `{key}[None]`" if lead == 1 and tuple(v.shape) == tuple(want.shape) else ""
            return Diagnostic(f"input `{key}` should be {a}, got {list(v.shape)}", loc, how + unbatched)
        if dtype_kind(v) != want.dtype:  # float | long | bool, each a tensor method
            return Diagnostic(f"input `{key}` holds {want.dtype} values ({a}), got a {v.dtype} tensor", loc,
                              f"convert it: `{key}.{want.dtype}()`")
    if weights is not None and v.is_floating_point() and v.dtype != weights.dtype:
        return Diagnostic(f"input `{key}` is {v.dtype} but the weights of `{owner}` are {weights.dtype}", loc,
                          f"convert it: `{key}.to({weights.dtype})` (or the model: `model.to({v.dtype})`)")
    if device and weights is not None and v.device != weights.device:
        return Diagnostic(f"input `{key}` is on {v.device} but the weights of `{owner}` are on {weights.device}", loc,
                          f"move it: `{key}.to(\"{weights.device}\")`")
    return None
