"""``key=value`` overrides on a spec's raw data, applied before validation.

``jepa-graph train SPEC train.lr=3e-4`` reads the spec to raw data with positions, sets each
pair here, and validates the result, so an override is checked exactly like the file and a bad
one points at itself on the command line::

    $ jepa-graph train specs/two_rooms.yaml train.lr=-1
    <command line>:1:48: error: `train.optimizer.lr`: input should be greater than 0, got `-1`

Values are YAML scalars or flow collections (``train.data.with={size: 32}``). The spec's
``train:`` shorthands (``lr:``, ``warmup:``, ``data: NAME``, ...) are expanded first, so an
override wins whichever spelling either side uses: ``train.optimizer.lr=0.5`` beats the file's
``lr: 1e-3``, and ``train.data.with.episodes=4`` works on ``data: two_rooms``. A section's name
form sets only its name: ``train.optimizer=sgd`` keeps the spec's ``lr`` (as
``train.optimizer.name=sgd`` does); ``train.data=NAME`` keeps the section when NAME is its source,
and otherwise starts the new source from its defaults (the old ``with:`` and ``rename:`` were the
old source's).

Example::

    spec = load_with_overrides("specs/two_rooms.yaml", ["train.steps=500", "train.lr=3e-4"])
"""
from __future__ import annotations

import shlex


from ..core.errors import Location, SpecError, register_source
from .load import build_spec, parse_file
from .parse_yaml import parse_value
from .train_config import NAME_FORMS, SHORTHANDS

CMDLINE = "<command line>"


def apply_overrides(raw, overrides: list[str], prefix: str = "") -> None:
    """Set ``a.b.c=value`` pairs in ``raw.data`` (a RawSpec), locating each at its argument.

    ``train:`` is brought to its long form before the first override and after each one, so
    the last value given for a setting wins, whichever spelling set it."""
    expand_shorthands(raw)
    line = prefix
    for arg in overrides:
        line += " " if line else ""
        col = len(line) + 1
        line += arg
        key, eq, text = arg.partition("=")
        if not eq or not key:
            register_source(CMDLINE, line)
            raise SpecError(f"override `{arg}` is not key=value", Location(CMDLINE, 1, col),
                            "write e.g. train.lr=3e-4 train.steps=500")
        register_source(CMDLINE, line)
        value = parse_value(text, CMDLINE, col + len(key) + 1) if text.strip() else None  # a spec file's bounds
        path = tuple(key.split("."))
        node = raw.data
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                register_source(CMDLINE, line)
                raise SpecError(f"override `{arg}`: `{'.'.join(path[:i + 1])}` is not a mapping",
                                Location(CMDLINE, 1, col), "override a leaf value")
            node = nxt
        loc_key, loc_val = Location(CMDLINE, 1, col), Location(CMDLINE, 1, col + len(key) + 1)
        for i in range(1, len(path) + 1):  # new parents point at the argument too
            raw.keys.setdefault(path[:i], loc_key)
            raw.values.setdefault(path[:i], loc_key)
        name_key = NAME_FORMS.get(path[1]) if len(path) == 2 and path[0] == "train" else None
        if name_key and isinstance(value, str) and isinstance(node.get(path[1]), dict):
            _set_name(raw, node[path[1]], path, name_key, value, loc_key, loc_val)
        else:
            node[path[-1]] = value
            raw.keys[path], raw.values[path] = loc_key, loc_val
            _drop_below(raw, path, loc_val)
        expand_shorthands(raw, overriding=True)
    register_source(CMDLINE, line)


def expand_shorthands(raw, overriding: bool = False) -> None:
    """Rewrite ``raw``'s ``train:`` section in its long form, in place, positions moving along:
    ``lr: X`` -> ``optimizer: {lr: X}`` (and weight_decay, warmup, final_lr), ``data: NAME`` ->
    ``data: {source: NAME}``, ``optimizer: NAME`` -> ``optimizer: {name: NAME}``.

    A shorthand beside its long form (``lr:`` and ``optimizer: {lr:}``) is an error in the file;
    ``overriding``: the shorthand was just set on the command line and replaces the long form.
    """
    train = raw.data.get("train") if isinstance(raw.data, dict) else None
    if not isinstance(train, dict):
        return
    for section, key in NAME_FORMS.items():
        if isinstance(train.get(section), str):
            train[section] = {key: train[section]}
            at = raw.at(("train", section))
            raw.keys[("train", section, key)] = raw.values[("train", section, key)] = at
    for key, section in SHORTHANDS.items():
        if key not in train:
            continue
        if train.get(section) is None:
            train[section] = {}
            raw.keys[("train", section)] = raw.values[("train", section)] = raw.at(("train", key), key=True)
        sub = train[section]
        if not isinstance(sub, dict):  # `optimizer: [..]`: validation reports the section
            continue
        if key in sub and not overriding:
            raise SpecError(f"`train.{key}` and `train.{section}.{key}` both set the {section}'s `{key}`",
                            raw.at(("train", key), key=True),
                            f"keep one: `{key}:` at the top of `train:` is short for `{section}: {{{key}: ...}}`")
        sub[key] = train.pop(key)
        for table in (raw.keys, raw.values):
            for p in [p for p in table if p[:2] == ("train", key)]:
                table[("train", section) + p[1:]] = table.pop(p)


def _set_name(raw, section: dict, path: tuple, key: str, name: str, loc_key: Location, loc_val: Location) -> None:
    """``train.optimizer=sgd`` on a written ``optimizer:`` section: set its ``name`` and keep the rest.
    A new data source drops the old one's ``with:`` and ``rename:``; the same one keeps them."""
    if key == "source" and section.get("source") != name:
        for gone in ("with", "rename"):
            section.pop(gone, None)
            for table in (raw.keys, raw.values):
                for p in [p for p in table if p[:len(path) + 1] == path + (gone,)]:
                    del table[p]
    section[key] = name
    raw.keys[path + (key,)], raw.values[path + (key,)] = loc_key, loc_val


def _drop_below(raw, path: tuple, loc: Location) -> None:
    """Positions inside a replaced value now live on the command line."""
    for table in (raw.keys, raw.values):
        for p in [p for p in table if len(p) > len(path) and p[:len(path)] == path]:
            table[p] = loc


def load_with_overrides(spec_path: str, overrides: list[str]):
    """Parse ``spec_path``, apply ``overrides``, validate: a :class:`~jepa_graph.frontend.spec.Spec`.

    An override's error points at its column on the line ``jepa-graph train SPEC key=value ...``."""
    raw = parse_file(spec_path)
    apply_overrides(raw, overrides, prefix=f"jepa-graph train {shlex.quote(spec_path)}")
    return build_spec(raw)
