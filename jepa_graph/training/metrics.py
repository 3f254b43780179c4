"""Training metrics: a JSONL log (one object per line), optional TensorBoard, collapse monitors,
world-model rollout errors and wall leaks.

Collapse monitors watch a representation ``s`` (B, D) or tokens (B, N, D):

* ``std``: the per-dimension standard deviation over the batch, averaged (and its minimum).
  VICReg's variance term keeps it near 1; a collapsed encoder drives it to 0.
* ``erank``: the effective rank exp(H(p)), p = normalised singular values of the centred
  batch (Roy & Vetterli 2007; RankMe). 1 when every sample maps to one line, D at best.
* ``dead``: the fraction of dimensions whose std is under ``DEAD_STD`` of the liveliest one's.

:func:`collapse_reason` flags (the trainer logs a warning once per run):

* complete collapse: mean std < ``STD_FLOOR``, or effective rank < ``ERANK_FLOOR`` (D > 1);
* dimensional (partial) collapse: effective rank < ``ERANK_FRACTION`` of the attainable rank
  r = min(D, rows - 1) once r >= ``ERANK_MIN_RANK``, or more than ``DEAD_FRACTION`` of the
  dimensions dead.

The relative floor is loose on purpose: a healthy representation of low-dimensional data is
low-rank. On the shipped specs healthy runs keep 10-40% of the attainable rank (two_rooms' 32-d
state of a 2-D world: 3.4-5.6; I-JEPA, V-JEPA, VICReg at 64-d: 16-37), while the partly
collapsed I-JEPA of benchmarks/RESULTS.md (lr 2e-3) fell to 5.4 of 64. The floor applies from
r = 64 only, so small states of small worlds never trip it.

World models on data with walls (a source yielding ``blocked_seq``, ``state_seq``: the
``two_rooms_wall`` source) are also scored by :func:`wall_leaks`: the share of wall-stopped moves
the model lets through (``leak``), and of free moves it predicts as no move (``stall``); the
trainer logs both with the collapse monitors (:class:`LeakProbe`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..compiler.programs import declare, fx_name
from ..core.atomic import atomic_write
from ..core.errors import Location, SpecError, register_source
from ..data import source_info

log = logging.getLogger(__name__)
STD_FLOOR = 1e-3  # below this, every sample has nearly the same representation
ERANK_FLOOR = 1.5  # below this, representations lie on about one line
ERANK_FRACTION = 0.1  # effective rank under 10% of the attainable rank: dimensional collapse
ERANK_MIN_RANK = 64  # ...judged only when the attainable rank is at least this (see above)
DEAD_STD = 0.01  # a dimension whose std is under 1% of the largest one's carries ~nothing
DEAD_FRACTION = 0.5  # more than half the dimensions dead: partial collapse


@torch.no_grad()
def collapse_stats(s: torch.Tensor) -> dict[str, float]:
    """std (mean, min over dims), effective rank and dead-dimension fraction of representations
    ``s``: (B, D) or tokens (B, ..., D), whose rows M = B * ... are the samples."""
    s = s.detach().float()
    s = s.reshape(-1, s.shape[-1]) if s.dim() > 2 else s.reshape(s.shape[0], -1)  # (M, D)
    if s.shape[0] < 2:
        return {}
    std = s.std(dim=0)  # (D,)
    sv = torch.linalg.svdvals(s - s.mean(dim=0, keepdim=True))  # (min(M, D),)
    p = sv / sv.sum().clamp_min(1e-12)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    dead = (std < DEAD_STD * std.max()).float().mean()  # all-zero std: no dim is "deader" than another
    return {"std": std.mean().item(), "std_min": std.min().item(), "erank": entropy.exp().item(),
            "dead": dead.item(), "dim": float(s.shape[1]), "rows": float(s.shape[0])}


def collapse_reason(stats: dict[str, float]) -> str | None:
    """Why the monitor says the representation collapsed (fully or partly), or None."""
    if not stats:
        return None
    dim = stats["dim"]
    cap = min(dim, stats.get("rows", dim + 1) - 1)  # a centred batch of M rows has rank <= M - 1
    if stats["std"] < STD_FLOOR:
        return f"mean std {stats['std']:.2g} < {STD_FLOOR:g}"
    if dim > 1 and stats["erank"] < ERANK_FLOOR:
        return f"effective rank {stats['erank']:.2f} < {ERANK_FLOOR:g}"
    if cap >= ERANK_MIN_RANK and stats["erank"] < ERANK_FRACTION * cap:
        return f"effective rank {stats['erank']:.1f} is under {ERANK_FRACTION:.0%} of the attainable {cap:.0f}"
    if dim > 1 and stats.get("dead", 0.0) > DEAD_FRACTION:
        return f"{stats['dead']:.0%} of the {dim:.0f} dimensions are dead (std < {DEAD_STD:g} x the largest)"
    return None


def is_collapsed(stats: dict[str, float]) -> bool:
    """True when the monitor says the representation carries (almost) no information, or
    spans a small part of its dimensions (see :func:`collapse_reason`)."""
    return collapse_reason(stats) is not None


class MetricsWriter:
    """Appends one JSON object per call to ``<run>/metrics.jsonl`` (and TensorBoard if installed).

    ``truncate_after(step)`` drops lines past a step, so a resumed run's log reads as if the
    run had never stopped.
    """

    def __init__(self, folder: str | Path, tensorboard: bool = True):
        self.path = Path(folder) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
                self._tb = SummaryWriter(str(self.path.parent / "tb"))
            except ImportError:
                log.debug("tensorboard not installed; metrics go to %s only", self.path)

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = []
        for ln in self.path.read_text().splitlines():
            try:
                rec = json.loads(ln)
            except json.JSONDecodeError:  # a line torn by the kill we are resuming from
                continue
            if rec.get("step", 0) <= step:
                keep.append(ln)
        atomic_write(self.path, "".join(ln + "\n" for ln in keep))  # a kill here keeps the old history

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
        if self._tb is not None:
            step = int(record.get("step", 0))
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k.replace(".", "/"), v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run: ``path`` is the run folder or its metrics.jsonl.

    A last line that is not JSON was torn by a kill mid-write (the run may still be going) and is
    skipped; a bad line before it is a located SpecError."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"no metrics log at {p}", hint="name a run folder that `jepa-graph train` wrote") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{p} is not a metrics log: byte {e.start} is not UTF-8 text",
                        hint="metrics.jsonl holds one JSON object per line, as `jepa-graph train` writes it") from None
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    out = []
    for k, (i, ln) in enumerate(lines):
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError as e:
            if k == len(lines) - 1:
                log.warning("%s:%d: skipping a torn last line", p, i)
                break
            register_source(str(p), text)
            raise SpecError(f"line {i} of the metrics log is not JSON ({e.msg})", Location(str(p), i, e.colno),
                            "metrics.jsonl holds one JSON object per line, as `jepa-graph train` writes it") from None
        out.append(rec)
    return out


@torch.no_grad()
def rollout_error(model, x_seq: torch.Tensor, a_seq: torch.Tensor, target: str,
                  latent_zero: bool = True) -> dict[str, list[float]]:
    """Normalised latent error of H-step world-model predictions, and of copying the last state.

    Args:
        x_seq: observations (N, H+1, ...); a_seq: actions (N, H, ...).
        target: the block whose representation of x_t the predictor is trained to match
            (the EMA target encoder, or the encoder itself).
    Returns ``{"model": [e_1..e_H], "copy_last": [...]}``: mean squared error over the
    representation's total variance; copy-last predicts target(x_0) for every t. The
    predictions come from the ``rollout`` program: all H steps in one call.
    """
    wm = model.graph.world_model
    n, horizon = a_seq.shape[:2]
    rep = declare(f"represent_{fx_name(target)}", {"rep": target}, title="Represent")
    names = model.input_names(rep)
    if len(names) != 1:
        raise ValueError(f"target `{target}` reads {', '.join(names)}; rollout_error compares it on one observation")
    true = model.run(rep.name, {names[0]: x_seq.flatten(0, 1)})["rep"].unflatten(0, (n, horizon + 1))  # (N, H+1, *S)
    var = ((true - true.mean((0, 1))) ** 2).sum(-1).mean()
    feed = {"state": model.encode(**{model.input_names("encode")[0]: x_seq[:, 0]})["state"], fx_name(wm.action): a_seq}
    if wm.latent and latent_zero:  # the latent's prior mode: "nothing unexpected happens"
        feed[fx_name(wm.latent)] = torch.zeros(n, horizon, *model.graph.nodes[wm.latent].ttype.shape,
                                               device=a_seq.device, dtype=a_seq.dtype)
    states = model.rollout(**feed)["states"]  # (N, H, *S)

    def error(pred: torch.Tensor) -> list[float]:  # (N, H, *S) against true[:, 1:], per step
        return (((pred - true[:, 1:]) ** 2).sum(-1).transpose(0, 1).flatten(1).mean(1) / var).tolist()

    return {"model": error(states), "copy_last": error(true[:, :1].expand_as(states))}


# ------------------------------------------------------------------------------- wall leaks
LEAK_KEYS = ("x_seq", "a_seq", "blocked_seq", "state_seq")  # what a source yields for wall_leaks (two_rooms_wall)
LEAK_BATCH = 256  # windows the trainer draws to score the leak rate on (those a wall stopped a move in)
PIXEL_BATCH = 48  # ... at most this many of them with image observations (2 x 65 x 65 each)


def walked_through(state_seq: torch.Tensor, a_seq: torch.Tensor, pixels: bool) -> torch.Tensor:
    """Observations of where each move would have ended without walls: position + action.

    ``state_seq`` (N, H+1, 4): the true states (x, y, wall_x, door_y) of a ``two_rooms_wall``
    window; ``a_seq`` (N, H, 2). Returns (N, H, 4) states, or (N, H, 2, 65, 65) images, in the
    layout of that source's ``x_seq``. The move's norm is clipped as the environment clips it."""
    from ..envs.wall_rooms import WallRooms, clip_norm  # reason: only the two_rooms_wall metric draws walls
    rooms = WallRooms()
    n, horizon = a_seq.shape[:2]
    start = state_seq[:, :-1].reshape(n * horizon, 4)
    pos = start[:, :2] + clip_norm(a_seq.reshape(n * horizon, 2).to(start.dtype), rooms.max_step)
    wall_x, door_y = start[:, 2], start[:, 3]
    obs = rooms.pixels(pos, rooms.walls(wall_x, door_y)) if pixels else rooms.state(pos, wall_x, door_y)
    return obs.reshape(n, horizon, *obs.shape[1:])


@torch.no_grad()
def wall_leaks(model, x_seq: torch.Tensor, a_seq: torch.Tensor, blocked_seq: torch.Tensor,
               x_through: torch.Tensor, target: str | None = None) -> dict[str, float]:
    """How often the world model lets a blocked move through the wall, judged in latent space.

    For every transition a wall stopped (``blocked_seq[n, t]``), the model's predicted next
    state s^_{t+1} is compared with the representations of two observations: the true one,
    x_{t+1} (the agent stopped at the wall), and ``x_through[n, t]`` (where the move would have
    ended without walls, :func:`walked_through`). The move *leaks* when

        |s^_{t+1} - R(x_through)|^2 < |s^_{t+1} - R(x_{t+1})|^2,

    R the representation of ``target`` (default: the world model's encoder). Two predictions:
    ``step``, one world-model step from the true state, s^_{t+1} = step(R(x_t), a_t), which
    isolates what the model learnt of walls; and ``rollout``, the open-loop prediction from the
    window's first state, s^_{t+1} = rollout(R(x_0), a_0..a_t), as a planner sees it. A latent, if
    the world model has one, is held at 0 (its prior mode: nothing unexpected happens).

    A model that predicts no motion at all never leaks (an agent pressed against a wall stays
    where it was), so the moves no wall stopped are scored too: such a move *stalls* when the
    prediction is closer to R(x_t), where the agent was, than to R(x_{t+1}), where it went. A
    model that ignores walls leaks every blocked move; one that never moves stalls every free one.

    Args:
        x_seq: (N, H+1, *obs); a_seq: (N, H, *act); blocked_seq: (N, H) bool;
        x_through: (N, H, *obs).
    Returns ``leak.step``, ``leak.rollout`` (the shares of blocked moves that leak), ``stall.step``,
    ``stall.rollout`` (the shares of free moves that stall), NaN where no move of that kind is in
    the batch, and ``leak.blocked``, the number of blocked moves scored.
    """
    wm = model.graph.world_model
    if wm is None or wm.action is None:
        raise ValueError(f"`{model.spec.name}` has no world model with an action to step; wall_leaks needs one")
    target = target or wm.encoder
    n, horizon = a_seq.shape[:2]
    rep = declare(f"represent_{fx_name(target)}", {"rep": target}, title="Represent")
    names = model.input_names(rep)
    if len(names) != 1:
        raise ValueError(f"target `{target}` reads {', '.join(names)}; wall_leaks compares it on one observation")
    true = model.run(rep.name, {names[0]: x_seq.flatten(0, 1)})["rep"].unflatten(0, (n, horizon + 1))  # (N, H+1, *S)
    through = model.run(rep.name, {names[0]: x_through.flatten(0, 1)})["rep"].unflatten(0, (n, horizon))  # (N, H, *S)
    enc = model.input_names("encode")[0]
    states = model.encode(**{enc: x_seq.flatten(0, 1)})["state"].unflatten(0, (n, horizon + 1))  # (N, H+1, *S)
    zeros = {}
    if wm.latent:
        zeros[fx_name(wm.latent)] = torch.zeros(n * horizon, *model.graph.nodes[wm.latent].ttype.shape,
                                                device=a_seq.device, dtype=a_seq.dtype)
    one = model.step(state=states[:, :-1].flatten(0, 1), **{fx_name(wm.action): a_seq.flatten(0, 1)},
                     **zeros)["state"].unflatten(0, (n, horizon))  # (N, H, *S)
    feed = {"state": states[:, 0], fx_name(wm.action): a_seq}
    feed.update({k: v.unflatten(0, (n, horizon)) for k, v in zeros.items()})
    rolled = model.rollout(**feed)["states"]  # (N, H, *S)
    blocked = blocked_seq.bool()  # (N, H)

    def dist(pred: torch.Tensor, rep: torch.Tensor) -> torch.Tensor:  # (N, H, *S) twice -> (N, H)
        return (pred - rep).pow(2).flatten(2).sum(-1)

    def share(hit: torch.Tensor, where: torch.Tensor) -> float:
        return float(hit[where].float().mean()) if bool(where.any()) else float("nan")

    out = {}
    for name, pred in (("step", one), ("rollout", rolled)):
        nxt = dist(pred, true[:, 1:])
        out[f"leak.{name}"] = share(dist(pred, through) < nxt, blocked)
        out[f"stall.{name}"] = share(dist(pred, true[:, :-1]) < nxt, ~blocked)
    out["leak.blocked"] = float(blocked.sum())
    return out


class LeakProbe:
    """The trainer's wall-leak metric: :func:`wall_leaks` on a fixed batch of the training
    source's windows (drawn once, those where a wall stopped a move), logged as ``leak.step``,
    ``leak.rollout``, ``stall.step``, ``stall.rollout`` and ``leak.blocked`` (moves scored).

    :meth:`of` returns None unless the source yields :data:`LEAK_KEYS` (``two_rooms_wall``
    does) and the spec has a world model with an action whose encoder reads one observation.
    The batch comes from the source's own generator (``seed``), so training draws are unchanged."""

    def __init__(self, batch: dict[str, torch.Tensor], pixels: bool):
        self.batch = batch
        self.through = walked_through(batch["state_seq"], batch["a_seq"], pixels)

    @classmethod
    def of(cls, model, source: Any, seed: int, size: int = LEAK_BATCH) -> LeakProbe | None:
        wm = model.graph.world_model
        name = getattr(source, "name", None)
        info = source_info(name) if isinstance(name, str) and name else None
        if wm is None or wm.action is None or info is None or any(k not in info.keys for k in LEAK_KEYS) \
                or len(model.input_names("encode")) != 1:
            return None  # decided from the catalog: nothing is sampled for sources without wall hits
        batch = source.sample(size, torch.Generator().manual_seed(seed * 7919 + 104729))
        pixels = batch["x_seq"].dim() == 5
        keep = batch["blocked_seq"].any(1).nonzero()[:, 0][:PIXEL_BATCH if pixels else None]  # windows with a wall hit
        return cls({k: batch[k][keep] for k in LEAK_KEYS}, pixels)

    def __call__(self, model) -> dict[str, float]:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        b = {k: v.to(device) for k, v in self.batch.items()}
        was = model.training
        model.eval()  # no BatchNorm statistics move, no dropout: training is unchanged
        try:
            return wall_leaks(model, b["x_seq"], b["a_seq"], b["blocked_seq"], self.through.to(device))
        finally:
            model.train(was)
