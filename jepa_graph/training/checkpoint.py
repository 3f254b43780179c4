"""Checkpoints: weights, EMA targets, optimiser and scheduler state, step, RNG states, and the spec.

A checkpoint is one ``torch.save`` file of plain data (tensors, dicts, lists, numbers, strings),
so it loads with ``torch.load(weights_only=True)``: no pickled code runs when a file is opened.
It embeds the spec text and a hash of the spec's architecture (everything but ``train:``,
``description`` and ``$schema``), so loading it into a model compiled from another spec is a
clear :class:`~jepa_graph.errors.SpecError`, not a wall of missing-key messages.

Files are written atomically (:mod:`jepa_graph.core.atomic`): a process killed mid-write
leaves the previous checkpoint intact, and the next save removes its temporary file. Each file
stores a sha256 of its content (every tensor's bytes, every value), checked on load: a file
damaged on disk is a clear error naming it, never a run that silently continues from garbage.
Its structure is checked as a typed model before anything is used (:class:`CheckpointData`).

Example::

    save_checkpoint("runs/a/last.pt", model, opt, sched, step=500)
    info = load_checkpoint("runs/a/last.pt", model, opt, sched)   # info["step"] == 500
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from ..core.atomic import atomic_writer
from ..core.errors import SpecError

log = logging.getLogger(__name__)
FORMAT = 2  # bump when the layout below changes (2: content hash)
_READABLE = (1, 2)  # format 1 files have no content hash: they load with a warning
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
        import numpy as np  # optional: its stream is saved only where it is installed
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
        import numpy as np  # optional: only for a state that has its stream
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
    payload["sha256"] = content_hash(payload)
    path = Path(path)
    with atomic_writer(path) as f:
        torch.save(payload, f)
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
    if not isinstance(data, dict) or data.get("format") not in _READABLE:
        raise SpecError(f"{path}: not a jepa-graph checkpoint (format {data.get('format') if isinstance(data, dict) else '?'})",
                        hint=f"this version reads formats {', '.join(map(str, _READABLE))}")
    stored = data.pop("sha256", None)
    if stored is None and data["format"] >= 2:
        raise SpecError(f"{path}: the checkpoint's content hash is missing", hint=_DAMAGED)
    if stored is not None and stored != content_hash(data):
        raise SpecError(f"{path}: the checkpoint is damaged: its content does not match the hash stored when "
                        "it was written", hint=_DAMAGED)
    if stored is None:
        log.warning("%s: format-1 checkpoint without a content hash; its integrity cannot be checked", path)
    try:
        CheckpointData.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(k) for k in err["loc"]) or "(top level)"
        raise SpecError(f"{path}: malformed checkpoint: `{where}`: {err['msg']}",
                        hint="checkpoints are written by `jepa-graph train` or save_checkpoint; "
                             "this one was made or edited elsewhere") from None
    return data


_DAMAGED = "the file was changed after it was written (disk error, partial copy, edit); use another " \
           "checkpoint or retrain"


def content_hash(payload: dict[str, Any]) -> str:
    """sha256 over every value of ``payload`` (tensors by dtype, shape and bytes), in a fixed order."""
    h = hashlib.sha256()
    _digest(payload, h)
    return h.hexdigest()


def _digest(obj: Any, h) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)};".encode())
        if t.numel():
            h.update(memoryview(t.view(torch.uint8).numpy()))
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=repr):
            _digest(k, h)
            _digest(obj[k], h)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _digest(v, h)
        h.update(b"]")
    else:  # str, int, float, bool, None: what weights_only files hold
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


class _Typed(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="allow")


class _Rng(_Typed):
    torch: torch.Tensor
    python: list
    cuda: list[torch.Tensor] | None = None
    numpy: dict | None = None

    @field_validator("torch")
    @classmethod
    def _torch(cls, v: torch.Tensor) -> torch.Tensor:
        n = torch.get_rng_state().numel()
        if v.dtype != torch.uint8 or v.shape != (n,):
            raise ValueError(f"a CPU generator state is a uint8 tensor of {n} bytes, got {v.dtype} {list(v.shape)}")
        return v

    @field_validator("python")
    @classmethod
    def _python(cls, v: list) -> list:
        ok = (len(v) == 3 and isinstance(v[0], int) and isinstance(v[1], torch.Tensor) and v[1].shape == (625,)
              and (v[2] is None or isinstance(v[2], float)))
        if not ok:
            raise ValueError("Python's random state is [version, 625 int64 words, gauss]")
        return v


class _Config(_Typed):
    optimizer: dict | None = None


class _Extra(_Typed):
    config: _Config | None = None


class _Optimizer(_Typed):
    state: dict
    param_groups: list[dict]


class CheckpointData(_Typed):
    """The structure :func:`read_checkpoint` accepts, checked before any value is used."""

    format: StrictInt
    step: StrictInt = Field(ge=0)
    model: dict[str, torch.Tensor]
    ema_targets: list[str] = []
    optimizer: _Optimizer | None = None
    scheduler: dict | None = None
    rng: _Rng
    spec_name: str | None = None
    spec_text: str | None = None
    spec_hash: str | None = None
    extra: _Extra = _Extra()


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
        _check_optimizer(path, optimizer, data["optimizer"])
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


def _check_optimizer(path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """The saved optimiser state fits ``optimizer``: as many groups and parameters, and every
    per-parameter tensor (moments, momentum buffers) of its parameter's shape."""
    groups, saved = optimizer.param_groups, state["param_groups"]
    sizes, want = [len(g.get("params", [])) for g in saved], [len(g["params"]) for g in groups]
    if sizes != want:
        raise SpecError(f"{path}: the optimiser state holds parameter groups of sizes {sizes}, this model's "
                        f"optimiser {want}", hint="the checkpoint belongs to a different architecture or optimiser")
    params = {i: p for g, sg in zip(groups, saved) for i, p in zip(sg["params"], g["params"])}
    for i, st in state["state"].items():
        p = params.get(i)
        if p is None or not isinstance(st, dict):
            raise SpecError(f"{path}: the optimiser state names parameter {i!r}, which its groups do not hold",
                            hint="the checkpoint's optimiser state is malformed")
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                raise SpecError(f"{path}: optimiser state `{k}` of parameter {i} has shape {list(v.shape)}, "
                                f"the parameter {list(p.shape)}",
                                hint="the checkpoint belongs to a different architecture or optimiser")


def _cpu_rng(state: dict[str, Any]) -> dict[str, Any]:
    """RNG state tensors must be CPU ByteTensors, whatever ``map_location`` moved them to."""
    out = dict(state)
    out["torch"] = state["torch"].cpu()
    if "cuda" in state:
        out["cuda"] = [s.cpu() for s in state["cuda"]]
    return out
