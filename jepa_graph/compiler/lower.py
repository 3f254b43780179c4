"""Lowering: a pruned sub-graph -> a torch.fx GraphModule of straight-line torch code.

Each program (declared in :mod:`.programs`) keeps only the nodes its outputs depend on. ``cut``
replaces nodes by placeholders (``step`` takes the state where the encoder would be), so one
graph yields every program.

The generated code calls each block as a submodule (``self.blocks.enc(x)``); no graph is
interpreted at run time, and the result compiles under ``torch.compile(fullgraph=True)``.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from .graph import Graph, Term
from .programs import Program, energy_terms, fx_name  # noqa: F401 (energy_terms, fx_name: imported from here too)
from .sequence import per_step, step_program, unroll_ref, unrolled


# Latent capacity regularisers R(z), per sample. Module-level functions so fx code can call them.
def latent_l1(z: torch.Tensor) -> torch.Tensor:
    """R(z) = |z|_1, per sample."""
    return z.abs().flatten(1).sum(1)


def latent_l2(z: torch.Tensor) -> torch.Tensor:
    """R(z) = |z|^2, per sample."""
    return z.pow(2).flatten(1).sum(1)


def latent_kl(z: torch.Tensor) -> torch.Tensor:
    """KL(N(z, 1) || N(0, 1)) = |z|^2 / 2 per sample: the cost of a noisy latent's mean."""
    return 0.5 * z.pow(2).flatten(1).sum(1)


LATENT_PENALTIES = {"l1": latent_l1, "l2": latent_l2, "kl": latent_kl}


class Lowering:
    """Builds one fx.Graph for ``outputs`` of ``g``; ``cut`` maps node -> placeholder name."""

    def __init__(self, g: Graph, root: nn.Module):
        self.g, self.root = g, root

    def build(self, p: Program) -> fx.GraphModule:
        """The GraphModule of a declared :class:`~.programs.Program`."""
        return self.program(dict(p.outputs), cut=dict(p.cut), terms={k: (list(ts), mode) for k, ts, mode in p.terms},
                            name=p.title)

    def program(self, outputs: dict[str, str], cut: dict[str, str] | None = None,
                terms: dict[str, tuple[list[Term], str]] | None = None, name: str = "program") -> fx.GraphModule:
        """``outputs``: result key -> node name. ``terms``: result key -> (terms, "sum"|"loss")."""
        cut = dict(cut or {})
        terms = terms or {}
        need = [n for n in outputs.values()]
        for ts, _ in terms.values():
            need += [t.node for t in ts]
        keep = self.g.ancestors(need, cut=set(cut))
        fused = self._fused_means(outputs, cut, terms, keep)
        graph = fx.Graph()
        env: dict[str, fx.Node] = {}
        placeholders: dict[str, fx.Node] = {}

        def placeholder(pname: str) -> fx.Node:
            if pname not in placeholders:
                placeholders[pname] = graph.placeholder(fx_name(pname))
            return placeholders[pname]

        for n in self.g.topo():
            if n.name not in keep:
                continue
            if n.name in cut:
                env[n.name] = placeholder(cut[n.name])
                continue
            if n.is_var:
                env[n.name] = placeholder(n.name)
                continue
            args = []
            for r in n.inputs:
                a = env[r.src]
                if r.stop_grad:
                    a = graph.call_method("detach", (a,))
                args.append(a)
            if n.op == "port":
                env[n.name] = args[0]
                continue
            if unroll_ref(n) is not None:  # the world model's step, inlined H times
                env[n.name] = self._unroll(graph, n, args)
                continue
            if per_step(n):  # the block on the steps folded into the batch
                env[n.name] = self._each_step(graph, n, args, fx_name(n.name))
                continue
            direct = fused.get(n.name)
            if direct is not None:  # the torch function itself, e.g. F.mse_loss(pred, target): see _fused_means
                out = graph.create_node("call_function", direct[0], tuple(args), direct[1], name=fx_name(n.name))
            else:
                kwargs = {"reduction": "mean"} if n.name in fused else {}  # () instead of (B,)
                out = graph.create_node("call_module", f"blocks.{n.module}", tuple(args), kwargs, name=fx_name(n.name))
            out.meta["jepa_node"] = n.name
            if n.ema_of:  # a target is a constant for the loss: no gradient through it
                out = graph.call_method("detach", (out,))
            env[n.name] = out

        result: dict[str, Any] = {k: env[v] for k, v in outputs.items()}
        for key, (ts, mode) in terms.items():
            result[key] = self._weighted(graph, env, ts, mode, fused)
        graph.output(result)
        gm = fx.GraphModule(self.root, graph, class_name=name)
        return gm

    def _fused_means(self, outputs: dict[str, str], cut: dict[str, str], terms: dict,
                     keep: set[str]) -> dict[str, tuple | None]:
        """Loss terms wanted only as a batch mean, from blocks that compute it in one op.

        A module with ``fused_mean = True`` returns ``forward(...).mean()`` when called with
        ``reduction="mean"`` (an l2 energy becomes ``F.mse_loss``): the loss program then does the
        same arithmetic as hand-written code, with no per-sample values and no extra mean. When its
        ``fused()`` names the torch function (and keywords) that does it, the program calls that
        function directly, as hand-written code would. Node name -> (function, kwargs) or None."""
        per_sample = set(outputs.values()) | set(cut)
        per_sample |= {t.node for ts, mode in terms.values() if mode != "loss" for t in ts}
        per_sample |= {r.src for k in keep for r in self.g.nodes[k].inputs}  # what feeds another block
        out: dict[str, tuple | None] = {}
        for ts, mode in terms.values():
            for t in ts:
                n = self.g.nodes[t.node]
                if mode != "loss" or t.latent_reg or t.node in per_sample or n.op != "call" or n.ema_of \
                        or per_step(n):
                    continue
                mod = self.root.get_submodule(f"blocks.{n.module}")
                if n.ttype is not None and n.ttype.batched and getattr(mod, "fused_mean", False):
                    direct = mod.fused() if hasattr(mod, "fused") and not any(True for _ in mod.parameters()) else None
                    out[t.node] = direct
        return out

    # ------------------------------------------------------------ sequences (compiler/sequence.py)
    def _each_step(self, graph: fx.Graph, n, args: list[fx.Node], name: str) -> fx.Node:
        """``n`` at every step: inputs (B, T, ...) -> (B * T, ...) -> the block -> (B, T, ...); a
        per-sample number is averaged over the steps, a regulariser's batch value kept."""
        steps = self.g.nodes[n.inputs[0].src].ttype.shape[0]
        flat = [graph.call_method("flatten", (a, 0, 1)) for a in args]
        out = graph.create_node("call_module", f"blocks.{n.module}", tuple(flat), {}, name=name)
        out.meta["jepa_node"] = n.name
        if n.ttype.batched:
            out = graph.call_method("unflatten", (out, 0, (-1, steps)))  # (B, T, ...)
            if n.ttype.shape == ():
                out = graph.call_method("mean", (out, 1))  # (B,): the mean over steps
        if n.ema_of:
            out = graph.call_method("detach", (out,))
        return out

    def _unroll(self, graph: fx.Graph, n, args: list[fx.Node]) -> fx.Node:
        """The step program of ``n``'s world model written out H times: s_{t+1} = step(s_t, a_t, z_t)
        from the first state (``unrolled``), or from the true state t (``teacher``) -> (B, H, *S)."""
        g, wm = self.g, unrolled(self.g, n)
        horizon = n.ttype.shape[0]
        states, seqs = args[0], dict(zip(wm.steps, args[1:]))
        sequence = g.nodes[n.inputs[0].src].ttype != g.nodes[wm.encoder].ttype  # (B, T, *S): states to pick from
        teacher = n.params.mode == "teacher"
        body = step_program(g, wm)
        state = graph.call_method("select", (states, 1, 0)) if sequence and not teacher else states
        outs = []
        for t in range(horizon):
            if teacher:
                state = graph.call_method("select", (states, 1, t))
            local = {wm.encoder: state, **{v: graph.call_method("select", (a, 1, t)) for v, a in seqs.items()}}
            for m in body:
                margs = [graph.call_method("detach", (local[r.src],)) if r.stop_grad else local[r.src]
                         for r in m.inputs]
                name = f"{fx_name(n.name)}_{t}_{fx_name(m.name)}"
                if m.op == "port":
                    local[m.name] = margs[0]
                elif per_step(m):
                    local[m.name] = self._each_step(graph, m, margs, name)
                else:
                    out = graph.create_node("call_module", f"blocks.{m.module}", tuple(margs), {}, name=name)
                    out.meta["jepa_node"] = m.name
                    local[m.name] = graph.call_method("detach", (out,)) if m.ema_of else out
            state = local[wm.predictor]
            outs.append(state)
        return graph.call_function(torch.stack, (outs, 1))

    def _weighted(self, graph: fx.Graph, env: dict[str, fx.Node], ts: list[Term], mode: str,
                  fused: dict | frozenset = frozenset()) -> fx.Node | float:
        """Per-sample sum (mode "sum": energy, cost) or scalar objective (mode "loss")."""
        acc = None
        for t in ts:
            v = env[t.node]
            if t.latent_reg:
                v = graph.call_function(LATENT_PENALTIES[t.latent_reg], (v,))
            elif mode == "loss" and t.node not in fused and self.g.nodes[t.node].ttype is not None \
                    and self.g.nodes[t.node].ttype.batched:
                v = graph.call_method("mean", (v,))  # a batch mean, as hand-written code takes it
            if mode == "loss" and t.latent_reg:
                v = graph.call_method("mean", (v,))  # a batch mean, as hand-written code takes it
            w = t.weight * (self.g.nodes[t.node].decl.regularizer[t.latent_reg] if t.latent_reg else 1.0)
            if w != 1.0:  # R(z) carries its declared coefficient: {l1: 0.05} is 0.05 |z|_1
                v = graph.call_function(operator.mul, (v, float(w)))
            acc = v if acc is None else graph.call_function(operator.add, (acc, v))
        return acc if acc is not None else 0.0



class Rollout(nn.Module):
    """``H`` steps of a lowered ``step`` program, batched: ``state`` (B, *S) and, for each name in
    ``steps`` (the action, the latent), a sequence (B, H, ...) -> ``{"states": (B, H, *S)}``, row
    ``t`` the state after step t + 1. Other step inputs hold for the whole rollout.

    A plain loop over H calling the step's generated code: torch.compile unrolls it, and a
    planner batches every candidate of every environment into B (rows ``c * B + b``)."""

    def __init__(self, step: fx.GraphModule, steps: tuple[str, ...]):
        super().__init__()
        self.step = step
        self.steps = steps
        self.args = [n.target for n in step.graph.nodes if n.op == "placeholder"]

    def forward(self, state: torch.Tensor, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        seqs = [(k, inputs.pop(k)) for k in self.steps]  # (B, H, ...) each
        horizon = seqs[0][1].shape[1]
        if any(v.shape[1] != horizon for _, v in seqs):
            raise ValueError("the step inputs disagree on the horizon H")
        states = []
        for t in range(horizon):
            state = self.step.forward(state=state, **inputs, **{k: v[:, t] for k, v in seqs})["state"]
            states.append(state)
        return {"states": torch.stack(states, 1)}

    @torch.no_grad()
    def failing_step(self, inputs: dict[str, torch.Tensor]) -> tuple[int, dict[str, torch.Tensor]] | None:
        """(t, the step's inputs at step t) for the first step that raises on ``inputs`` (None:
        none does): how a failure is traced to the step, then to the block, that raised it."""
        state, seqs = inputs["state"], [(k, inputs[k]) for k in self.steps]
        rest = {k: v for k, v in inputs.items() if k != "state" and k not in self.steps}
        for t in range(min(v.shape[1] for _, v in seqs)):
            feed = {"state": state, **rest, **{k: v[:, t] for k, v in seqs}}
            try:
                state = self.step.forward(**feed)["state"]
            except Exception:  # the failure the caller caught; only its step is wanted
                return t, feed
        return None

    @property
    def code(self) -> str:
        """The rollout as Python source (the step's own code: ``.step.code``)."""
        per = ", ".join(f"{k}={k}[:, t]" if k in self.steps else f"{k}={k}" for k in self.args)
        return (f"def forward(self, {', '.join(self.args)}):\n"
                f"    states = []  # H steps of the step program, batched: {self.steps[0]} is (B, H, ...)\n"
                f"    for t in range({self.steps[0]}.shape[1]):\n"
                f"        state = self.step({per})['state']\n"
                f"        states.append(state)\n"
                f"    return {{'states': torch.stack(states, 1)}}\n")
