"""Latent spaces and the batched energy that energy minimisation searches over.

A :class:`LatentSpace` is one latent variable of a compiled model seen as a search space: its
shape, its domain (``real``, ``box(lo, hi)`` or ``discrete(K)``, fed to the graph as a one-hot
``[K]``), its capacity regulariser R(z), and the block (if any) that predicts it from (x, y).

:class:`EnergyFn` evaluates ``E(x, y, z) + R(z)`` for a batch of B observations repeated ``n``
times (rows ``r * B + b``), so every candidate z of every sample goes through the compiled
``energy`` program in one batched call. A non-finite energy is never ranked: it raises
:class:`NonFiniteEnergyError` naming the first block whose output went bad.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

from ..core.errors import BlockRuntimeError, Location, SpecError, did_you_mean
from ..compiler.lower import LATENT_PENALTIES
from ..compiler.programs import Arg, declare, energy_terms, fx_name, node_name, var_arg
from ..runtime.inputs import InputError
from ..runtime.locate import culprit
from ..search.spaces import Continuous, Discrete

log = logging.getLogger(__name__)


class NonFiniteEnergyError(BlockRuntimeError):
    """The energy was NaN or infinite for some candidates; the message names the culprit."""


@dataclass
class LatentSpace:
    """One latent as a search space: the :mod:`~jepa_graph.search` ``space`` it ranges over, named,
    with what energy minimisation adds (its R(z) terms, its encoder, its inference defaults).

    ``arg`` is its placeholder name in the compiled programs, the key its candidates go under."""

    name: str
    arg: str
    space: Continuous | Discrete  # real, box(lo, hi): Continuous(shape[, lo, hi]); discrete(K): Discrete((), K)
    extra_regs: dict[str, float] | None = None  # declared R(z) terms the objective does not list
    regs: dict[str, float] | None = None  # every declared R(z) term: the prior cost
    encoder: str | None = None
    inference: Any = None  # spec.LatentInference: default method, steps, lr
    loc: Location | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """As declared: a discrete latent's is its one-hot ``[K]``."""
        return self.space.value_shape

    @property
    def discrete(self) -> bool:
        return isinstance(self.space, Discrete)

    @property
    def kind(self) -> str:
        """One of "real", "box", "discrete"."""
        return "discrete" if self.discrete else "box" if self.space.box else "real"

    @property
    def lo(self) -> float:
        return -math.inf if self.discrete or self.space.lo is None else self.space.lo

    @property
    def hi(self) -> float:
        return math.inf if self.discrete or self.space.hi is None else self.space.hi

    @property
    def k(self) -> int:
        """Number of values of a discrete latent (0 otherwise)."""
        return self.space.k if self.discrete else 0

    def default(self, n: int, device) -> torch.Tensor:
        """Where a search starts without an encoder: the prior's mode (0, clamped into a box; value 0)."""
        return self.space.init(n, device)

    def sample(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the search prior: N(0, 1), uniform on the box, or uniform one-hots."""
        return self.space.sample(n, device, generator)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Onto the domain: clamp into the box (a no-op for real and discrete latents)."""
        return self.space.project(z)

    def one_hot(self, idx: torch.Tensor) -> torch.Tensor:
        """(N,) long -> (N, K) float one-hot: how a discrete value enters the graph."""
        return self.space.one_hot(idx)

    def penalty(self, z: torch.Tensor, regs: dict[str, float] | None) -> torch.Tensor | float:
        """sum_r coef_r * R_r(z), per sample (N,), or 0.0 without terms."""
        out: torch.Tensor | float = 0.0
        for reg, coef in (regs or {}).items():
            if reg in LATENT_PENALTIES:
                out = out + coef * LATENT_PENALTIES[reg](z)
        return out


def latent_spaces(model) -> dict[str, LatentSpace]:
    """Every latent of ``model`` by name."""
    g = model.graph
    listed = {(t.node, t.latent_reg) for t in g.objective if t.latent_reg}
    out = {}
    for n in g.nodes.values():
        if n.op != "latent":
            continue
        d = n.decl.domain
        if d == "real":
            space = Continuous(n.ttype.shape)
        elif hasattr(d, "box"):
            space = Continuous(n.ttype.shape, float(d.box[0]), float(d.box[1]))
        else:  # the graph takes its one-hot [K]
            space = Discrete((), d.discrete)
        regs = {r: c for r, c in n.decl.regularizer.items() if r != "none"}
        out[n.name] = LatentSpace(n.name, fx_name(n.name), space, regs=regs,
                                  extra_regs={r: c for r, c in regs.items() if (n.name, r) not in listed},
                                  encoder=n.decl.encoder, inference=n.decl.inference, loc=n.loc)
    return out


def resolve(model, batch: dict[str, torch.Tensor], over: str | list[str] | tuple[str, ...] | None,
            program: str = "energy", rest: bool = False) -> tuple[list[LatentSpace], dict[str, torch.Tensor]]:
    """The latents to minimise over and the given inputs of ``program`` (extra batch keys ignored),
    checked (:func:`check_inputs`). ``rest``: after those ``over`` names, every other latent
    ``batch`` leaves out."""
    spaces = latent_spaces(model)
    want = model.input_names(program)
    left = [s.name for s in spaces.values() if s.arg in want and s.name not in batch and s.arg not in batch]
    if over is None:
        names = left
        if not names:
            raise SpecError(f"`{model.spec.name}` has no latent left to minimise over",
                            hint="declare one under `latents:`, or leave it out of the batch")
    else:
        names = [over] if isinstance(over, str) else list(over)
    chosen = []
    for name in names:
        s = spaces.get(name) or next((v for v in spaces.values() if v.arg == name), None)
        if s is None:
            raise SpecError(f"`{name}` is not a latent of `{model.spec.name}`", hint=did_you_mean(name, spaces, "latents"))
        if s.arg not in want:
            raise SpecError(f"latent `{name}` does not enter the {program} of `{model.spec.name}`", s.loc,
                            "wire it into a predictor whose output an energy term compares")
        chosen.append(s)
    if rest:
        chosen += [spaces[n] for n in left if all(s.name != n for s in chosen)]
    args = {s.arg for s in chosen}
    need = [a for a in model.signature(program) if a.name not in args]
    latents = {s.arg for s in spaces.values()}
    missing = [a.name for a in need if a.name in latents and a.name not in batch]
    bad = model.input_problem(batch, [a for a in need if a.name not in missing])  # the one input check
    if bad is not None:
        raise InputError(bad)
    if missing:
        raise SpecError(f"minimising over {', '.join(f'`{s.name}`' for s in chosen)} needs inputs "
                        f"{', '.join(f'`{m}`' for m in missing)} in the batch",
                        hint=f"the {program} program takes ({', '.join(want)}); give the other latents a value, "
                             "or add them to `over`")
    return chosen, {a.name: batch[a.name] for a in need}


def check_inputs(model, inputs: dict[str, Any]) -> None:
    """Refuse, before any block runs, inputs a block would fail on (or silently broadcast): the
    one input check (:mod:`jepa_graph.runtime.inputs`) of each given input against its
    declaration: a tensor with a batch dim, the declared per-sample shape and dtype, floats in the
    weights' dtype and on their device, one batch size. An :class:`InputError` (a SpecError) at the
    input's declaration, worded as model calls and training word it."""
    args = [var_arg(model.graph, k) or Arg(k, None, None, k) for k in inputs]
    bad = model.input_problem(inputs, args)
    if bad is not None:
        raise InputError(bad)


def subprogram(model, key: str, outputs: dict[str, str], cut: dict[str, str] | None = None,
               terms: dict | None = None) -> fx.GraphModule:
    """A pruned program of ``model`` declared under ``key`` (see :class:`~jepa_graph.compiler.programs.Program`),
    built once, in the model's program cache."""
    return model.program(declare(key, outputs, cut, terms, title=key.title().replace("_", "")))


def split_energy(model, spaces: list[LatentSpace]) -> tuple[fx.GraphModule, fx.GraphModule] | None:
    """The energy in two programs: a prefix of everything that does not depend on the searched
    latents (encoders of x and y: run once on B rows) and a suffix from there and z to E (run on
    every candidate row). None when nothing can be hoisted."""
    g = model.graph
    terms = energy_terms(g)
    keep = g.ancestors([t.node for t in terms])
    dep = set()  # nodes that depend on a searched latent
    for n in g.topo():
        if n.name in keep and (n.name in {s.name for s in spaces} or any(r.src in dep for r in n.inputs)):
            dep.add(n.name)
    heads = {t.node for t in terms}
    cut = [n for n in keep if n not in dep and g.nodes[n].op == "call"
           and (n in heads or any(c in dep for c in g.consumers(n)))]
    if not cut:
        return None
    key = "energy_over_" + "_".join(sorted(s.arg for s in spaces))
    pre = subprogram(model, key + "_prefix", {n: n for n in cut})
    suf = subprogram(model, key + "_suffix", {}, cut={n: f"pre__{n}" for n in cut},
                     terms={"energy": (terms, "sum")})
    return pre, suf


def run_subprogram(model, gm: fx.GraphModule, batch: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    args = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    missing = [a for a in args if a not in batch]
    if missing:
        raise SpecError(f"{what} needs {', '.join(f'`{m}`' for m in missing)} in the batch",
                        hint=f"it takes ({', '.join(args)})")
    feed = {a: batch[a] for a in args}
    try:
        return gm(**feed)
    except Exception as e:  # re-raised naming the block and its spec line, as CompiledModel.run does
        raise located(model, gm, feed, what, e) from e


def located(model, gm: fx.GraphModule, feed: dict[str, torch.Tensor], what: str, err: Exception) -> Exception:
    """``err`` from running ``gm`` on ``feed`` as a BlockRuntimeError naming the first block that raises."""
    if isinstance(err, (BlockRuntimeError, SpecError)):
        return err
    return culprit(gm, feed, err, f"in {what}", f"{what} of `{model.spec.name}`", model.graph.nodes)


def encoder_guess(model, space: LatentSpace, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The latent encoder's prediction for ``batch``: z (B, *shape), or logits (B, K) if discrete."""
    gm = subprogram(model, f"latent_encoder_{space.arg}", {"z": space.encoder})
    return run_subprogram(model, gm, batch, f"the encoder `{space.encoder}` of latent `{space.name}`")["z"]


class EnergyFn:
    """E(x, y, z) + R(z) per row for ``inputs`` (B rows each) repeated to match the candidates.

    ``zs`` maps latent placeholder names to (n * B, *shape) tensors, row ``r * B + b`` being
    candidate ``r`` of sample ``b``. Returns (n * B,). ``max_batch`` splits large no-grad calls.
    """

    def __init__(self, model, inputs: dict[str, torch.Tensor], spaces: list[LatentSpace], what: str,
                 max_batch: int | None = None, on_nonfinite: str = "raise", hoist: bool = False):
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        self.model, self.inputs, self.spaces, self.what = model, inputs, spaces, what
        self.max_batch, self.on_nonfinite = max_batch, on_nonfinite
        self.B = next(iter(inputs.values())).shape[0] if inputs else None
        self._reps: dict[int, dict[str, torch.Tensor]] = {}
        self.step: int | None = None  # set by the search, for messages
        # hoist (searches only, no weight gradients): encoders of x and y run once, not per candidate
        self.split = split_energy(model, spaces) if hoist and inputs else None
        self.given = dict(inputs)
        if self.split is not None:
            with torch.no_grad():
                pre = run_subprogram(model, self.split[0], inputs, "the energy")
            self.given.update({f"pre__{fx_name(k)}": v for k, v in pre.items()})

    def repeated(self, n: int) -> dict[str, torch.Tensor]:
        if n not in self._reps:  # (B, ...) -> (n * B, ...), candidate-major
            self._reps[n] = {k: v.repeat(n, *([1] * (v.dim() - 1))) for k, v in self.given.items()}
        return self._reps[n]

    def __call__(self, zs: dict[str, torch.Tensor], trial: bool = False) -> torch.Tensor:
        """``trial``: these are line-search trial points, which a non-finite energy only rejects:
        it comes back +inf, neither raised nor logged (the search then tries a shorter step)."""
        rows = next(iter(zs.values())).shape[0] if zs else self.B
        n = rows // self.B if self.B else 1
        feed = {**self.repeated(n), **zs}
        if self.max_batch and rows > self.max_batch and not torch.is_grad_enabled():
            e = torch.cat([self._energy({k: v[i:i + self.max_batch] for k, v in feed.items()})
                           for i in range(0, rows, self.max_batch)])
        else:
            e = self._energy(feed)
        bad = ~torch.isfinite(e.detach())
        if trial:
            return torch.where(bad, torch.full_like(e, math.inf), e)
        if bad.any():
            full = {k: v for k, v in feed.items() if not k.startswith("pre__")}
            msg = explain_nonfinite(self.model, full, e.detach(), self.spaces, self.what, self.step)
            if self.on_nonfinite == "raise":
                raise NonFiniteEnergyError(msg)
            log.warning("%s (skipped: these candidates count as +inf)", msg)
            e = torch.where(bad, torch.full_like(e, math.inf), e)
        return e

    def _energy(self, feed: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.split is None:
            e = self.model.run("energy", feed)["energy"]
        else:
            suf = self.split[1]
            try:
                e = suf(**{a: feed[a] for a in (n.target for n in suf.graph.nodes if n.op == "placeholder")})["energy"]
            except Exception:  # run the whole program again for an error that names the block
                self.model.run("energy", {k: v for k, v in feed.items() if not k.startswith("pre__")})
                raise
        for s in self.spaces:
            pen = s.penalty(feed[s.arg], s.extra_regs)
            if isinstance(pen, torch.Tensor):  # declared R(z) terms the objective leaves out
                e = e + pen
        return e


def explain_nonfinite(model, feed: dict[str, torch.Tensor], e: torch.Tensor, spaces: list[LatentSpace],
                      what: str, step: int | None) -> str:
    """Why the energy ``e`` (N,) is NaN/inf on some rows: a non-finite input or latent, or the first
    block (in topological order) whose output is non-finite although its inputs are finite."""
    rows = (~torch.isfinite(e)).nonzero().flatten()
    kind = "NaN" if e[rows].isnan().all() else "infinite" if e[rows].isinf().all() else "NaN or infinite"
    head = f"energy is {kind} for {len(rows)} of {e.numel()} candidate(s) during {what}" + \
           (f" (step {step})" if step is not None else "")
    sub = {k: v[rows[:16]] for k, v in feed.items()}
    g = model.graph
    for k, v in sub.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            node = g.nodes.get(node_name(k))
            if node is not None and node.op == "latent":
                return (f"{head}: latent `{node.name}` itself became non-finite; the minimiser diverged "
                        "(lower `lr`, use fewer `steps`, or a box domain)")
            return f"{head}: input `{k}` contains NaN or infinite values (check the data)"
    calls = sorted(g.ancestors([t.node for t in energy_terms(g)]))
    order = [n.name for n in g.topo() if n.name in calls and n.op == "call"]
    gm = subprogram(model, "trace_energy", {n: n for n in order})
    with torch.no_grad():
        outs = run_subprogram(model, gm, sub, "the energy trace")
    big = [f"`{s.name}` reached |{s.name}| = {m:.3g}" for s in spaces
           if (m := sub[s.arg].abs().max().item()) > 1e6]  # finite but huge: a runaway search
    tail = f"; {', '.join(big)}: the minimiser diverged; lower `lr`" if big else ""
    for name in order:
        if not torch.isfinite(outs[name]).all():
            n = g.nodes[name]
            return (f"{n.loc}: {head}: block `{name}` ({n.kind}.{n.type}) gives non-finite values "
                    f"from finite inputs{tail}")
    regs = [s.name for s in spaces if s.regs]
    return f"{head}: every block is finite; the sum of the energy terms overflows" + \
        (f" (R(z) of {', '.join(regs)})" if regs else "") + tail

