"""Checks a training run makes before it spends time: the device exists, the first batch fits the
spec's inputs; and the helpers its located errors use (where the spec wrote a ``train:`` value,
which block holds non-finite weights).

Each failure is a :class:`~jepa_graph.errors.SpecError` at the spec line (or command-line
override) it comes from, with a hint, raised before any block runs.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch

from .errors import Diagnostic, Location, SpecError

if TYPE_CHECKING:
    from .model import CompiledModel


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
    value in use is the spec's; None for values given in Python."""
    src, train = model.spec.source, model.spec.train
    if src is None or train is None or getattr(train, path[-1], None) != value:
        return None
    return src.values.get(path)


def source_name(source: Any) -> str:
    name = getattr(source, "name", "")
    return f"data source `{name}`" if isinstance(name, str) and name else f"the data ({type(source).__name__})"


def dtype_kind(v: torch.Tensor) -> str:
    """A tensor's dtype as a spec writes it: float, long (int64; index ops need it) or bool."""
    if v.dtype == torch.bool:
        return "bool"
    return "float" if v.is_floating_point() else "long" if v.dtype == torch.int64 else str(v.dtype).removeprefix("torch.")


LOC = re.compile(r"^.+:\d+:\d+$")  # file:line:col


def nonfinite_weights_block(model: CompiledModel, graph) -> str | None:
    """The first block (in graph order) holding a NaN/inf weight."""
    for n in graph.topo():
        if n.op == "call" and any(not torch.isfinite(p).all() for p in model.blocks[n.module].parameters()):
            return n.name
    return None


def check_batch(trainer, batch: dict[str, Any]) -> None:
    """Names, per-sample shapes and dtypes of a :class:`Trainer`'s first ``batch`` against the spec's inputs, or a
    SpecError at the input's declaration naming the data source (before any block runs)."""
    src = source_name(trainer.source)
    data_loc = spec_loc(trainer.model, ("train", "data"), trainer.cfg.data) if trainer.source_from_spec else None
    missing = [n for n in trainer.input_names if n not in batch and n not in trainer.latents]
    if missing:
        raise SpecError(f"{src} yields {', '.join(sorted(batch)) or 'nothing'} but "
                        f"`{trainer.model.spec.name}` needs {', '.join(missing)}", data_loc,
                        "pick another source, or map names with train.data.rename {yielded: input}")
    for name in trainer.input_names:
        node, v = trainer.graph.nodes.get(name.replace("__", "/")), batch.get(name)
        if v is None or node is None or node.ttype is None:
            continue
        want = node.ttype
        if not isinstance(v, torch.Tensor):
            problem, hint = f"gives {type(v).__name__}", "a source yields a dict of (B, ...) tensors"
        elif v.dim() == 0 or tuple(v.shape[1:]) != tuple(want.shape):
            problem = f"gives {list(v.shape)}"
            fix = "train on a source (train.data=...)" if getattr(trainer.source, "name", "") else "pass data"
            hint = f"{fix} whose `{name}` is {want}, or declare the shape the data has"
        elif dtype_kind(v) != want.dtype:
            problem, hint = f"gives {v.dtype}", f"convert the data (`{name}` holds {want.dtype} values)"
        elif v.is_floating_point() and trainer.params and v.dtype != trainer.params[0].dtype:
            problem = f"gives {v.dtype} but the weights are {trainer.params[0].dtype}"
            hint = f"convert the data to {trainer.params[0].dtype}"
        else:
            continue
        raise SpecError(Diagnostic(f"input `{name}` should be {want}, but {src} {problem}", node.loc, hint,
                                   related=[("the data source", data_loc)] if data_loc is not None else []))
