"""Spec files -> :class:`~jepa_graph.spec.Spec`: read, parse (YAML or ``.jepa``), validate.

Pydantic's errors are turned into located diagnostics by :mod:`jepa_graph.spec_errors`.
"""
from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import spec as S
from ..core.errors import Location, SpecError, position, register_source
from ..core.gc_pause import paused_gc
from .parse_yaml import RawSpec, parse_yaml
from .spec_errors import diagnostics


MAX_BYTES = 16 * 2**20  # a spec is a few KB; this bounds what a symlink to /dev/zero can make us read


def read_text(path: str | Path) -> str:
    """The text of a spec file; a missing file, a folder, a device or FIFO, a file past
    :data:`MAX_BYTES` or bad UTF-8 is a :class:`SpecError`."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise SpecError(f"no such spec file: {p}", hint="check the path") from None
    if stat.S_ISDIR(mode):
        raise SpecError(f"{p} is a directory, not a spec file", hint="name a .yaml or .jepa file")
    if not stat.S_ISREG(mode):  # a FIFO would block, /dev/zero never ends
        raise SpecError(f"{p} is not a regular file (a device, pipe or socket)",
                        hint="save the spec to a file and name that file")
    with open(p, "rb") as f:  # a file that grows while read stops at the bound too
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SpecError(f"{p} is larger than {MAX_BYTES // 2**20} MiB; spec files are small text files",
                        hint="is this the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        shown = data.decode("utf-8", errors="replace")
        register_source(str(p), shown)  # so the error can quote its line
        where = position(shown, len(data[:e.start].decode("utf-8", errors="replace")))
        raise SpecError(f"spec files must be UTF-8 text: byte 0x{data[e.start]:02x} is not valid UTF-8",
                        Location(str(p), *where), "is this a binary file? re-save the spec as UTF-8") from None


def parse_file(path: str | Path, text: str | None = None) -> RawSpec:
    """Parse a ``.yaml``/``.yml`` or ``.jepa`` file into a :class:`RawSpec`."""
    path = str(path)
    if text is None:
        text = read_text(path)
    if path.endswith(".jepa"):
        from .parse_dsl import parse_dsl  # lark: only for .jepa files
        return parse_dsl(text, path)
    if path.endswith((".yaml", ".yml", "<string>")):
        return parse_yaml(text, path)
    raise SpecError(f"unknown spec file type: {path}", hint="spec files end in .yaml, .yml or .jepa")


def build_spec(raw: RawSpec, model: type[BaseModel] = S.Spec) -> S.Spec:
    """Validate raw data against the spec model; errors carry file:line:col."""
    try:
        spec = model.model_validate(raw.data)
    except ValidationError as e:
        raise SpecError(diagnostics(e.errors(), raw)) from None
    spec._source = raw
    spec._path = raw.file
    return spec


@paused_gc()  # load time stays linear in the spec size: see gc_pause
def load(path: str | Path) -> S.Spec:
    """Read and validate a spec file (``.yaml`` or ``.jepa``). Raises :class:`SpecError`.

    Example::

        spec = jg.load("specs/two_rooms.yaml")
    """
    return build_spec(parse_file(path))


@paused_gc()
def loads(text: str, file: str = "<string>.yaml") -> S.Spec:
    """Like :func:`load`, from a string. ``file`` picks the syntax by its extension."""
    return build_spec(parse_file(file, text))


def from_dict(data: dict, file: str = "<python>.yaml") -> S.Spec:
    """Build a spec from Python data (the same keys as the YAML syntax).

    The data is written out as YAML first, so errors still point at a line of that text::

        spec = jg.from_dict({"name": "tiny", "inputs": {"x": {"shape": [4]}}, "blocks": {...}})
    """
    try:
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    except yaml.representer.RepresenterError:
        where, value = _unplain(data, ())
        raise SpecError(f"{file}: `{'.'.join(map(str, where)) or '(top level)'}` holds {type(value).__name__} "
                        f"{value!r:.60}, which a spec cannot contain",
                        hint="specs are plain data: dicts, lists, strings, numbers, booleans and None; "
                             "register Python code as a block type (jg.register_block) and name it") from None
    return loads(text, file)


def _unplain(value: Any, where: tuple) -> tuple[tuple, Any]:
    """The first value in ``value`` that is not plain data, and the keys leading to it."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                return where + (repr(k),), k
            found = _unplain(v, where + (k,))
            if found[0] is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _unplain(v, where + (i,))
            if found[0] is not None:
                return found
    elif not isinstance(value, (str, int, float, bool)) and value is not None:
        return where, value
    return None, None
