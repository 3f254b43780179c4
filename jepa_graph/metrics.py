"""Training metrics: a JSONL log (one object per line), optional TensorBoard, collapse monitors.

Collapse monitors watch a representation ``s`` (B, D) or tokens (B, N, D):

* ``std``: the per-dimension standard deviation over the batch, averaged (and its minimum).
  VICReg's variance term keeps it near 1; a collapsed encoder drives it to 0.
* ``erank``: the effective rank exp(H(p)), p = normalised singular values of the centred
  batch (Roy & Vetterli 2007; RankMe). 1 when every sample maps to one line, D at best.

A representation is flagged collapsed when its mean std falls below ``STD_FLOOR`` or its
effective rank below ``ERANK_FLOOR`` (for D > 1); the trainer logs a warning once per run.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)
STD_FLOOR = 1e-3  # below this, every sample has nearly the same representation
ERANK_FLOOR = 1.5  # below this, representations lie on about one line


@torch.no_grad()
def collapse_stats(s: torch.Tensor) -> dict[str, float]:
    """std (mean, min over dims) and effective rank of representations ``s``: (B, D) or (B, ..., D)."""
    s = s.detach().float()
    s = s.reshape(-1, s.shape[-1]) if s.dim() > 2 else s.reshape(s.shape[0], -1)
    if s.shape[0] < 2:
        return {}
    std = s.std(dim=0)  # (D,)
    sv = torch.linalg.svdvals(s - s.mean(dim=0, keepdim=True))  # (min(M, D),)
    p = sv / sv.sum().clamp_min(1e-12)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    return {"std": std.mean().item(), "std_min": std.min().item(), "erank": entropy.exp().item(),
            "dim": float(s.shape[1])}


def is_collapsed(stats: dict[str, float]) -> bool:
    """True when the monitor says the representation carries (almost) no information."""
    if not stats:
        return False
    return stats["std"] < STD_FLOOR or (stats["dim"] > 1 and stats["erank"] < ERANK_FLOOR)


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
        self.path.write_text("".join(ln + "\n" for ln in keep))

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
    """The records of a run: ``path`` is the run folder or its metrics.jsonl."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]


@torch.no_grad()
def rollout_error(model, x_seq: torch.Tensor, a_seq: torch.Tensor, target: str,
                  latent_zero: bool = True) -> dict[str, list[float]]:
    """Normalised latent error of H-step world-model predictions, and of copying the last state.

    Args:
        x_seq: observations (N, H+1, ...); a_seq: actions (N, H, ...).
        target: the block whose representation of x_t the predictor is trained to match
            (the EMA target encoder, or the encoder itself).
    Returns ``{"model": [e_1..e_H], "copy_last": [...]}``: mean squared error over the
    representation's total variance; copy-last predicts target(x_0) for every t.
    """
    wm = model.graph.world_model
    horizon = a_seq.shape[1]
    tgt = model.blocks[model.graph.nodes[target].module]
    true = torch.stack([tgt(x_seq[:, t]) for t in range(horizon + 1)], 1)  # (N, H+1, D)
    var = ((true - true.mean((0, 1))) ** 2).sum(-1).mean()
    extra = {}
    if wm.get("latent") and latent_zero:  # the latent's prior mode: "nothing unexpected happens"
        extra[wm["latent"]] = torch.zeros(x_seq.shape[0], *model.graph.nodes[wm["latent"]].ttype.shape)
    s = model.encode(**{model.input_names("encode")[0]: x_seq[:, 0]})["state"]
    out = {"model": [], "copy_last": []}
    for t in range(horizon):
        s = model.step(state=s, **{wm["action"]: a_seq[:, t]}, **extra)["state"]
        out["model"].append((((s - true[:, t + 1]) ** 2).sum(-1).mean() / var).item())
        out["copy_last"].append((((true[:, 0] - true[:, t + 1]) ** 2).sum(-1).mean() / var).item())
    return out
