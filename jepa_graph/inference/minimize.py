"""Inference by energy minimisation: F(x, y) = min_z E(x, y, z), for every sample of a batch at once.

``E`` is the compiled ``energy`` program plus the latents' capacity regularisers R(z) (the ones
the objective lists are already in it; declared ones it does not list are added here, so R
always shapes inference). Methods (see :mod:`jepa_graph.search`):

============ =================================================================================
gradient     per-sample L-BFGS (default) or Adam from the latent encoder's guess, a given
             ``init``, or the prior's mode, and ``restarts - 1`` prior draws; projected onto box
             domains; each sample until it converges or hits the step cap
enumerate    every value of the discrete latents in one batched pass (continuous latents beside
             them are minimised by gradient for each value)
cem          cross-entropy method with ``samples`` candidates and ``elites`` per step
sample       ``samples`` random candidates from the prior, the best kept
============ =================================================================================

Under ``gradient`` discrete latents are enumerated too (a gradient does not move a one-hot).

Defaults of ``gradient`` (a latent's ``inference:`` overrides each), chosen on the fork model
(``specs/fork.jepa``) with its latent made ``[1] box(-2, 2)`` and ``[2] real``, against a dense
grid's minimum (2001 points; 401 x 401 over a square grown until the minimiser is inside, then
refined), 8 samples per model, 10 seeds each at initialisation and after 300 training steps
(320 samples; "missed" = more than 1% above the grid's minimum):

* L-BFGS, not Adam. The energy is piecewise smooth in z (a ReLU predictor); L-BFGS meets the
  tolerances in 2 to about 30 steps. Adam at lr 0.1 needs 80-120 on trained models and at
  initialisation often never meets them (it circles the minimum: 90 of 160 samples hit a cap of
  300). The old default, Adam for 20 steps, missed 245 of 320 (up to +740% on the box, far more
  on trained real latents).
* a cap of 100 steps (Adam: 300): the tolerances end the search, the cap only bounds a stall.
* tol_e = 1e-6 (relative to 1 + |E|) and tol_z = 1e-3, on 2 steps in a row: tol_z = 1e-4
  changes no result here and takes more steps (a sample creeping along a flat valley).
* restarts = 8. The energy has several basins (the fork's point: one per branch) and a ReLU
  network adds small ones, so a single descent, converged or not, may end in the wrong one: one
  start missed 51 of 320 samples (all converged; up to 1400x above the minimum), 4 starts 8,
  8 starts 1 (a basin at |z| = 8, beyond the N(0, 1) draws). The time grows with the starts
  (8 take 4-6x as long as one at B = 256). A latent with an ``l1`` regulariser gets 1: R(z)
  puts z* at or near 0, the first start, and the other starts spend line-search trials at its
  kink (two_rooms: 1 start reaches the grid's minimum on every sample tried; 4 take 5-30x the
  time).

No local search promises the global minimum: ``converged`` says a sample's descent stopped by
the tolerances, not that no lower basin exists; raise ``restarts`` where the energy has many.
The result z* is detached; F is recomputed at z* with gradients to the weights (and inputs),
so ``F.mean().backward()`` trains the model: by the envelope theorem dF/dw = dE/dw at z*.

Example::

    z, F = jg.minimize_energy(model, {"x": x, "y": y}, over="z", method="enumerate")
    z.shape, F.shape                        # (B, 2) one-hot, (B,)
    batch = infer_latents(model, {"x": x, "y": y})   # the batch with z* filled in, for training
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from .. import search
from ..core.errors import SpecError
from .latents import EnergyFn, LatentSpace, NonFiniteEnergyError, encoder_guess, latent_spaces, resolve
from .modes import Modes, predict_modes

log = logging.getLogger(__name__)
METHODS = ("gradient", "enumerate", "cem", "sample")
# when neither the call nor the latent says: a descent's step cap by optimizer, CEM's rounds, step sizes
CAP = {"adam": 300, "lbfgs": 100}
RESTARTS = 8
CEM_ROUNDS = 20
LR = {"adam": 0.1, "lbfgs": 1.0}

__all__ = ["METHODS", "Minimum", "Modes", "minimize_energy", "predict_modes", "free_energy", "infer_latents",
           "latent_encoder_loss", "loss_with_latents"]


@dataclass
class Minimum:
    """What :func:`minimize_energy` found, with ``return_info=True``.

    ``z`` z* (as the plain return gives it), ``F`` (B,); for a gradient descent ``converged``
    (B,) bool, whether the descent that gave a sample's z* passed the convergence test (not
    stopped by the step cap), and ``steps`` (B,) long, the steps it took (enumeration alone:
    all converged in 0 steps). ``cem`` and ``sample`` run a fixed budget with no convergence
    test: None for both. ``capped`` counts the samples that hit the cap."""

    z: torch.Tensor | dict[str, torch.Tensor]
    F: torch.Tensor
    converged: torch.Tensor | None = None
    steps: torch.Tensor | None = None

    @property
    def capped(self) -> int:
        return 0 if self.converged is None else int((~self.converged).sum())


def minimize_energy(model, batch: dict[str, torch.Tensor], over: str | list[str] | None = None,
                    method: str | None = None, *, steps: int | None = None, lr: float | None = None,
                    optimizer: str | None = None, restarts: int | None = None, samples: int = 64, elites: int = 8,
                    init: torch.Tensor | dict[str, torch.Tensor] | None = None, use_encoder: bool = True,
                    max_batch: int | None = None, on_nonfinite: str = "raise",
                    generator: torch.Generator | None = None, tol_e: float | None = None,
                    tol_z: float | None = None, return_info: bool = False):
    """z* = argmin_z E(x, y, z) and F = E(x, y, z*) for every sample of ``batch``.

    Args:
        model: a compiled model (:func:`jepa_graph.compile`).
        batch: observed inputs, (B, ...) each, on the model's device; other latents given here
            are held fixed. Keys the energy does not take are ignored.
        over: a latent name, a list of them, or None for every latent not in ``batch``.
        method: "gradient" | "enumerate" | "cem" | "sample"; None takes the latents' declared
            ``inference.method`` (enumerate when all of them are discrete).
        steps, lr: the gradient descent's step cap / CEM's rounds, and the step size; default
            from the latent's ``inference:``, else a cap of 100 (L-BFGS) / 300 (Adam), 20 CEM
            rounds, lr 1.0 (L-BFGS: its first trial step) / 0.1 (Adam).
        optimizer: "lbfgs" (default) or "adam". Both move every sample (and restart) on its own,
            so a result does not depend on the rest of the batch, and stop a sample once it has
            converged (``tol_e``, ``tol_z``). L-BFGS keeps a curvature history and a backtracking
            line search per sample; ``steps`` counts its outer iterations, each evaluating the
            energy and its gradient once per trial step (once when every sample takes its first;
            a trial whose energy is not finite only shortens the step, so a too-large ``lr`` costs
            trials, not the result). It wants a piecewise smooth energy: at the kink of an L1 R(z)
            it spends trials each step it crosses it.
        restarts: starting points per sample for gradient descent: ``init``, then prior draws
            (one per restart shared by all samples, from a fixed seed, unless ``generator``);
            default the latent's, else 4 (1 with an l1 regulariser).
        tol_e, tol_z: a sample has converged once, on 2 steps in a row, its energy changed by at
            most ``tol_e * (1 + |E|)`` and no coordinate of z moved more than ``tol_z``; default
            the latent's (1e-6, 1e-3). 0 and 0 run every sample to the cap (and warn of none).
        samples, elites: candidates per sample (cem, sample) and how many refit CEM.
        init: start point (B, *shape), or a dict by latent name; else the latent's encoder, else 0.
        max_batch: split candidate evaluations larger than this into chunks (no-grad searches).
        on_nonfinite: "raise" (default) a :class:`NonFiniteEnergyError` naming the block, or
            "skip": log it and rank those candidates last.
        return_info: return a :class:`Minimum` (z, F, per-sample ``converged`` and ``steps``)
            instead of the pair. Without it, samples that hit the step cap are logged (a warning
            naming how many); with it, that is the caller's to report.

    Returns:
        ``(z_star, F)``: z* (B, *shape) detached (one-hot (B, K) for a discrete latent), or a
        dict name -> tensor when ``over`` is a list; F (B,). With ``return_info``, a :class:`Minimum`.
    """
    spaces, given = resolve(model, batch, over)
    B = _batch_size(given, batch, spaces, init)
    device = _device(model, given)
    method = method or _default_method(spaces)
    if method not in METHODS:
        raise SpecError(f"unknown minimisation method `{method}`", hint="use one of: " + ", ".join(METHODS))
    if method == "enumerate" and not any(s.discrete for s in spaces):  # would silently be `gradient`
        raise SpecError(f"`enumerate` needs a discrete latent; {', '.join(f'`{s.name}`' for s in spaces)} "
                        f"{'is' if len(spaces) == 1 else 'are'} {'/'.join(sorted({s.kind for s in spaces}))}",
                        hint="use method=\"gradient\", \"cem\" or \"sample\"")
    cont = next((s for s in spaces if not s.discrete), spaces[0])
    inf = cont.inference
    if restarts is None:
        restarts = inf.restarts if inf.restarts is not None else 1 if "l1" in (cont.regs or {}) else RESTARTS
    if samples < 1 or restarts < 1:
        raise ValueError(f"minimize_energy needs samples >= 1 and restarts >= 1, got {samples} and {restarts}")
    optimizer = optimizer or inf.optimizer
    if optimizer not in CAP:
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    if steps is None:
        steps = inf.steps if inf.steps is not None else CEM_ROUNDS if method == "cem" else CAP[optimizer]
    lr = lr if lr is not None else inf.lr if inf.lr is not None and optimizer == inf.optimizer else \
        LR[optimizer]  # a declared lr is for the declared optimizer
    tol_e = tol_e if tol_e is not None else inf.tol_e
    tol_z = tol_z if tol_z is not None else inf.tol_z
    what = f"`{method}` minimisation over {', '.join(f'`{s.name}`' for s in spaces)}"
    fn = EnergyFn(model, {k: v.detach() for k, v in given.items()}, spaces, what, max_batch, on_nonfinite, hoist=True)
    if fn.B is None:
        fn.B = B
    starts, probs = _starts(model, spaces, batch, init, B, device, use_encoder)
    kw = dict(init=starts, generator=generator, device=device)
    over_spaces = {s.arg: s.space for s in spaces}  # the candidates' keys are the programs' placeholders
    if method in ("gradient", "enumerate"):  # line-search trials: a non-finite energy only rejects the step
        best = search.descend(fn, over_spaces, B, steps=steps, lr=lr, optimizer=optimizer, restarts=restarts,
                              trial=partial(fn, trial=True), tol_e=tol_e, tol_z=tol_z, **kw)
    elif method == "cem":
        best = search.cem(fn, over_spaces, B, steps=steps, samples=samples, elites=elites, probs=probs, **kw)
    else:
        best = search.sample(fn, over_spaces, B, samples=samples, **kw)
    if not torch.isfinite(best.value).all():
        raise NonFiniteEnergyError(f"{what}: every candidate of {int((~torch.isfinite(best.value)).sum())} "
                                   "sample(s) had a non-finite energy (the logged warnings name the block)")
    z_star = {s.name: best.params[s.arg] for s in spaces}
    energy = best.value
    if torch.is_grad_enabled() and (any(p.requires_grad for p in model.parameters())
                                    or any(v.requires_grad for v in given.values())):
        energy = EnergyFn(model, given, spaces, what)({s.arg: z_star[s.name] for s in spaces})
    single = isinstance(over, str) or (over is None and len(spaces) == 1)
    z_out = z_star[spaces[0].name] if single else z_star
    if not return_info:
        capped = best.converged is not None and steps > 0 and (tol_e > 0 or tol_z > 0)  # 0, 0: to the cap, as asked
        if capped and not best.converged.all():
            log.warning("%s: %d of %d sample(s) hit the step cap (steps=%d, %s) before converging "
                        "(|dE| <= %g (1 + |E|) and |dz| <= %g); raise `steps` (the latent's "
                        "`inference: {steps: ...}`) or check `lr`", what, int((~best.converged).sum()), B, steps,
                        optimizer, tol_e, tol_z)
        return z_out, energy
    return Minimum(z_out, energy, best.converged, best.steps)


def free_energy(model, batch: dict[str, torch.Tensor], over: str | list[str] | None = None,
                beta: float = 1.0) -> torch.Tensor:
    """F_beta(x, y) = -1/beta log mean_z exp(-beta E(x, y, z)) over every value of the discrete
    latents, per sample (B,), differentiable in the weights.

    Between the mean energy (beta -> 0) and F = min_z E (beta -> inf). Unlike the minimum, every
    value of z gets gradient in proportion to its softmin weight, so no value is left unused at
    the start of training (the dead-cluster problem of hard assignment); anneal beta upwards."""
    spaces, given = resolve(model, batch, over)
    if any(not s.discrete for s in spaces):
        raise SpecError("free_energy sums over the values of discrete latents only",
                        hint="use minimize_energy for real and box latents")
    M, fixed = search.combinations({s.arg: s.space for s in spaces}, _device(model, given))
    fn = EnergyFn(model, given, spaces, f"the free energy over {', '.join(f'`{s.name}`' for s in spaces)}")
    B = _batch_size(given, batch, spaces, None)
    e = fn({k: v.repeat_interleave(B, 0) for k, v in fixed.items()}).view(M, B)
    return -(torch.logsumexp(-beta * e, dim=0) - math.log(M)) / beta


def infer_latents(model, batch: dict[str, torch.Tensor], over: str | list[str] | None = None,
                  method: str | None = None, *, return_info: bool = False, **kw):
    """``batch`` with z* filled in (detached) for every latent minimised over: the inner step of
    training a latent-variable JEPA (then ``model.loss(**batch)`` trains the weights at z*).
    ``kw`` go to :func:`minimize_energy`; with ``return_info``, ``(batch, Minimum)`` (None when
    there was nothing to infer), and samples that hit the step cap are the caller's to report."""
    if over is None and not any(s.arg in model.input_names("energy") and s.name not in batch
                                for s in latent_spaces(model).values()):
        return (dict(batch), None) if return_info else dict(batch)  # no latent, or all of them given
    with torch.no_grad():
        found = minimize_energy(model, batch, over, method, return_info=True, **kw) if return_info else None
        z = found.z if found is not None else minimize_energy(model, batch, over, method, **kw)[0]
    if isinstance(z, torch.Tensor):
        z = {resolve(model, batch, over)[0][0].name: z}
    return ({**batch, **z}, found) if return_info else {**batch, **z}


def latent_encoder_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Amortised inference: teach each latent's ``encoder`` to predict z* (in ``batch``) from (x, y).

    Squared error for real and box latents, cross-entropy against the chosen value for discrete
    ones; 0 when no latent declares an encoder. A scalar."""
    loss = torch.zeros((), device=_device(model, batch))
    for s in latent_spaces(model).values():
        if s.encoder is None or s.name not in batch:
            continue
        guess, target = encoder_guess(model, s, batch), batch[s.name].detach()
        if s.discrete:
            loss = loss + F.cross_entropy(guess, target.argmax(-1))
        else:
            loss = loss + (guess - target).pow(2).flatten(1).sum(1).mean()
    return loss


def loss_with_latents(model, batch: dict[str, torch.Tensor], **kw) -> torch.Tensor:
    """One training loss for a latent-variable JEPA: z* by :func:`infer_latents`, then the spec's
    objective at z* plus the latent encoders' loss. ``kw`` go to :func:`minimize_energy`."""
    full = infer_latents(model, batch, **kw)
    names = model.input_names("loss")
    missing = [n for n in names if n not in full]
    if missing:
        raise SpecError(f"the loss of `{model.spec.name}` needs {', '.join(f'`{m}`' for m in missing)} in the batch",
                        hint=f"it takes ({', '.join(names)})")
    return model.loss(**{n: full[n] for n in names}) + latent_encoder_loss(model, full)


# ------------------------------------------------------------------------------------ helpers
def _default_method(spaces: list[LatentSpace]) -> str:
    cont = [s for s in spaces if not s.discrete]
    return cont[0].inference.method if cont else "enumerate"


def _device(model, tensors: dict[str, torch.Tensor]) -> torch.device:
    for v in tensors.values():
        if isinstance(v, torch.Tensor):
            return v.device
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _batch_size(given, batch, spaces, init) -> int:
    for v in list(given.values()) + ([init] if isinstance(init, torch.Tensor) else list((init or {}).values())):
        return v.shape[0]
    raise SpecError("minimize_energy needs at least one batched input or an `init` to know the batch size",
                    hint="pass the observations in `batch`")


def _starts(model, spaces: list[LatentSpace], batch, init, B: int, device, use_encoder: bool):
    """Start points (B, *shape) per latent placeholder, and CEM's first categorical probabilities."""
    if isinstance(init, torch.Tensor):
        if len(spaces) != 1:
            raise SpecError(f"`init` must be a dict by latent name when minimising over several latents "
                            f"({', '.join(f'`{s.name}`' for s in spaces)})",
                            hint="e.g. init={" + ", ".join(f'"{s.name}": ...' for s in spaces) + "}")
        init = {spaces[0].name: init}
    init = init or {}
    starts, probs = {}, {}
    for s in spaces:
        z0 = init.get(s.name)
        if z0 is None and use_encoder and s.encoder is not None:
            with torch.no_grad():
                guess = encoder_guess(model, s, batch)
            if s.discrete:
                probs[s.arg] = guess.softmax(-1)
                z0 = s.one_hot(guess.argmax(-1))
            else:
                z0 = guess
        if z0 is None:
            z0 = s.default(B, device)  # the prior's mode: 0, clamped into a box; a discrete latent's value 0
        if not isinstance(z0, torch.Tensor):
            raise SpecError(f"start point of latent `{s.name}` should be a torch tensor, got {type(z0).__name__}",
                            s.loc, f"convert it: `torch.as_tensor(init, dtype=torch.float32)`, shape {[B, *s.shape]}")
        if tuple(z0.shape) != (B, *s.shape):
            raise SpecError(f"start point of latent `{s.name}` has shape {list(z0.shape)}, expected {[B, *s.shape]}",
                            s.loc, "one row per sample of the batch, each of the latent's declared shape" +
                            (" (a one-hot over its values)" if s.discrete else ""))
        starts[s.arg] = s.project(z0.detach().to(device).float())
    return starts, probs
