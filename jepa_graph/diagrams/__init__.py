"""Architecture diagrams in the notation of LeCun's "A Path Towards Autonomous Machine Intelligence".

Pipeline: spec or model -> :mod:`.scene` (or :mod:`.broken` for a spec that fails validation)
-> :mod:`.layout` (graphviz DOT, notation from :mod:`.notation`) -> ``dot`` -> svg/png/pdf.

Example::

    import jepa_graph as jg
    jg.render("specs/seed_world_model.yaml", "seed.svg")                 # format from the extension
    jg.render(model, "step.svg", program="step", rankdir="TB")           # what planning's step uses
    jg.render(spec, "big.svg", depth=0, shapes=False)                    # composites collapsed

A spec with errors still draws: offending edges and blocks are red and carry the message; the
result's ``errors`` lists the diagnostics (the CLI exits 2 on them).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.model import CompiledModel
from ..compiler.pipeline import check
from ..core.atomic import atomic_write
from ..core.errors import Diagnostic, SpecError, did_you_mean
from ..frontend.load import load, parse_file
from ..frontend.spec import Spec
from .broken import from_data, from_spec
from .layout import RANKDIRS, Emphasis, Options, to_dot
from .programs import meta_model, param_counts, program_nodes
from .scene import Scene, from_graph

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


class DotError(RuntimeError):
    """Graphviz's ``dot`` could not draw the diagram (the DOT source can still be written)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))
        self.message, self.hint = message, hint


LAYOUT_TIMEOUT = 120.0  # seconds; dot's layout can grow much faster than linearly on very wide graphs


class MissingDot(DotError):
    """Graphviz's ``dot`` program is not installed (needed for svg, png and pdf)."""


@dataclass
class Diagram:
    """A rendered diagram: the DOT source, where it was written, and the spec's errors (if any)."""

    source: str = field(repr=False)
    path: Path | None = None
    errors: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def render(obj: Any, path: str | Path, *, shapes: bool = True, params: bool = True, rankdir: str = "LR",
           depth: int | None = None, highlight: tuple[str, ...] | list[str] = (), program: str | None = None,
           legend: bool = False, search_path: list[str] | None = None,
           timeout: float | None = LAYOUT_TIMEOUT) -> Diagram:
    """Draw ``obj`` (a spec file path, a :class:`~jepa_graph.spec.Spec` or a compiled model) to ``path``.

    The format comes from the extension: ``.svg``, ``.png``, ``.pdf`` or ``.dot``/``.gv``.
    ``shapes``/``params`` toggle tensor shapes on edges and parameter counts on blocks;
    ``depth`` collapses composites nested deeper than it (0: all collapsed); ``highlight``
    outlines blocks; ``program`` colours what one of the spec's programs computes (those of
    ``CompiledModel.program_names()``: forward, energy, loss, encode, step, rollout, cost, act, and
    a level's encode_LEVEL/step_LEVEL/rollout_LEVEL, as the spec has them); ``legend`` adds the notation key.
    ``timeout``: seconds ``dot`` may take to lay out (None: no bound).
    Raises :class:`SpecError` for bad options, :class:`MissingDot` without ``dot``, :class:`DotError`
    when ``dot`` fails or runs past ``timeout``.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SpecError(f"cannot render to `{path.name}`: unknown format `{path.suffix or '(none)'}`",
                        hint="use one of: " + ", ".join(FORMATS))
    d = diagram(obj, Options(shapes, params, rankdir, depth, tuple(highlight), program, legend), search_path)
    data = d.source.encode() if fmt == "dot" else pipe(d.source, fmt, timeout)
    atomic_write(path, data)
    d.path = path
    return d


def svg_text(obj: Any, **opts) -> str:
    """The diagram as SVG text (for notebooks and web pages). Same options as :func:`render`."""
    search_path = opts.pop("search_path", None)
    opts["highlight"] = tuple(opts.get("highlight", ()))
    return pipe(diagram(obj, Options(**opts), search_path).source, "svg").decode("utf-8")


def dot_source(obj: Any, **opts) -> str:
    """The DOT source of the diagram (needs no ``dot`` program). Same options as :func:`render`."""
    search_path = opts.pop("search_path", None)
    opts["highlight"] = tuple(opts.get("highlight", ()))
    return diagram(obj, Options(**opts), search_path).source


def repr_svg(obj: Any) -> str | None:
    """``_repr_svg_`` of specs and models: the SVG, or None when ``dot`` is missing (plain repr then)."""
    try:
        return svg_text(obj)
    except MissingDot:
        return None


def pipe(source: str, fmt: str, timeout: float | None = LAYOUT_TIMEOUT) -> bytes:
    """Lay out DOT ``source`` with ``dot`` and return the ``fmt`` bytes; a :class:`DotError` after
    ``timeout`` seconds (None: wait as long as it takes)."""
    exe = shutil.which("dot")
    if exe is None:
        raise MissingDot("drawing svg/png/pdf needs Graphviz's `dot` program: install graphviz "
                         "(`apt-get install graphviz`, `brew install graphviz`), or write a .dot file")
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        n = source.count("->")
        raise DotError(f"`dot` did not finish laying out the diagram ({n:,} edges) within {timeout:g} s",
                       hint="collapse composites (`--depth 0`, or depth=0 in Python), drop shapes "
                            "(`--no-shapes`), write a .dot file to lay out elsewhere, or allow more "
                            "time (`--timeout SECONDS`)") from None
    if done.returncode != 0:
        first = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise DotError(f"`dot` failed to lay out the diagram ({first[0] if first else f'exit {done.returncode}'}); "
                       "write a .dot file to inspect it")
    return done.stdout


# ------------------------------------------------------------------------------------ scene
def diagram(obj: Any, opts: Options, search_path: list[str] | None = None) -> Diagram:
    """Build the DOT source of ``obj``; a spec failing validation gives a diagram with its errors."""
    if opts.rankdir not in RANKDIRS:
        raise SpecError(f"unknown layout direction `{opts.rankdir}`", hint="use LR (left to right) or TB (top to bottom)")
    if opts.depth is not None and opts.depth < 0:
        raise SpecError(f"depth must be 0 or more, got {opts.depth}", hint="0 collapses every composite block")
    sc, model = _scene(obj, opts, search_path)
    return Diagram(to_dot(sc, opts, _emphasis(sc, model, opts)).source, errors=sc.errors)


def _scene(obj: Any, opts: Options, search_path):
    if isinstance(obj, CompiledModel):
        return from_graph(obj.graph, param_counts(obj) if opts.params else None), obj
    spec = obj
    if not isinstance(obj, Spec):
        if not Path(str(obj)).is_file():
            load(obj)  # raises the located "no such spec file" error: there is nothing to draw
        try:
            spec = load(obj)
        except SpecError as e:
            return _broken_file(obj, e), None
    try:
        g = check(spec, search_path)
    except SpecError as e:
        return from_spec(spec, e.diagnostics, search_path, opts.params), None
    need_model = opts.params or opts.program
    model = meta_model(g) if need_model else None
    return from_graph(g, param_counts(model) if model is not None and opts.params else None), model


def _broken_file(path, err: SpecError) -> Scene:
    """A file that parses but fails the spec model, or does not even parse (then only the caption)."""
    try:
        raw = parse_file(path)
    except SpecError:
        return from_data({"name": Path(str(path)).stem}, err.diagnostics)
    return from_data(raw.data, err.diagnostics, raw)


def _emphasis(sc: Scene, model, opts: Options) -> Emphasis:
    emph = Emphasis()
    for name in opts.highlight:
        node = _resolve(sc, name)
        if node is not None:
            emph.marked.add(node)
            emph.marked.update(sc.clusters[node].members if node in sc.clusters else ())
            continue
        dotted = [f"{k.replace('/', '.')}.{o}" for k, c in sc.clusters.items() for o in c.outputs]
        # one wording for `--highlight` and `render(..., highlight=[...])`: no CLI flag in it
        raise SpecError(f"highlight: `{name}` is not a block of `{sc.name}`",
                        hint=did_you_mean(name, list(sc.where) + list(sc.clusters) + dotted, "blocks"))
    if opts.program:
        if model is None:  # a spec with errors has no programs; still draw the errors
            emph.note = f"program `{opts.program}` not shown: the spec does not compile"
            return emph
        if opts.program not in model.program_names():
            raise SpecError(f"`{sc.name}` has no program `{opts.program}`",
                            hint="programs here: " + ", ".join(model.program_names()))
        emph.used, emph.given = program_nodes(model, opts.program)
        emph.note = f"program `{opts.program}`: blue = computed" + (", dashed blue = given as input" if emph.given else "")
    return emph


def _resolve(sc: Scene, name: str) -> str | None:
    """The graph node or cluster ``name`` means: itself, or a dotted reference as specs write it,
    ``low.pred`` (output ``pred`` of composite ``low``; ``outer.first.out`` for nested ones)."""
    if name in sc.where or name in sc.clusters:
        return name
    head, _, tail = name.partition(".")
    while tail:
        c = sc.clusters.get(head)
        if c is not None and c.kind == "composite":
            out, _, rest = tail.partition(".")
            if out in c.outputs and not rest:
                return c.outputs[out] if c.outputs[out] in sc.where else None
        nxt, _, tail = tail.partition(".")  # `outer.first`: the nested instance `outer/first`
        head = f"{head}/{nxt}"
    return head if head in sc.clusters else None


__all__ = ["Diagram", "DotError", "MissingDot", "Options", "dot_source", "render", "repr_svg", "svg_text"]
