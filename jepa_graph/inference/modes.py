"""The set of futures a latent-variable predictor proposes: Pred(s_x, z) over the values of z.

With a discrete latent every value is one mode (a car at a fork: left, right). With a continuous
one, a sample of z from the prior stands for the set. Modes are ranked by their energy when the
target ``y`` is known, otherwise by their prior cost R(z) (lower is likelier; ties keep order).

Example::

    modes = jg.predict_modes(model, {"x": x}, k=2)
    modes.pred.shape        # (B, 2, state): one predicted representation per mode, best first
    modes.z.shape           # (B, 2, 2): the latent values that produced them
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..core.errors import SpecError, did_you_mean
from .latents import (EnergyFn, LatentSpace, NonFiniteEnergyError, check_inputs, latent_spaces, run_subprogram,
                      subprogram)
from ..runtime.locate import first_nonfinite_block


@dataclass
class Modes:
    """Predicted representations per sample, best first."""

    z: torch.Tensor  # (B, k, *z_shape) the latent value of each mode
    pred: torch.Tensor  # (B, k, *s_shape) Pred(s_x, z)
    score: torch.Tensor  # (B, k) energy E(x, y, z) if y was given, else the prior cost R(z)
    ranked_by: str  # "energy" | "prior"


def predict_modes(model, x: torch.Tensor | dict[str, torch.Tensor], k: int | None = None, *,
                  y: dict[str, torch.Tensor] | None = None, over: str | None = None, predictor: str | None = None,
                  samples: int = 64, generator: torch.Generator | None = None) -> Modes:
    """The k best predictions ``Pred(s_x, z)`` of ``model`` for observations ``x``.

    Args:
        x: the predictor's observed inputs, a dict (B, ...) each, or one tensor when it takes one.
        k: modes to keep; default every value of a discrete latent, else ``samples``.
        y: the target inputs (dict); when given, modes are ranked by the energy E(x, y, z).
        over: the latent (default: the world model's, or the only one).
        predictor: the block whose output is a prediction (default: the world model's predictor,
            or the last predictor that depends on the latent).
        samples: draws of a continuous latent from its prior (the prior's mode, 0, is the first).
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise SpecError(f"predict_modes keeps k >= 1 modes per sample, got k={k!r}",
                        hint="leave k out for every mode (each value of a discrete latent, else `samples` draws)")
    space = _latent(model, over)
    pred_name = predictor or _predictor(model, space)
    gm = subprogram(model, f"modes_{pred_name}", {"pred": pred_name})
    args = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    if space.arg not in args:
        raise SpecError(f"predictor `{pred_name}` does not depend on latent `{space.name}`",
                        hint="pass `predictor=` a block downstream of the latent")
    obs_args = [a for a in args if a != space.arg]
    if not isinstance(x, Mapping):
        if len(obs_args) != 1:
            raise SpecError(f"`{pred_name}` takes ({', '.join(obs_args)}); pass them as a dict",
                            hint="e.g. predict_modes(model, {" + ", ".join(f'"{a}": ...' for a in obs_args) + "})")
        x = {obs_args[0]: x}
    missing = [a for a in obs_args if a not in x]
    if missing:
        raise SpecError(f"predictor `{pred_name}` needs {', '.join(f'`{m}`' for m in missing)} in `x`",
                        hint=f"it takes ({', '.join(obs_args)})")
    obs = {a: x[a] for a in obs_args}
    if not obs:
        raise SpecError(f"predictor `{pred_name}` takes only the latent `{space.name}`: no batch to predict for",
                        hint="pick a predictor that takes observations with `predictor=`")
    ranked = {} if y is None else {a: v for a, v in {**x, **y}.items() if a in model.input_names("energy")}
    check_inputs(model, {**obs, **ranked})  # before any block runs: type, shape, dtype, one batch size
    B = next(iter(obs.values())).shape[0]
    device = next(iter(obs.values())).device
    if space.discrete:
        cands = space.one_hot(torch.arange(space.k, device=device))  # (n, K)
    else:
        draws = space.sample(max(samples - 1, 0), device, generator)
        cands = torch.cat([space.default(1, device), draws])  # (n, *shape)
    n = cands.shape[0]
    z = cands.repeat_interleave(B, 0)  # rows c * B + b
    feed = {a: v.repeat(n, *([1] * (v.dim() - 1))) for a, v in obs.items()}
    pred = run_subprogram(model, gm, {**feed, space.arg: z}, f"predictor `{pred_name}`")["pred"]
    if not torch.isfinite(pred).all():  # never rank (or return) NaN predictions silently
        culprit = first_nonfinite_block(gm, {**feed, space.arg: z}) or pred_name
        node = model.graph.nodes.get(culprit)
        where = f"{node.loc}: " if node is not None and node.loc is not None else ""
        what = f"block `{culprit}` ({node.kind}.{node.type})" if node is not None and node.op == "call" \
            else f"input `{culprit}`"
        raise NonFiniteEnergyError(f"{where}predict_modes: the predictions of `{pred_name}` are NaN or infinite; "
                                   f"{what} is the first to give non-finite values")
    if y is not None:
        score = EnergyFn(model, ranked, [space], f"ranking the modes of `{space.name}`")({space.arg: z})
        ranked_by = "energy"
    else:
        score = space.penalty(z, space.regs)
        score = score if isinstance(score, torch.Tensor) else torch.zeros(n * B, device=device)
        ranked_by = "prior"
    score = score.view(n, B)
    keep = min(k or n, n)  # k is None or >= 1
    order = torch.sort(score, dim=0, stable=True).indices[:keep]  # (keep, B)
    rows = (order * B + torch.arange(B, device=device)).T  # (B, keep)
    return Modes(z=z[rows], pred=pred[rows], score=score.T.gather(1, order.T), ranked_by=ranked_by)


def _latent(model, over: str | None) -> LatentSpace:
    spaces = latent_spaces(model)
    if over is not None:
        if over not in spaces:
            raise SpecError(f"`{over}` is not a latent of `{model.spec.name}`", hint=did_you_mean(over, spaces, "latents"))
        return spaces[over]
    wm = model.graph.world_model
    if wm is not None and wm.latent:
        return spaces[wm.latent]
    if len(spaces) != 1:
        raise SpecError(f"`{model.spec.name}` has {len(spaces)} latents; say which with `over=`",
                        hint="latents: " + ", ".join(spaces) if spaces else "declare one under `latents:`")
    return next(iter(spaces.values()))


def _predictor(model, space: LatentSpace) -> str:
    g = model.graph
    wm = g.world_model
    if wm is not None and space.name in g.ancestors([wm.predictor]):
        return wm.predictor
    preds = [n.name for n in g.topo() if n.op == "call" and n.kind == "predictor"
             and space.name in g.ancestors([n.name]) and n.name != space.encoder]
    if not preds:
        raise SpecError(f"no predictor of `{model.spec.name}` takes latent `{space.name}`",
                        hint="wire the latent into a predictor")
    return preds[-1]
