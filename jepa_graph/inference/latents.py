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
import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

from ..core.errors import BlockRuntimeError, Location, SpecError, did_you_mean
from ..compiler.lower import LATENT_PENALTIES, Lowering, energy_terms, fx_name
from ..runtime.locate import failing_block
from ..training.checks import dtype_kind

log = logging.getLogger(__name__)
_PROGRAMS: "weakref.WeakKeyDictionary[Any, dict[str, fx.GraphModule]]" = weakref.WeakKeyDictionary()


class NonFiniteEnergyError(BlockRuntimeError):
    """The energy was NaN or infinite for some candidates; the message names the culprit."""


@dataclass
class LatentSpace:
    """One latent as a search space. ``arg`` is its placeholder name in the compiled programs."""

    name: str
    arg: str
    shape: tuple[int, ...]
    kind: str  # "real" | "box" | "discrete"
    lo: float = -math.inf
    hi: float = math.inf
    k: int = 0  # number of values of a discrete latent
    extra_regs: dict[str, float] | None = None  # declared R(z) terms the objective does not list
    regs: dict[str, float] | None = None  # every declared R(z) term: the prior cost
    encoder: str | None = None
    inference: Any = None  # spec.LatentInference: default method, steps, lr
    loc: Location | None = None

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    def default(self, n: int, device) -> torch.Tensor:
        """Where a search starts without an encoder: the prior's mode, 0 (clamped into a box)."""
        return self.project(torch.zeros(n, *self.shape, device=device))

    def prior_std(self) -> float:
        return (self.hi - self.lo) / 2 if self.kind == "box" else 1.0

    def sample(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the search prior: N(0, 1), uniform on the box, or uniform one-hots."""
        if self.discrete:
            idx = torch.randint(0, self.k, (n,), device=device, generator=generator)
            return self.one_hot(idx)
        u = torch.rand if self.kind == "box" else torch.randn
        z = u(n, *self.shape, device=device, generator=generator)
        return self.lo + (self.hi - self.lo) * z if self.kind == "box" else z

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Onto the domain: clamp into the box (a no-op for real latents)."""
        return z.clamp(self.lo, self.hi) if self.kind == "box" else z

    def one_hot(self, idx: torch.Tensor) -> torch.Tensor:
        """(N,) long -> (N, K) float one-hot: how a discrete value enters the graph."""
        return torch.eye(self.k, device=idx.device)[idx]  # F.one_hot checks the range: a sync per call

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
        d, kw = n.decl.domain, {}
        if d == "real":
            kind = "real"
        elif hasattr(d, "box"):
            kind, kw = "box", {"lo": float(d.box[0]), "hi": float(d.box[1])}
        else:
            kind, kw = "discrete", {"k": d.discrete}
        regs = {r: c for r, c in n.decl.regularizer.items() if r != "none"}
        out[n.name] = LatentSpace(n.name, fx_name(n.name), n.ttype.shape, kind, **kw, regs=regs,
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
    missing = [p for p in want if p not in args and p not in batch]
    if missing:
        raise SpecError(f"minimising over {', '.join(f'`{s.name}`' for s in chosen)} needs inputs "
                        f"{', '.join(f'`{m}`' for m in missing)} in the batch",
                        hint=f"the {program} program takes ({', '.join(want)}); give the other latents a value, "
                             "or add them to `over`")
    given = {p: batch[p] for p in want if p not in args}
    check_inputs(model, given)
    return chosen, given


def check_inputs(model, inputs: dict[str, Any]) -> None:
    """Refuse, before any block runs, inputs a block would fail on (or silently broadcast): each must
    be a tensor with a batch dim, the declared per-sample shape and dtype (floats in the weights'
    dtype, on the weights' device), all with one batch size. A SpecError at the input's declaration.

    The per-input facts are the graph's (``node.ttype``), as in :meth:`CompiledModel.run`."""
    w = next((p for p in model.parameters() if p.is_floating_point()), None)
    sizes = {}
    for key, v in inputs.items():
        node = model.graph.nodes.get(key.replace("__", "/"))
        want = node.ttype if node is not None else None
        loc = node.loc if node is not None else None
        if not isinstance(v, torch.Tensor):
            kind = {"float": "float32"}.get(want.dtype, want.dtype) if want is not None else "float32"
            got = type(v).__name__ if type(v).__module__ == "builtins" else f"{type(v).__module__}.{type(v).__name__}"
            raise SpecError(f"input `{key}` should be a torch tensor{f' {want}' if want else ''}, got {got}", loc,
                            f"convert it: `torch.as_tensor({key}, dtype=torch.{kind})`")
        if v.dim() == 0:
            raise SpecError(f"input `{key}` has no batch dim", loc, f"a batch of one is `{key}[None]`")
        if want is not None:
            if tuple(v.shape[1:]) != want.shape:
                unbatched = f"; a batch of one is `{key}[None]`" if tuple(v.shape) == want.shape else ""
                raise SpecError(f"input `{key}` should be {want}, got {list(v.shape)}", loc,
                                "the batch dim comes first, then the declared shape" + unbatched)
            if dtype_kind(v) != want.dtype:  # float | long | bool, each a tensor method
                raise SpecError(f"input `{key}` holds {want.dtype} values ({want}), got a {v.dtype} tensor", loc,
                                f"convert it: `{key}.{want.dtype}()`")
        if w is not None and v.is_floating_point() and v.dtype != w.dtype:
            raise SpecError(f"input `{key}` is {v.dtype} but the weights of `{model.spec.name}` are {w.dtype}", loc,
                            f"convert it: `{key}.to({w.dtype})` (or the model: `model.to({v.dtype})`)")
        if w is not None and v.device != w.device:
            raise SpecError(f"input `{key}` is on {v.device} but the weights of `{model.spec.name}` are on {w.device}",
                            loc, f"move it: `{key}.to(\"{w.device}\")`")
        sizes[key] = v.shape[0]
    if len(set(sizes.values())) > 1:
        raise SpecError("the batch's tensors disagree on the batch size: " +
                        ", ".join(f"`{p}` has {b}" for p, b in sizes.items()), hint="give every input B rows")


def subprogram(model, key: str, outputs: dict[str, str], cut: dict[str, str] | None = None,
               terms: dict | None = None) -> fx.GraphModule:
    """A pruned program of ``model`` (see :meth:`Lowering.program`), built once per model and key."""
    cache = _PROGRAMS.setdefault(model, {})
    if key not in cache:
        cache[key] = Lowering(model.graph, model).program(outputs, cut=cut, terms=terms,
                                                           name=key.title().replace("_", ""))
    return cache[key]


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
    failing = failing_block(gm, feed)
    n = model.graph.nodes.get(failing) if failing is not None else None
    if n is None:
        return BlockRuntimeError(f"{what} of `{model.spec.name}` failed: {type(err).__name__}: {err}")
    return BlockRuntimeError(f"{n.loc}: block `{n.name}` ({n.kind}.{n.type}) failed in {what}: "
                             f"{type(err).__name__}: {err}")


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
            node = g.nodes.get(k.replace("__", "/"))
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

