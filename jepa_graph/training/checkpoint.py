"""Checkpoints: weights, EMA targets, optimiser and scheduler state, step, RNG states, and the spec.

A checkpoint is one ``torch.save`` file of plain data (tensors, dicts, lists, numbers, strings),
so it loads with ``torch.load(weights_only=True)``: no pickled code runs when a file is opened.
It embeds the spec text and a hash of the spec's architecture (everything but ``train:``,
``description`` and ``$schema``), so loading it into a model compiled from another spec is a
clear :class:`~jepa_graph.errors.SpecError`, not a wall of missing-key messages.

Files are written atomically: to a temporary file in the same folder, flushed and fsynced,
then renamed over the target. A process killed mid-write leaves the previous checkpoint intact.

Example::

    save_checkpoint("runs/a/last.pt", model, opt, sched, step=500)
    info = load_checkpoint("runs/a/last.pt", model, opt, sched)   # info["step"] == 500
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.errors import SpecError

FORMAT = 1  # bump when the layout below changes
_ARCH_EXCLUDE = {"train", "description", "schema_"}  # keys that do not change the weights


class SpecMismatch(SpecError):
    """A checkpoint was written for another architecture. Callers that cannot pass
    ``strict_spec`` (the trainer, the CLI) re-raise it with a hint that fits their options."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The CompiledModel inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def spec_text(spec) -> str:
    """The source text of a spec (its file as written), or a canonical YAML dump without one."""
    src = getattr(spec, "source", None)
    if src is not None and getattr(src, "text", ""):
        return src.text
    import yaml
    return yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)


def spec_hash(spec) -> str:
    """sha256 of the spec's architecture: the same for YAML and ``.jepa`` forms of one spec,
    unchanged by edits to ``train:`` (so a resumed run may change its step count)."""
    fields = set(type(spec).model_fields) - _ARCH_EXCLUDE
    data = spec.model_dump(mode="json", by_alias=True, include=fields)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """Every random stream a training step may touch: torch (CPU, CUDA), Python, numpy."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _py_state(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "gauss": float(gauss)}
    except ImportError:  # numpy is optional for the library
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (streams missing here are left alone)."""
    torch.set_rng_state(state["torch"])
    random.setstate(_py_unstate(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np
        s = state["numpy"]
        np.random.set_state((s["kind"], s["keys"].numpy().astype("uint32"), s["pos"], s["has_gauss"], s["gauss"]))


def _py_state(s: tuple) -> list:
    version, internal, gauss = s  # internal: 625 ints; stored as a tensor (weights_only-safe, compact)
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def _py_unstate(s: list) -> tuple:
    return (s[0], tuple(int(v) for v in s[1].tolist()), s[2])


# ------------------------------------------------------------------------------ save / load
def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, step: int = 0, extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (temporary file + fsync + rename) and return its path.

    ``model``: a CompiledModel (or a DDP / torch.compile wrapper of one); its EMA targets are
    part of its state dict. ``extra``: plain data (numbers, strings, lists, dicts, tensors).
    """
    m = _unwrap(model)
    spec = getattr(m, "spec", None)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in m.state_dict().items()},
        "ema_targets": [t for t, _, _ in m.ema_pairs()] if hasattr(m, "ema_pairs") else [],
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "spec_name": spec.name if spec is not None else None,
        "spec_text": spec_text(spec) if spec is not None else None,
        "spec_hash": spec_hash(spec) if spec is not None else None,
        "torch_version": str(torch.__version__),
        "extra": extra or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint data (``weights_only=True``); errors are located messages."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no such checkpoint: {path}", hint="check the path (runs write `<out>/last.pt`)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, foreign pickle, not a checkpoint at all
        raise SpecError(f"{path}: not a readable jepa-graph checkpoint ({type(e).__name__}: {e})",
                        hint="checkpoints are written by `jepa-graph train` or jg.checkpoint.save_checkpoint") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError(f"{path}: not a jepa-graph checkpoint (format {data.get('format') if isinstance(data, dict) else '?'})",
                        hint=f"this version reads format {FORMAT}")
    return data


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, restore_rng: bool = True, strict_spec: bool = True,
                    data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load weights (and EMA targets), optimiser and scheduler state; restore RNG states.

    Raises :class:`SpecError` when the checkpoint was written for another spec (compared by
    architecture hash; ``strict_spec=False`` compares only parameter names and shapes).
    ``data``: the checkpoint as :func:`read_checkpoint` returned it, to check it before loading
    without reading the file twice. Returns the checkpoint dict (``step``, ``extra``, ``spec_text``...).
    """
    m = _unwrap(model)
    dev = next((p.device for p in m.parameters()), torch.device("cpu"))
    data = read_checkpoint(path, map_location=dev) if data is None else data
    if strict_spec:
        check_spec(path, m, data)
    _check_tensors(path, m, data["model"])
    m.load_state_dict(data["model"])
    if optimizer is not None and data.get("optimizer") is not None:
        optimizer.load_state_dict(data["optimizer"])
    if scheduler is not None and data.get("scheduler") is not None:
        scheduler.load_state_dict(data["scheduler"])
    if restore_rng:
        set_rng_state(_cpu_rng(data["rng"]))
    return data


def check_spec(path: str | Path, model: nn.Module, data: dict[str, Any]) -> None:
    """A :class:`SpecMismatch` when checkpoint ``data`` was written for another architecture than ``model``'s."""
    spec = getattr(_unwrap(model), "spec", None)
    if spec is None or not data.get("spec_hash"):
        return
    mine = spec_hash(spec)
    if mine != data["spec_hash"]:
        raise SpecMismatch(
            f"{path}: checkpoint was written for spec `{data.get('spec_name')}` (hash {data['spec_hash'][:12]}), "
            f"but the model was compiled from `{spec.name}` (hash {mine[:12]})",
            hint="compile the spec the checkpoint was trained with (its text is stored: "
                 "jepa_graph.checkpoint.read_checkpoint(path)['spec_text']), or pass strict_spec=False to load "
                 "weights whose names and shapes still fit")


def _check_tensors(path, m: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Same parameter names and shapes, or a SpecError listing the first differences."""
    own = m.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {list(state[k].shape)}, model {list(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
                ([f"unexpected {', '.join(extra[:5])}"] if extra else []) + shapes[:5]
        raise SpecError(f"{path}: checkpoint weights do not fit this model: " + "; ".join(parts),
                        hint="the checkpoint belongs to a different architecture")


def _cpu_rng(state: dict[str, Any]) -> dict[str, Any]:
    """RNG state tensors must be CPU ByteTensors, whatever ``map_location`` moved them to."""
    out = dict(state)
    out["torch"] = state["torch"].cpu()
    if "cuda" in state:
        out["cuda"] = [s.cpu() for s in state["cuda"]]
    return out


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
