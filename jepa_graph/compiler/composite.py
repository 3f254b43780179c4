"""Spec -> graph nodes, inlining composite blocks.

A composite block is a spec file (in ``blocks/``, the spec's folder, or a folder on the search
path) with ``inputs``, ``blocks`` and ``outputs``. Using it::

    lvl: {kind: composite, type: jepa_level, in: [x], with: {state: 64}}

adds its blocks to the graph as ``lvl/<block>``, binds its inputs (in declaration order) to the
edges of ``in``, and sets its dims from ``with``. ``lvl.<output>`` refers to one of its outputs,
plain ``lvl`` to the first. Errors inside a composite point at the composite's own file.

Search order: folders given to :func:`jepa_graph.compile` (``search_path=``), then the
``JEPA_GRAPH_PATH`` environment variable (``:``-separated), then the spec's own folder and its
``blocks/`` subfolder, then the standard library ``blocks/`` shipped with jepa-graph.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.errors import Diagnostic, SpecError, did_you_mean
from .graph import Graph, Node, Ref, field_of, module_key
from ..core.tensors import MAX_SIZE
from ..frontend.load import load
from ..frontend.spec import CompositeBlock, Spec

STDLIB = Path(__file__).resolve().parents[2] / "blocks"
MAX_DEPTH = 16


def search_dirs(spec: Spec, extra: list[str] | None) -> list[Path]:
    dirs = [Path(p) for p in (extra or [])]
    dirs += [Path(p) for p in os.environ.get("JEPA_GRAPH_PATH", "").split(os.pathsep) if p]
    if spec.path and not str(spec.path).startswith("<"):
        here = Path(spec.path).resolve().parent
        dirs += [here, here / "blocks"]
    dirs.append(STDLIB)
    return dirs


def find_composite(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for ext in (".yaml", ".yml", ".jepa"):
            p = d / f"{name}{ext}"
            if p.is_file():
                return p
    return None


def available_composites(dirs: list[Path]) -> list[str]:
    out = set()
    for d in dirs:
        if d.is_dir():
            out.update(p.stem for p in d.iterdir() if p.suffix in (".yaml", ".yml", ".jepa"))
    return sorted(out)


class Inliner:
    def __init__(self, graph: Graph, errors: list[Diagnostic], search_path: list[str] | None):
        self.g, self.errors = graph, errors
        self.dirs = search_dirs(graph.spec, search_path)
        self.cache: dict[Path, Spec] = {}

    # ------------------------------------------------------------------------------------
    def add_spec(self, spec: Spec, scope: str, dims: dict[str, int], bindings: list[Ref] | None,
                 stack: tuple[str, ...] = ()) -> dict[str, str]:
        """Add ``spec``'s nodes under ``scope``; returns its exported outputs (name -> node)."""
        src = spec.source
        at = (lambda *path, key=True: src.at(path, key=key)) if src else (lambda *p, key=True: None)
        pre = f"{scope}/" if scope else ""
        table: dict[str, str] = {}  # local name -> graph name
        exports: dict[str, dict[str, str]] = {}  # composite instance -> its outputs

        if bindings is not None:  # a composite: its inputs are ports bound to the caller's edges
            for i, (name, var) in enumerate(spec.inputs.items()):
                node = Node(pre + name, "port", "port", at("inputs", name), decl=var, scope=scope, dims=dims,
                            src=src, path=("inputs", name))
                if i < len(bindings):
                    node.inputs = [bindings[i]]
                self._add(node, table, name)
            for section in ("latents", "actions"):
                for name in getattr(spec, section):
                    self.errors.append(Diagnostic(
                        f"composite `{spec.name}` declares {section[:-1]} `{name}`", at(section, name),
                        f"declare {section} in the top-level spec and pass them in through `inputs`"))
        else:
            for section, op in (("inputs", "input"), ("latents", "latent"), ("actions", "action")):
                for name, var in getattr(spec, section).items():
                    self._add(Node(pre + name, op, op, at(section, name), decl=var, scope=scope, dims=dims,
                                   src=src, path=(section, name)),
                              table, name)

        pending: list[tuple[Node, Any]] = []
        uses: list[tuple[str, CompositeBlock]] = []
        for name, blk in spec.blocks.items():
            if isinstance(blk, CompositeBlock):
                if name in table:
                    self._add(Node(pre + name, "call", "composite", at("blocks", name)), table, name)
                uses.append((name, blk))
                continue
            node = Node(pre + name, "call", blk.kind, at("blocks", name), type=blk.type, module=module_key(pre + name),
                        raw_params=dict(blk.params), dims=dims, frozen=blk.frozen, scope=scope, decl=blk,
                        src=src, path=("blocks", name))
            self._add(node, table, name)
            pending.append((node, blk))
        for name, blk in uses:  # after plain blocks, so a composite may take any of them
            exports[name] = self._composite(spec, name, blk, pre, dims, stack, table, exports, at)

        for node, blk in pending:
            name = node.name.rsplit("/", 1)[-1]
            node.inputs = [self._ref(e.ref, e.stop_grad, table, exports, at("blocks", name, "in", i, key=False),
                                     f"input {i} of `{name}`") for i, e in enumerate(blk.inputs)]
            for rel in ("share", "ema_of"):
                target = field_of(blk, rel)
                if target is None:
                    continue
                head, _, tail = target.partition(".")  # `low.state`: an output of composite `low`
                tnode = self.g.nodes.get(exports.get(head, {}).get(tail, "") if tail else table.get(target, ""))
                loc = at("blocks", name, rel, key=False)
                if tnode is None or tnode.op != "call":
                    blocks = [k for k, v in table.items() if self.g.nodes[v].op == "call"]
                    blocks += [f"{c}.{o}" for c, outs in exports.items() for o in outs]
                    verb = "shares" if rel == "share" else "is an EMA target of"
                    self.errors.append(Diagnostic(f"`{name}` {verb} unknown block `{target}`",
                                                  loc, did_you_mean(target, blocks, "blocks")))
                    continue
                setattr(node, rel if rel == "ema_of" else "share_of", tnode.name)  # kinds checked in checks.py

        # composite instances' exported outputs become resolvable in the caller only
        outputs = {}
        for out, ref in spec.outputs.items():
            r = self._ref(ref, False, table, exports, at("outputs", out, key=False), f"output `{out}`")
            if r is not None:
                outputs[out] = r.src
        if bindings is None:
            self.g.outputs = outputs
        else:
            self.g.composites[scope]["outputs"] = outputs
        return outputs

    def _add(self, node: Node, table: dict[str, str], local: str) -> None:
        if local in table:
            first = self.g.nodes[table[local]]
            self.errors.append(Diagnostic(f"`{local}` is defined twice ({first.op if first.op != 'call' else 'block'} "
                                          f"and {node.op if node.op != 'call' else 'block'})", node.loc,
                                          "inputs, latents, actions and blocks share one namespace; rename one",
                                          related=[("first defined", first.loc)]))
            return
        table[local] = node.name
        self.g.nodes[node.name] = node

    def _ref(self, ref: str, stop_grad: bool, table: dict[str, str], exports: dict[str, dict[str, str]],
             loc, what: str) -> Ref | None:
        head, _, tail = ref.partition(".")
        if head in exports:
            outs = exports[head]
            if not outs:
                return None  # the composite itself failed; already reported
            if not tail:
                return Ref(next(iter(outs.values())), stop_grad, loc)
            if tail in outs:
                return Ref(outs[tail], stop_grad, loc)
            self.errors.append(Diagnostic(f"composite `{head}` has no output `{tail}` ({what})", loc,
                                          did_you_mean(tail, outs, "outputs")))
            return None
        if tail:
            self.errors.append(Diagnostic(f"`{ref}`: only composite blocks have named outputs ({what})", loc,
                                          f"write `{head}`" if head in table else did_you_mean(head, list(table) + list(exports))))
            return None
        if ref in table:
            return Ref(table[ref], stop_grad, loc)
        self.errors.append(Diagnostic(f"unknown reference `{ref}` ({what})", loc,
                                      did_you_mean(ref, list(table) + list(exports), "names")))
        return None

    def _composite(self, spec: Spec, name: str, blk: CompositeBlock, pre: str, dims: dict[str, int],
                   stack: tuple[str, ...], table: dict[str, str], exports: dict[str, dict[str, str]],
                   at) -> dict[str, str]:
        loc = at("blocks", name)
        path = find_composite(blk.type or "", self.dirs)
        if path is None:
            self.errors.append(Diagnostic(f"unknown composite block `{blk.type}`", at("blocks", name, "type", key=False),
                                          did_you_mean(blk.type or "", available_composites(self.dirs), "composites")))
            return {}
        if blk.type in stack or len(stack) >= MAX_DEPTH:
            self.errors.append(Diagnostic(f"composite `{blk.type}` uses itself (" + " -> ".join(stack + (blk.type,)) + ")",
                                          loc, "a composite cannot contain itself"))
            return {}
        try:
            sub = self.cache.get(path) or _load(path)
        except SpecError as e:
            for d in e.diagnostics:  # the error is in the composite's file; say which use pulled it in
                d.related.append((f"`{blk.type}` is used by `{pre + name}`", loc))
            self.errors.extend(e.diagnostics)
            return {}
        self.cache[path] = sub
        sub_dims = dict(sub.dims)
        for k, v in blk.params.items():
            if k not in sub_dims:
                self.errors.append(Diagnostic(f"composite `{blk.type}` has no dim `{k}`",
                                              at("blocks", name, "with", k), did_you_mean(k, sub_dims, "dims")))
            elif isinstance(v, str) and v in dims:
                sub_dims[k] = dims[v]
            elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIZE:
                sub_dims[k] = v
            elif isinstance(v, int) and not isinstance(v, bool) and v > MAX_SIZE:  # reported here, at the use
                self.errors.append(Diagnostic(f"dim `{k}` of `{name}` is {v}; sizes go up to {MAX_SIZE:,}",
                                              at("blocks", name, "with", k, key=False), "is a digit repeated?"))
            else:
                self.errors.append(Diagnostic(f"dim `{k}` of `{name}` must be a positive integer or a dim name, got `{v}`",
                                              at("blocks", name, "with", k, key=False), did_you_mean(str(v), dims, "dims")))
        if len(blk.inputs) != len(sub.inputs):
            self.errors.append(Diagnostic(f"composite `{blk.type}` takes {len(sub.inputs)} input(s) "
                                          f"({', '.join(sub.inputs)}), `{name}` gives {len(blk.inputs)}",
                                          at("blocks", name, "in"), "pass one input per declared input, in order"))
        bindings = [self._ref(e.ref, e.stop_grad, table, exports, at("blocks", name, "in", i, key=False),
                              f"input {i} of `{name}`") for i, e in enumerate(blk.inputs)]
        if any(b is None for b in bindings):
            return {}  # already reported
        if not sub.outputs:
            self.errors.append(Diagnostic(f"composite `{blk.type}` exports no `outputs`", sub.source.at(()) if sub.source else loc,
                                          "add `outputs: {name: block}` to the composite file"))
            return {}
        self.g.composites[pre + name] = {"type": blk.type, "file": str(path), "loc": loc, "scope": pre + name}
        return self.add_spec(sub, pre + name, sub_dims, bindings, stack + (blk.type,))


def _load(path: Path) -> Spec:
    return load(path)
