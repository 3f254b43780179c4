"""Training: minimise the spec's objective over the weights.

One step, for the global batch of step ``s`` (each rank keeps its shard under torchrun):

1. latents the batch does not carry are inferred first, z* = argmin_z E(x, y, z), with the
   weights fixed (:func:`infer_latents`); a latent's amortised ``encoder`` starts the search
   and is trained to predict z* (an extra ``latent_encoder`` loss term);
2. the objective runs under autocast (bf16 when asked): on logging and monitoring steps the
   ``TrainStep`` program (lowered from the same graph: the objective, each term, and the
   monitored representation), on the others the spec's plain ``loss`` program;
3. backward through everything but stop-gradient edges, EMA targets and frozen blocks;
   gradients clipped, AdamW/SGD step, warm-up + cosine learning rate;
4. EMA targets follow their sources with momentum from their schedule at progress s/steps, s
   counted from 0: the update after the first step uses the schedule's start m0 and the last one
   m0 + (m1 - m0) (T - 1) / T, as I-JEPA's momentum scheduler yields them. BatchNorm running
   statistics (buffers) are copied from the source, not averaged.

A non-finite loss (or energy, during latent inference) stops the run with an error naming the
step, the block whose output first went non-finite and the last good checkpoint, which is kept.
The first batch is checked against the spec's inputs (names, shapes, dtypes), so data that does
not fit is a located error naming the source; a block that fails later is named with its spec
line. A fresh run (step 0) starts its ``metrics.jsonl`` over; a resumed one drops the lines past
its checkpoint. ``resume=True`` continues bit-identically; a resumed run whose ``train:`` changed
(lr, weight decay, betas, momentum, schedule, steps) applies the new values to the restored
optimiser and schedule and logs each change; resuming past ``train.steps``, or with another
optimiser, is a located error.

Example::

    model = jg.compile("specs/two_rooms.yaml")
    result = jg.train(model, steps=500, lr=1e-3)          # data: the spec's `train.data` source
    result.losses[-1], result.checkpoint
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .checkpoint import SpecMismatch, check_spec, load_checkpoint, read_checkpoint, save_checkpoint
from ..core.errors import BlockRuntimeError, SpecError
from ..compiler.lower import LATENT_PENALTIES
from ..compiler.programs import train_step
from ..inference.latents import NonFiniteEnergyError, latent_spaces
from ..inference.minimize import infer_latents as minimize_latents, latent_encoder_loss
from .metrics import LeakProbe, MetricsWriter, collapse_reason, collapse_stats
from ..compiler.model import CompiledModel
from .checks import (LOC, check_batch, check_config, check_device, check_source, nonfinite_weights_block,
                           source_name, spec_loc)
from ..frontend.train_config import TrainConfig, resolve_config  # noqa: F401 (resolve_config: part of this module's API)
from ..runtime import distributed as dist_util
from ..data import resolve_source
from ..runtime.inputs import InputError
from ..runtime.locate import culprit, first_nonfinite_block, nonfinite_grad_block
from ..runtime.sync_batchnorm import UnsyncableBatchNorm, convert_sync_batchnorm
from .optim import lr_factor, make_optimizer, make_scheduler

log = logging.getLogger(__name__)


class NonFiniteLoss(BlockRuntimeError):
    """The loss (or its gradient, or the energy during latent inference) became NaN or infinite;
    the message names the step, the block and the last good checkpoint."""


RESUME_MISMATCH_HINT = ("this run folder holds a run of another architecture: train into another folder "
                        "(out=...), pass resume=False to start this one over, or compile the spec it was "
                        "trained with (read_checkpoint(path)['spec_text'])")


@dataclass
class TrainResult:
    """What a run did: ``losses`` per step run in this call, logged ``history``, files written."""

    step: int
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None
    checkpoint: Path | None = None
    collapsed: bool = False


class Trainer:
    """Trains a compiled model. ``data``: None (the spec's ``train.data``), a source name, a
    DataSource, a dict of (N, ...) tensors, or a map-style Dataset (with ``names``).

    ``out``: run folder for ``last.pt`` and ``metrics.jsonl`` (None: nothing written, unless
    ``train.out`` is set). ``callbacks``: ``f(trainer, step, record)`` after every step (the
    record holds the loss terms on logging steps, the loss and lr on the others).
    ``meta``: plain data stored in checkpoints. Other keywords override ``train:`` fields
    (``steps=500, lr=3e-4, batch_size=32``).
    """

    def __init__(self, model: CompiledModel, data: Any = None, config: TrainConfig | dict | None = None, *,
                 out: str | Path | None = None, resume: bool = False, names: list[str] | None = None,
                 progress: bool = True, callbacks: list[Callable] = (), tensorboard: bool = True,
                 meta: dict[str, Any] | None = None, **overrides: Any):
        self.cfg = cfg = resolve_config(model, config, **overrides)
        self.rank, self.world, self.local_rank = dist_util.setup()
        check_device(cfg.device, spec_loc(model, ("train", "device"), cfg.device))
        check_config(model, cfg, self.world)
        self.device = dist_util.pick_device(cfg.device, self.local_rank)
        self.model = model.to(self.device)
        self.graph = model.graph
        self.source = resolve_source(model, data, cfg, names)
        check_source(model, cfg, self.source, self.world)
        self.source_from_spec = data is None and cfg.data is not None  # errors may point at train.data
        # sources with wall hits (two_rooms_wall): the world model's wall-leak rate on each monitoring step
        self.leak_probe = LeakProbe.of(model, self.source, cfg.seed)
        self.out = Path(out) if out is not None else (Path(cfg.out) if cfg.out else None)
        self.progress, self.callbacks, self.resume, self.meta = progress, list(callbacks), resume, dict(meta or {})

        g = self.graph
        self.latent_terms = [t for t in g.objective if t.latent_reg]
        self.monitored = _monitored(g)
        self.step_program = train_step(g, self.monitored)  # the objective, its terms, the monitored reps
        self.program = model.program(self.step_program)
        self.input_names = model.input_names(self.step_program.name)
        self.latents = [n for n in self.input_names if g.nodes.get(n) is not None and g.nodes[n].op == "latent"]
        self.params = [p for p in self.program.parameters() if p.requires_grad]
        # latents with an amortised `encoder` train it to predict z* (it also starts the search)
        self.latent_encoders = [s.encoder for s in latent_spaces(model).values() if s.encoder]
        seen = {id(p) for p in self.params}
        for enc in self.latent_encoders:
            self.params += [p for p in model.blocks[g.nodes[enc].module].parameters()
                            if p.requires_grad and id(p) not in seen and not seen.add(id(p))]
        if not self.params:
            raise SpecError(f"`{model.spec.name}`: nothing to train (the objective reaches no trainable block)",
                            hint="check `objective:` and `frozen:`")
        self.step_module: nn.Module = self.program
        # steps that log nothing run the plain `loss` program (fused means, no per-term outputs);
        # under DDP one module owns the gradient hooks, so every step runs TrainStep there
        self.lean_module: nn.Module | None = model.program("loss") if self.world == 1 else None
        # what it reads: the monitored encoder may read an input the objective does not (a multi-step
        # objective reads x_seq, the world model's encoder x)
        self.lean_inputs = set(model.input_names("loss"))
        if cfg.compile:
            self.step_module = torch.compile(self.step_module)
            self.lean_module = torch.compile(self.lean_module) if self.lean_module is not None else None
        self.ddp_params = {id(p) for p in self.program.parameters()} if self.world > 1 else set()
        if self.world > 1:  # BatchNorm normalises over the global batch, as one process would
            _sync_batchnorm(model)
            self.step_module = dist_util.wrap_ddp(self.step_module, self.device)
        self.optimizer = make_optimizer(self.params, cfg.optimizer)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.step = 0
        self.metrics: MetricsWriter | None = None
        if self.out is not None and self.rank == 0:
            self.metrics = MetricsWriter(self.out, tensorboard=tensorboard)
        self._warned_collapse = False
        self._warned_capped = False  # the inner z-minimisation hit its step cap (logged once a run)
        self._batch_checked = False  # the first batch is checked against the spec's inputs
        self.last_checkpoint: Path | None = None
        if resume:
            self._resume()
        if self.metrics is not None:  # step 0: a fresh log; step N: the killed run's lines past N go
            self.metrics.truncate_after(self.step)

    # ------------------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out / "last.pt" if self.out is not None else None

    def _resume(self) -> None:
        path = self.checkpoint_path
        if path is None:
            raise SpecError("resume needs a run folder", hint="pass out=... (or set train.out)")
        if not path.exists():  # a typo'd folder or a run killed before its first checkpoint: say so, train nothing
            raise SpecError(f"nothing to resume: no checkpoint at {path}",
                            hint="drop --resume (resume=False) to start this run from step 0, or point train.out "
                                 "(--out) at the folder of the run to continue")
        data = read_checkpoint(path, map_location=self.device)
        try:  # another architecture's run is the first thing to say; nothing is loaded before the checks
            check_spec(path, self.model, data)
        except SpecMismatch as e:  # its hint offers strict_spec=False, no option here
            raise SpecMismatch(e.first.message, e.first.loc, RESUME_MISMATCH_HINT) from None
        step, cfg = int(data["step"]), self.cfg
        old = (data.get("extra") or {}).get("config")
        old = old if isinstance(old, dict) else None  # checkpoints saved from Python may store none
        if step > cfg.steps:  # training on would rewrite a later checkpoint with this one's weights
            raise SpecError(f"{path} is at step {step}, past train.steps={cfg.steps}: nothing is left to train",
                            spec_loc(self.model, ("train", "steps"), cfg.steps),
                            f"set train.steps above {step} to train on, or start a new run in another folder")
        was = (old or {}).get("optimizer", {}).get("name", cfg.optimizer.name)
        if was != cfg.optimizer.name:  # the saved moments are another optimiser's
            raise SpecError(f"{path} was trained with optimizer `{was}`; its state cannot continue as "
                            f"`{cfg.optimizer.name}`",
                            spec_loc(self.model, ("train", "optimizer", "name"), cfg.optimizer.name),
                            f"resume with train.optimizer.name={was}, or start a new run in another folder")
        load_checkpoint(path, self.model, self.optimizer, self.scheduler, data=data, strict_spec=False)  # checked
        self.step = step
        self.last_checkpoint = path
        log.info("resumed %s at step %d", path, self.step)
        if old is not None:
            self._apply_changes(old)

    def _apply_changes(self, old: dict[str, Any]) -> None:
        """The checkpoint brought back its optimiser's settings and base rates; put this run's
        ``train:`` values in their place (lr, weight decay, betas/momentum, the schedule) and log
        every setting that differs from the checkpoint's."""
        changed = _diff(old, self.cfg.model_dump(mode="json"))
        shown = [(k, a, b) for k, a, b in changed if k.split(".")[0] not in _UNLOGGED]
        if shown:
            log.warning("resuming at step %d with changed settings: %s", self.step,
                        "; ".join(f"{k} {_shown(a)} -> {_shown(b)}" for k, a, b in shown))
        if not any(k.startswith(("optimizer.", "schedule.", "steps")) for k, _, _ in changed):
            return  # nothing the optimiser or the schedule reads: the restored state is exact
        opt, groups = self.cfg.optimizer, self.optimizer.param_groups
        factor = lr_factor(self.step, self.cfg)  # what LambdaLR computes after `step` steps
        for g in groups:
            g["weight_decay"] = opt.weight_decay if all(p.dim() >= 2 for p in g["params"]) else 0.0
            if opt.name == "adamw":
                g["betas"] = tuple(opt.betas)
            else:
                g["momentum"], g["nesterov"] = opt.momentum, opt.nesterov and opt.momentum > 0
            g["initial_lr"], g["lr"] = opt.lr, opt.lr * factor
        self.scheduler.base_lrs = [opt.lr for _ in groups]
        self.scheduler._last_lr = [g["lr"] for g in groups]

    def save(self) -> Path | None:
        """Write ``<out>/last.pt`` (rank 0 only); other ranks wait so nobody runs ahead."""
        path = self.checkpoint_path
        if path is None:
            return None
        if self.rank == 0:
            save_checkpoint(path, self.model, self.optimizer, self.scheduler, step=self.step,
                            extra={"config": self.cfg.model_dump(mode="json"), "world": self.world, **self.meta})
        dist_util.barrier()
        self.last_checkpoint = path
        return path

    # ------------------------------------------------------------------------------------ steps
    def next_batch(self, step: int) -> dict[str, torch.Tensor]:
        try:
            batch = self.source.batch(step, self.cfg.batch_size, self.rank, self.world)
        except (MemoryError, RuntimeError) as e:
            if self._batch_checked or not out_of_memory(e):
                raise
            raise SpecError(f"the first batch of train.batch_size={self.cfg.batch_size} samples from "
                            f"{source_name(self.source)} does not fit in memory ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else 'out of memory'})",
                            spec_loc(self.model, ("train", "batch_size"), self.cfg.batch_size),
                            "lower train.batch_size") from None
        ren = self.cfg.data.rename if self.cfg.data is not None else {}
        batch = {ren.get(k, k): v for k, v in batch.items()}
        if not self._batch_checked:  # once: a later batch of the same source has the same layout
            check_batch(self, batch)
            self._batch_checked = True
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if k in self.input_names}

    def train_step(self, batch: dict[str, torch.Tensor], detail: bool = True) -> dict[str, float]:
        """One optimiser step on ``batch``; returns the loss (and with ``detail`` its terms and
        the EMA momenta) as floats."""
        cfg = self.cfg
        if self.latents and any(z not in batch for z in self.latents):
            try:
                batch, found = infer_latents(self.model, batch, self.latents, steps=cfg.latent_steps)
                self._note_capped(found)
            except NonFiniteEnergyError as e:  # the weights (or the data) went non-finite before the loss did
                self._nonfinite_latent(e)
        if not self.model.training:
            self.model.train()
        module = self.step_module if detail or self.lean_module is None else self.lean_module
        feed = batch if module is self.step_module or len(batch) == len(self.lean_inputs) else \
            {k: v for k, v in batch.items() if k in self.lean_inputs}
        try:  # zero-cost unless it raises (Python 3.11+)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                out = module(**feed)
        except Exception as e:  # re-raised naming the block and its spec line; never swallowed
            raise self._locate(batch, e) from e
        loss = out["loss"]
        if self.latent_encoders:  # amortised inference: encoder(x, y) -> z*, outside the objective's weights
            out["term.latent_encoder"] = latent_encoder_loss(self.model, batch)
            loss = loss + out["term.latent_encoder"]
        for t in self.latent_terms if detail else ():  # already in the loss; recomputed only to log them
            coef = self.graph.nodes[t.node].decl.regularizer.get(t.latent_reg, 1.0)  # {l1: 0.05}: 0.05 |z|_1
            out[f"term.{t.name}"] = LATENT_PENALTIES[t.latent_reg](batch[t.node]).mean() * (t.weight * coef)
        value = float(loss.detach())
        if not math.isfinite(value) and self.world == 1:  # under DDP: after the all-reduce, on every rank
            self._nonfinite(batch, f"loss is {value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1 and self.latent_encoders:  # trained outside the DDP module: average by hand
            dist_util.average_grads([p for p in self.params if p.grad is not None], self.ddp_params)
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip or math.inf)
        if not torch.isfinite(norm):  # a NaN on any rank reaches every rank through the gradients
            if not math.isfinite(value):
                self._nonfinite(batch, f"loss is {value}")
            self._nonfinite(batch, f"gradient norm is {float(norm)}", nonfinite_grad_block(self.model, self.graph))
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.optimizer.step()
        self.scheduler.step()
        momenta = self.model.update_ema(progress=self.step / cfg.steps)  # I-JEPA: m0 after the first step
        self.step += 1
        rec: dict[str, Any] = {"loss": value}
        rec["lr"] = lr
        if detail:  # one device sync per term: only on steps that log them
            rec.update({k[5:]: _scalar(v) for k, v in out.items() if k.startswith("term.")})
            rec.update({f"ema.{k}": m for k, m in momenta.items()})
        self._last_out = out
        return rec

    def _nonfinite(self, batch: dict, what: str, block: str | None = None) -> None:
        block = block or first_nonfinite_block(self.program, batch, self.graph)
        where = f"; block `{block}` first produced a non-finite value" if block else ""
        loc = f"{self.graph.nodes[block].loc}: " if block and block in self.graph.nodes else ""
        kept = f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "; no checkpoint written yet"
        raise NonFiniteLoss(f"{loc}training stopped at step {self.step + 1}: {what}{where}{kept}")

    def _note_capped(self, found) -> None:
        """Log, once a run, that the inner z-minimisation stopped samples at its step cap."""
        if self._warned_capped or found is None or not found.capped or self.rank != 0:
            return
        self._warned_capped = True
        log.warning("step %d: latent inference stopped %d of %d sample(s) at its step cap (%s) before they converged; "
                    "raise train.latent_steps or the latent's `inference: {steps: ...}` (logged once a run)",
                    self.step + 1, found.capped, len(found.converged),
                    self.cfg.latent_steps if self.cfg.latent_steps is not None else "the latent's")

    def _nonfinite_latent(self, err: NonFiniteEnergyError) -> None:
        """Latent inference met a NaN/inf energy: the run stops like a non-finite loss would."""
        loc, sep, what = str(err).partition(": ")
        if not (sep and LOC.match(loc)):  # the minimiser's message starts at the culprit's spec line
            loc, what = "", str(err)
        bad = nonfinite_weights_block(self.model, self.graph)
        weights = f"; the weights of block `{bad}` are non-finite (lower train.lr?)" if bad else ""
        kept = f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "; no checkpoint written yet"
        raise NonFiniteLoss(f"{loc + ': ' if loc else ''}training stopped at step {self.step + 1}: "
                            f"latent inference failed: {what}{weights}{kept}") from err

    def _locate(self, batch: dict[str, torch.Tensor], err: Exception) -> Exception:
        """``err`` from the training program, as a BlockRuntimeError naming the failing block."""
        if isinstance(err, SpecError) or (isinstance(err, BlockRuntimeError) and not self._oom(err)):
            return err
        if isinstance(err, BlockRuntimeError):  # located by the program already; add the usual fix
            return BlockRuntimeError(f"{err}{self._oom(err)}")
        bad = self.model.input_problem(batch, self.step_program)  # the check model calls make
        if bad is not None:
            return InputError(bad)
        step = f"training step {self.step + 1}"
        return culprit(self.program, batch, err, f"at {step}", f"{step} of `{self.model.spec.name}`",
                       self.graph.nodes, self._oom(err))

    def _oom(self, err: Exception) -> str:
        return (f" (out of memory at train.batch_size={self.cfg.batch_size}: lower it)"
                if out_of_memory(err) else "")

    def monitor(self) -> dict[str, float]:
        """Collapse monitors on the monitored representations of the last step."""
        stats = {}
        for n in self.monitored:
            s = collapse_stats(self._last_out[f"rep.{n}"])
            stats.update({f"collapse.{n}.{k}": v for k, v in s.items() if k not in ("dim", "rows")})
            why = collapse_reason(s)
            if why and not self._warned_collapse:
                self._warned_collapse = True
                log.warning("step %d: representation `%s` is collapsing: %s (std %.2g, effective rank %.2f of %d)",
                            self.step, n, why, s["std"], s["erank"], s["dim"])
        return stats

    # ------------------------------------------------------------------------------------- loop
    def fit(self) -> TrainResult:
        """Run until ``train.steps``; checkpoints every ``checkpoint_every`` and at the end."""
        cfg = self.cfg
        result = TrainResult(step=self.step, out=self.out)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress or self.rank != 0,
                   desc=self.model.spec.name, dynamic_ncols=True)
        t0, s0 = time.perf_counter(), self.step
        try:
            while self.step < cfg.steps:
                nxt = self.step + 1
                logged = nxt % cfg.log_every == 0 or nxt == cfg.steps
                monitored = nxt % cfg.monitor_every == 0 or nxt == cfg.steps
                rec = self.train_step(self.next_batch(self.step), detail=logged or monitored)
                result.losses.append(rec["loss"])
                if monitored:
                    rec.update(self.monitor())
                    if self.leak_probe is not None:  # the world model's wall-leak rate, with the monitors
                        rec.update(self.leak_probe(self.model))
                    logged = True
                if logged:
                    rec = dist_util.average(rec, self.device)
                    rec = {"step": self.step, **rec,
                           "steps_per_s": (self.step - s0) / max(time.perf_counter() - t0, 1e-9)}
                    result.history.append(rec)
                    if self.metrics is not None:
                        self.metrics.write(rec)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items()
                                     if k == "loss" or (k in {t.name for t in self.graph.objective})}, refresh=False)
                bar.update(1)
                for cb in self.callbacks:
                    cb(self, self.step, rec)
                if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.save()
            result.checkpoint = self.save()
        finally:
            bar.close()
            if self.metrics is not None:
                self.metrics.close()
        result.step = self.step
        result.collapsed = self._warned_collapse
        return result


def infer_latents(model: CompiledModel, batch: dict[str, torch.Tensor], names: list[str],
                  steps: int | None = None):
    """``batch`` with z* = argmin_z E(batch, z) filled in for latents ``names`` (weights fixed),
    by :func:`jepa_graph.minimize.infer_latents` with each latent's declared inference method and
    convergence test, ``steps`` (``train.latent_steps``) its cap; and the search's
    :class:`~jepa_graph.inference.minimize.Minimum` (per-sample ``converged``)."""
    kw = {"steps": steps} if steps is not None else {}
    return minimize_latents(model, batch, over=list(names), return_info=True, **kw)


# settings that change neither the optimisation nor the data: not worth a line on resume
_UNLOGGED = {"out", "device", "log_every", "monitor_every", "checkpoint_every", "compile"}


def _sync_batchnorm(model: CompiledModel) -> None:
    """Under DDP: every BatchNorm of ``model`` normalises over the global batch (in place, see
    :func:`convert_sync_batchnorm`); one that cannot is a located error naming its block."""
    try:
        convert_sync_batchnorm(model)
    except UnsyncableBatchNorm as e:
        owner = e.path.split(".")[1] if e.path.startswith("blocks.") else None
        n = next((n for n in model.graph.topo() if n.op == "call" and n.module == owner), None)
        raise SpecError(f"block `{n.name if n else owner}`: {e}, so under torchrun it would normalise each rank's "
                        "shard, not the global batch", n.loc if n else None,
                        "use torch's BatchNorm1d/2d/3d in the block (synchronised for you), or train in one "
                        "process") from None


def _diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for each leaf setting that differs between two config dumps."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in dict.fromkeys([*old, *new]) for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def _shown(v: Any) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def out_of_memory(err: BaseException) -> bool:
    """An allocation failure (CPU or GPU), whose fix is usually a smaller batch."""
    text = str(err).lower()
    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in text \
        or "out of memory" in text or "not enough memory" in text


def _scalar(v: torch.Tensor) -> float:
    return float(v.detach().float().mean())


def _monitored(g) -> list[str]:
    """Representations to watch for collapse: the world model's encoder, else the first
    trainable encoder the objective depends on."""
    if g.world_model:
        return [g.world_model.encoder]
    need = g.ancestors([t.node for t in g.objective])
    for n in g.topo():
        if n.op == "call" and n.kind == "encoder" and not n.ema_of and not n.frozen and n.name in need:
            return [n.name]
    return []


def train(model: CompiledModel, data: Any = None, steps: int | None = None, **kwargs: Any) -> TrainResult:
    """Train ``model`` (see :class:`Trainer` for ``data`` and keywords); returns a :class:`TrainResult`.

    Example::

        result = jg.train(model, "two_rooms", steps=1000, lr=1e-3, out="runs/tr")
    """
    if steps is not None:
        kwargs["steps"] = steps
    return Trainer(model, data, **kwargs).fit()
