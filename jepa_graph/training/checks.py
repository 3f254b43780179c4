"""Checks a training run makes before it spends time: the device exists, the settings fit together
(batch size against ranks, batch-statistics regularisers and the data source; AdamW betas; the
cosine floor below the peak rate), the first batch fits the spec's inputs; and the helpers its
located errors use (where the spec wrote a ``train:`` value, which block holds non-finite weights).

Each failure is a :class:`~jepa_graph.errors.SpecError` at the spec line (or command-line
override) it comes from, with a hint, raised before any block runs.
"""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import Diagnostic, Location, SpecError
from ..runtime.inputs import InputError, dtype_kind  # noqa: F401 (dtype_kind: imported from here too)

if TYPE_CHECKING:
    from ..compiler.model import CompiledModel
    from ..frontend.train_config import TrainConfig

log = logging.getLogger("jepa_graph.training")
# regularisers computed from statistics over the batch (a std, a covariance): NaN on one sample
BATCH_STAT_REGULARIZERS = ("vicreg", "barlow_twins", "variance_hinge", "covariance")


def check_device(name: str, loc: Location | None = None) -> None:
    """A SpecError (at ``loc``: the spec's ``device:`` or the override) when ``name`` is not usable here."""
    problem = None
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name[5:]) if name.startswith("cuda:") else 0
        if count == 0:
            problem = "no CUDA device here" + (" (this torch build has no CUDA)" if torch.version.cuda is None else "")
        elif index >= count:
            problem = f"there is no `{name}`: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    elif name == "mps" and not torch.backends.mps.is_available():
        problem = "no MPS (Apple GPU) device here"
    if problem:
        raise SpecError(f"train.device={name}: {problem}", loc,
                        "use train.device=cpu, or train.device=auto (a GPU when there is one, else the CPU)")


def spec_loc(model: CompiledModel, path: tuple, value: Any) -> Location | None:
    """Where the spec (or a command-line override) wrote ``path`` inside ``train:``, when the
    value in use is the spec's; None for values given in Python. A setting the spec leaves at its
    default points at the nearest section the spec writes (``train:`` itself)."""
    src, cur = model.spec.source, model.spec.train
    for part in path[1:]:
        cur = getattr(cur, part, None)
    if src is None or model.spec.train is None or cur != value:
        return None
    for n in range(len(path), 0, -1):
        if path[:n] in src.values:
            return src.values[path[:n]]
    return None


def check_config(model: CompiledModel, cfg: TrainConfig, world: int = 1) -> None:
    """Settings that validate one by one but not together, as SpecErrors at the spec line or
    override that set them: the batch splits over ``world`` ranks and holds two samples for a
    batch-statistics regulariser (under DDP it gathers the global batch); AdamW's betas lie in
    [0, 1); the cosine schedule's ``final_lr`` does not exceed ``lr``. A warm-up as long as the
    run is a warning (short test runs do it)."""
    def at(*path: str) -> Location | None:
        return spec_loc(model, ("train",) + path, _get(cfg, path))

    bs = cfg.batch_size
    if bs % world:
        raise SpecError(f"train.batch_size={bs} does not split over {world} processes", at("batch_size"),
                        f"use a multiple of {world}")
    stats = batch_stat_blocks(model)
    if bs < 2 and stats:  # under DDP they gather every rank's shard, so the global batch is what counts
        n = stats[0]
        raise SpecError(Diagnostic(
            f"train.batch_size={bs}, but regulariser `{n.name}` ({n.type}) takes statistics over the batch "
            "(a std or covariance of one sample is NaN)", at("batch_size"),
            f"use train.batch_size=2 or more (a few dozen for useful {n.type} statistics)",
            related=[(f"regulariser `{n.name}`", n.loc)] if n.loc is not None else []))
    for i, b in enumerate(cfg.optimizer.betas):
        if not 0 <= b < 1:
            raise SpecError(f"train.optimizer.betas: beta {i + 1} is {b}; betas are decay rates in [0, 1)",
                            at("optimizer", "betas"), "e.g. train.optimizer.betas=[0.9, 0.999] (the default)")
    lr, sched = cfg.optimizer.lr, cfg.schedule
    if sched.kind == "cosine" and sched.final_lr > lr:
        raise SpecError(f"train.schedule.final_lr={sched.final_lr} is above the peak rate train.optimizer.lr={lr}; "
                        "the cosine schedule decays from lr down to final_lr", at("schedule", "final_lr"),
                        f"use a final_lr below {lr} (e.g. {lr / 100:g}), or train.schedule.kind=constant")
    if sched.warmup >= cfg.steps:
        log.warning("train.schedule.warmup=%d is not shorter than train.steps=%d: the run ends before the "
                    "learning rate reaches its peak %g", sched.warmup, cfg.steps, lr)
    elif 2 * sched.warmup > cfg.steps:  # e.g. train.steps overridden below the spec's, warm-up kept (not scaled)
        log.warning("train.schedule.warmup=%d is %d%% of train.steps=%d: most of the run is warm-up (the warm-up "
                    "is kept as written, not scaled to the steps); for a short run set e.g. train.warmup=%d",
                    sched.warmup, round(100 * sched.warmup / cfg.steps), cfg.steps, max(1, cfg.steps // 10))


def check_source(model: CompiledModel, cfg: TrainConfig, source: Any, world: int = 1) -> None:
    """A source that cannot serve this run's per-rank batch (``fork`` with ``paired``: an even
    one) says so through ``check_batch_size``; a SpecError at train.batch_size."""
    check = getattr(source, "check_batch_size", None)
    problem = check(cfg.batch_size // world) if callable(check) else None
    if problem:
        data = data_source_loc(model, cfg)
        raise SpecError(Diagnostic(f"train.batch_size={cfg.batch_size}: {source_name(source)} {problem}",
                                   spec_loc(model, ("train", "batch_size"), cfg.batch_size),
                                   "change train.batch_size, or the source's settings (train.data.with)",
                                   related=[("the data source", data)] if data is not None else []))


def data_source_loc(model: CompiledModel, cfg: TrainConfig) -> Location | None:
    """Where the source in use was named (``data: fork``, ``train.data=fork``), when the spec named it."""
    return spec_loc(model, ("train", "data", "source"), cfg.data.source) if cfg.data is not None else None


def batch_stat_blocks(model: CompiledModel) -> list:
    """Regulariser nodes the objective reaches that take statistics over the batch (VICReg...)."""
    g = model.graph
    need = g.ancestors([t.node for t in g.objective])
    return [n for n in g.topo() if n.op == "call" and n.kind == "regularizer"
            and n.type in BATCH_STAT_REGULARIZERS and n.name in need]


def _get(obj: Any, path: tuple) -> Any:
    for part in path:
        obj = getattr(obj, part, None)
    return obj


def source_name(source: Any) -> str:
    name = getattr(source, "name", "")
    return f"data source `{name}`" if isinstance(name, str) and name else f"the data ({type(source).__name__})"


LOC = re.compile(r"^.+:\d+:\d+$")  # file:line:col


def nonfinite_weights_block(model: CompiledModel, graph) -> str | None:
    """The first block (in graph order) holding a NaN/inf weight."""
    for n in graph.topo():
        if n.op == "call" and any(not torch.isfinite(p).all() for p in model.blocks[n.module].parameters()):
            return n.name
    return None


def check_batch(trainer, batch: dict[str, Any]) -> None:
    """A :class:`Trainer`'s first ``batch`` against the training step's inputs (those latents it
    lacks are inferred), by the one input check (:mod:`jepa_graph.runtime.inputs`) model calls and
    energy minimisation use: an InputError at the input's declaration, before any block runs, with
    a note at the data source when the spec names it. Devices are not compared: the batch moves
    to the run's device after this check."""
    model = trainer.model
    args = [a for a in model.signature(trainer.step_program) if a.name not in trainer.latents or a.name in batch]
    bad = model.input_problem(batch, args, device=False)
    if bad is None:
        return
    data_loc = data_source_loc(model, trainer.cfg) if trainer.source_from_spec else None
    if data_loc is not None:
        bad.related.append((source_name(trainer.source), data_loc))
    raise InputError(bad)
