"""The ``train:`` section of a spec: optimiser, schedule, data source, run settings.

Strict pydantic, like the rest of the spec, so a typo in ``train:`` (or in a ``key=value``
override on the command line) is a located error with a "did you mean" hint. Defaults are
what a small JEPA on a laptop wants; each has a one-line reason.

Example (YAML)::

    train:
      steps: 2000
      batch_size: 128
      optimizer: {name: adamw, lr: 1.0e-3, weight_decay: 0.05}
      schedule: {warmup: 100, final_lr: 1.0e-5}
      data: {source: shapes, with: {size: 32}}

Override on the command line: ``jepa-graph train spec.yaml train.optimizer.lr=3e-4 train.steps=500``
(``train.lr`` is a shorthand for ``train.optimizer.lr``). Shorthands (:data:`SHORTHANDS`,
:data:`NAME_FORMS`) are expanded before validation; writing one setting both ways in the same
mapping (``lr: 1e-3`` beside ``optimizer: {lr: 3e-4}``) is an error, not a silent pick.

Numbers are numbers: ``steps: true`` (which pydantic would read as 1), ``batch_size: "64"`` and
``steps: 10.5`` are errors; a float setting takes an integer, and ``3e-4`` (text to PyYAML's
YAML 1.1, a number to YAML 1.2 and the ``.jepa`` syntax). Settings checked together at train
time (betas in [0, 1), ``final_lr`` <= ``lr``, batch against ranks and regularisers) live in
:func:`jepa_graph.train_checks.check_config`.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from ..core.errors import SpecError

# PyYAML reads YAML 1.1, where `3e-4` and `1.0e3` are text; YAML 1.2 (and the .jepa syntax) read
# them as numbers, and `train.lr=3e-4` is how people write a rate, so such text counts as a number
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number(v: Any) -> Any:
    """A float setting: a number (ints welcome), not `true` (pydantic would read 1.0) nor other text."""
    if isinstance(v, bool):
        raise PydanticCustomError("not_a_number", "`{value}` is not a number", {"value": str(v).lower()})
    if isinstance(v, str):
        if _EXPONENT.fullmatch(v.strip()):
            return float(v)
        raise PydanticCustomError("not_a_number", "`{value}` is text, not a number", {"value": v})
    return v


def _whole(v: Any) -> Any:
    """A whole-number setting: StrictInt refuses `true` (pydantic would read 1) and 64.5; say why text is refused."""
    if isinstance(v, str):
        why = "is not a whole number (write its digits)" if _EXPONENT.fullmatch(v.strip()) else "is text, not a number"
        raise PydanticCustomError("not_a_number", "`{value}` " + why, {"value": v})
    return v


def number(**bounds: float) -> Any:
    """A float field with ``Field`` bounds (``gt=0``); the bounds sit inside the check so the
    JSON schema keeps them (``exclusiveMinimum``)."""
    return Annotated[float, Field(allow_inf_nan=False, **bounds), BeforeValidator(_number)]  # `lr: .inf` is no rate


def whole(**bounds: int) -> Any:
    """An integer field with ``Field`` bounds (``ge=1``)."""
    return Annotated[StrictInt, Field(**bounds), BeforeValidator(_whole)]


Float = number()
PosInt = whole(ge=1)
NonNegFloat = number(ge=0)
MAX_BATCH = 2 ** 24  # ~16M samples: larger global batches cannot be built in memory
MAX_STEPS = 10 ** 9  # a billion steps is years of training; more is a typo (`steps=99999999999999999999`)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OptimizerConfig(_Strict):
    """AdamW (default; decoupled weight decay as in I-JEPA/V-JEPA) or SGD with momentum."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: number(gt=0) = 1e-3  # peak learning rate, reached at the end of warm-up
    weight_decay: NonNegFloat = 0.01  # small: tiny models underfit before they overfit
    betas: tuple[Float, Float] = (0.9, 0.999)  # AdamW only: decay of the gradient's 1st and 2nd moments
    momentum: number(ge=0, lt=1) = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    @field_validator("betas", mode="before")
    @classmethod
    def _two_betas(cls, v: Any) -> Any:
        # a tuple field would report `[0.9]` as "missing `1`"; say what the pair is instead
        if isinstance(v, (list, tuple)) and len(v) != 2:
            raise ValueError(f"betas needs two numbers, e.g. [0.9, 0.999] (got {len(v)})")
        return v


class ScheduleConfig(_Strict):
    """Learning rate: linear warm-up from 0, then cosine decay to ``final_lr`` (or constant)."""

    kind: Literal["cosine", "constant"] = "cosine"
    warmup: whole(ge=0) = 0  # steps of linear warm-up
    final_lr: NonNegFloat = 0.0  # learning rate at the last step (cosine)


class DataConfig(_Strict):
    """Where batches come from: a registered source (``jepa_graph.data``) and its parameters.

    ``rename`` maps names the source yields to the spec's input names (``{obs: x}``).
    """

    source: Annotated[str, Field(min_length=1)]
    params: dict[str, Any] = Field(default_factory=dict, alias="with")
    rename: dict[str, str] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """How to minimise the spec's objective. Every field can be overridden with ``train.key=value``."""

    steps: whole(ge=1, le=MAX_STEPS) = 1000
    batch_size: whole(ge=1, le=MAX_BATCH) = 64  # global batch; split across ranks under torchrun
    seed: whole() = 0  # data order and sampling; the CLI also seeds the weight init with it
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    grad_clip: number(gt=0) | None = 1.0  # max global grad norm; null disables
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast matmuls (weights and optimiser stay fp32)
    data: DataConfig | None = None  # None: the program's example inputs (smoke runs only)
    log_every: PosInt = 10  # steps between metric lines (JSONL, progress bar)
    monitor_every: PosInt = 100  # steps between collapse monitors (std, effective rank)
    checkpoint_every: PosInt = 500  # steps between checkpoints (and one at the end)
    out: str | None = None  # run folder; default runs/<spec name>
    compile: bool = False  # torch.compile the loss program
    latent_steps: PosInt | None = None  # inner z-minimisation steps per batch; default: the latent's own

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, v: Any) -> Any:
        return normalize(v)

    @field_validator("device")
    @classmethod
    def _device(cls, d: str) -> str:
        if not (d in ("auto", "cpu", "cuda", "mps") or (d.startswith("cuda:") and d[5:].isdigit())):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got `{d}`")
        return d


# top-level keys of `train:` that belong to a section: key -> section
SHORTHANDS = {"lr": "optimizer", "weight_decay": "optimizer", "warmup": "schedule", "final_lr": "schedule"}
# sections that may be written as one name: section -> the key the name fills
NAME_FORMS = {"optimizer": "name", "data": "source"}


def normalize(v: Any) -> Any:
    """Expand shorthands: ``optimizer: sgd`` -> ``{name: sgd}``, ``data: shapes`` ->
    ``{source: shapes}``, top-level ``lr``/``weight_decay``/``warmup``/``final_lr`` -> their section.

    Raises ValueError when a shorthand and its section both set the same key.
    """
    if not isinstance(v, dict):
        return v
    v = dict(v)
    for section, key in NAME_FORMS.items():
        if isinstance(v.get(section), str):
            v[section] = {key: v[section]}
    for key, section in SHORTHANDS.items():
        if key in v:
            sub = v.get(section) or {}
            if isinstance(sub, dict):
                if key in sub:
                    raise ValueError(f"`{key}` and `{section}.{key}` both set {section}.{key}; keep one")
                v[section] = {**sub, key: v.pop(key)}
    return v


def allowed_keys(path: tuple) -> list[str]:
    """Valid keys of the mapping at ``path`` inside ``train:`` (for "did you mean" hints)."""
    model: type[BaseModel] = TrainConfig
    for part in path:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        sub = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            return []
        model = sub
    keys = [f.alias or n for n, f in model.model_fields.items()]
    return keys + list(SHORTHANDS) if model is TrainConfig else keys


def resolve_config(model, config: TrainConfig | dict | None = None, **overrides: Any) -> TrainConfig:
    """The settings a run of ``model`` (a CompiledModel) uses: its spec's ``train:`` section (or
    the defaults), then ``config``, then keyword overrides (``jg.train(model, lr=3e-4)``)."""
    base = config if isinstance(config, TrainConfig) else (model.spec.train or TrainConfig())
    data = base.model_dump(by_alias=True)  # `data: {with: ...}`, as a spec and the overrides write it
    try:
        if isinstance(config, dict):
            data = _merge_config(data, normalize(config))
        data = _merge_config(data, normalize(overrides))
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = "train." + ".".join(str(x) for x in err["loc"])
        if err["type"] == "int_type" and isinstance(err.get("input"), bool):  # as the spec's errors word it
            msg = f"`{key}` is `{str(err['input']).lower()}`, not a number"
        else:
            msg = f"`{key}`: {err['msg'].removeprefix('Value error, ')}"
        raise SpecError(msg, hint="see jepa_graph.train_config.TrainConfig") from None
    except ValueError as e:  # normalize: two spellings of one setting (`lr=` and `optimizer={"lr": ...}`)
        raise SpecError(f"train: {e}", hint="give each setting once") from None


def _merge_config(base: dict, over: dict) -> dict:
    """``over`` merged into ``base``; naming another data source drops the old one's ``with``
    and ``rename`` (they belong to the old source), as ``train.data=NAME`` does on the command line."""
    old, new = base.get("data"), over.get("data")
    if isinstance(new, dict) and "params" in new:  # the field's Python name; the dump uses its alias
        over = {**over, "data": {("with" if k == "params" else k): v for k, v in new.items()}}
        new = over["data"]
    if isinstance(old, dict) and isinstance(new, dict) and new.get("source", old.get("source")) != old.get("source"):
        base = {**base, "data": None}
    return _merge(base, over)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
