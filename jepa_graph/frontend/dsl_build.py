""".jepa statements -> the YAML syntax's plain data, with a location for every path.

:func:`assemble` takes the tagged statements of :class:`~jepa_graph.parse_dsl.Build` and fills
a :class:`~jepa_graph.parse_yaml.RawSpec` exactly as the YAML front end would, so everything
downstream (schema validation, graph checks, shapes) cannot tell the two syntaxes apart.
"""
from __future__ import annotations

from typing import Any

from ..core.errors import Diagnostic, Location, SpecError, did_you_mean
from ..core.registry import list_blocks
from .dsl_lines import tok_loc as _tok_loc
from .parse_dsl import VAR_SECTIONS, Inline, V
from .parse_yaml import RawSpec

def inline_name(head: str, first_ref: str) -> str:
    """Deterministic name of an inline shared block: ``enc(goal)`` -> ``enc_goal``."""
    return f"{head}_{first_ref.replace('.', '_')}"


class Assembler:
    def __init__(self, text: str, file: str):
        self.file = file
        self.raw = RawSpec(data={}, file=file, text=text)
        self.data: dict[str, Any] = self.raw.data
        self.first: dict[tuple, Location] = {}  # where each top-level entry was first written
        self.copies: dict[str, tuple[str, Location]] = {}  # block -> (block it shares / EMA-copies, where)

    # ------------------------------------------------------------------------ positions
    def reg(self, path: tuple, v: V, key_loc: Location | None = None) -> None:
        """Record where the value at ``path`` (and everything inside it) is written."""
        if key_loc is not None:
            self.raw.keys.setdefault(path, key_loc)
        if v.loc is not None:
            self.raw.values.setdefault(path, v.loc)
        if isinstance(v.kids, dict):
            for k, (kloc, kv) in v.kids.items():
                self.reg(path + (k,), kv, kloc)
        elif isinstance(v.kids, list):
            for i, kv in enumerate(v.kids):
                self.reg(path + (i,), kv)

    def once(self, path: tuple, loc: Location, what: str) -> None:
        if path in self.first:
            raise SpecError(Diagnostic(f"{what} is written twice", loc, "write it once (or merge the two)",
                                       related=[("first written", self.first[path])]))
        self.first[path] = loc

    def loc(self, tok) -> Location:
        return _tok_loc(self.file, tok)

    # ----------------------------------------------------------------------- statements
    def header(self, tok) -> None:
        self.once(("name",), self.loc(tok), "`jepa NAME`")
        self.data["name"] = str(tok)
        self.reg(("name",), V(str(tok), self.loc(tok)), self.loc(tok))

    def description(self, tok, v: V) -> None:
        self.once(("description",), v.loc, "`description`")
        self.data["description"] = v.data
        self.reg(("description",), v, v.loc)

    def schema(self, tok, v: V) -> None:
        self.once(("$schema",), v.loc, "`schema`")
        self.data["$schema"] = v.data
        self.reg(("$schema",), v, v.loc)

    def var(self, kw, names, shape: V, opts) -> None:
        section = VAR_SECTIONS[str(kw)]
        fields: list[tuple[str, Location, V]] = [("shape", shape.loc, shape)]
        regs = [o for o in opts if isinstance(o, tuple) and o[0] == "reg"]
        if str(kw) == "latent" and len(regs) > 1:  # `~ l1(0.1) ~ l2(0.1)`: the grammar joins them with `+`
            terms = " + ".join(f"{n}({w.data})" for r in regs for n, _, w in r[2])
            raise SpecError("a latent has one `~`; join its regularisers with `+`", regs[1][1],
                            f"write `~ {terms}`")
        for opt in opts:
            if isinstance(opt, V):  # the trailing {key=value} mapping: any other field
                fields += [(k, kl, kv) for k, (kl, kv) in opt.kids.items()]
                continue
            fields.extend(self._var_option(str(kw), *opt))
        body = _merge(fields, f"`{kw}` declaration")
        table = self.data.setdefault(section, {})
        for name in names:
            n, at = str(name), self.loc(name)
            self.once((section, n), at, f"{kw} `{n}`")
            table[n] = dict(body.data)
            self.reg((section, n), V(body.data, at, body.kids), at)

    def _var_option(self, kw: str, tag: str, where, payload) -> list[tuple[str, Location, V]]:
        if tag == "word":
            name, at, args = str(where), self.loc(where), payload
            if kw == "input" and not args:
                return [("dtype", at, V(name, at))]
            if kw == "latent":
                if not args:
                    return [("domain", at, V(name, at))]
                val = args[0] if len(args) == 1 else V([a.data for a in args], args[0].loc, args)
                return [("domain", at, V({name: val.data}, at, {name: (at, val)}))]
            hint = {"input": "an input takes a dtype word (`long`, `bool`) after its shape",
                    "action": "an action takes bounds after its shape: `in [-1, 1]`"}[kw]
            raise SpecError(f"`{name}{'(...)' if args else ''}` does not belong in an {kw} declaration", at, hint)
        only = {"reg": ("latent", "a regulariser `~ l1(0.05)`"), "bounds": ("action", "bounds `in [lo, hi]`"),
                "infer": ("latent", "an inference method `infer gradient(steps=20)`")}[tag]
        if kw != only[0]:
            at = where if isinstance(where, Location) else self.loc(where)
            article = "an" if only[0][0] in "aeiou" else "a"
            raise SpecError(f"only {article} {only[0]} takes {only[1]}", at, f"remove it from this {kw}")
        if tag == "reg":
            return [("regularizer", where, _merge(payload, "the regulariser"))]
        if tag == "bounds":
            return [("bounds", where, payload)]
        method = V(str(where), self.loc(where))
        body = _merge([("method", method.loc, method)] + payload, "`infer`")
        return [("inference", method.loc, body)]

    def block(self, name_tok, rhs) -> None:
        name, at = str(name_tok), self.loc(name_tok)
        self.once(("blocks", name), at, f"block `{name}`")
        if isinstance(rhs, V):  # the generic form: name = {kind=encoder, type=mlp, in=[x]}
            self._put_block(name, at, rhs)
            return
        _, (head, tail), (edges, kwargs), second, frozen, kind = rhs
        fields: list[tuple[str, Location, V]] = []
        head_at = self.loc(head)
        if kind is not None:  # `... as encoder`: a copy whose kind is written out
            fields.append(("kind", self.loc(kind), V(str(kind), self.loc(kind))))
            if second is None:
                target = f"{head}.{tail}" if tail is not None else str(head)
                fields.append(("share", head_at, V(target, head_at)))
                tail = None
        if second is not None:
            if str(head) not in ("ema", "unroll") or tail is not None or kwargs or len(edges) != 1 \
                    or not isinstance(edges[0], V):
                raise SpecError("a second argument list is only for EMA targets, `ema(enc)(x_next)`, and unrolled "
                                "predictors, `unroll(pred)(s_seq, a_seq)`", head_at,
                                "write `target = ema(enc)(x_next, momentum=0.99..1.0)`; `ema(...)` and `unroll(...)` "
                                "name one block")
            if str(head) == "unroll":  # the world model's step over sequences: always a predictor
                fields.append(("unroll", edges[0].loc, edges[0]))
                if kind is None:
                    fields.append(("kind", head_at, V("predictor", head_at)))
            else:
                fields.append(("ema_of", edges[0].loc, edges[0]))
                if kind is None:
                    self.copies[name] = (edges[0].data, edges[0].loc)
            edges, kwargs = second
        elif kind is not None:
            pass
        elif tail is not None:
            fields += [("kind", head_at, V(str(head), head_at)), ("type", self.loc(tail), V(str(tail), self.loc(tail)))]
        else:
            fields.append(("share", head_at, V(str(head), head_at)))
            self.copies[name] = (str(head), head_at)
        if edges:
            items = [self._edge(e) for e in edges]
            fields.append(("in", items[0].loc, V([i.data for i in items], items[0].loc, items)))
        fields += [kw for kw in kwargs if str(kw[0]) == "each_step"]  # a block field, not a parameter
        kwargs = [kw for kw in kwargs if str(kw[0]) != "each_step"]
        if kwargs:
            fields.append(("with", kwargs[0][1], _merge(kwargs, f"the parameters of `{name}`")))
        if frozen:
            fields.append(("frozen", head_at, V(True, head_at)))
        self._put_block(name, at, _merge(fields, f"block `{name}`", head_at))

    def _put_block(self, name: str, at: Location, body: V) -> None:
        blocks = self.data.setdefault("blocks", {})
        if name in blocks:
            raise SpecError(f"block `{name}` is defined twice", at, "rename one of them")
        blocks[name] = body.data
        self.reg(("blocks", name), body, at)

    def _edge(self, e) -> V:
        if isinstance(e, V):
            return e
        plain = [x for x in e.edges if isinstance(x, V)]
        if e.head == "sg":
            if len(e.edges) != 1 or len(plain) != 1 or e.kwargs:
                raise SpecError("`sg(...)` takes one input", e.loc, "write `sg(target)` to stop the gradient on one edge")
            ref = plain[0]
            return V({"ref": ref.data, "stop_grad": True}, e.loc, {"ref": (ref.loc, ref), "stop_grad": (e.loc, V(True, e.loc))})
        if not e.edges:
            raise SpecError(f"inline block `{e.head}()` needs an input", e.loc, f"write `{e.head}(x)`")
        gen = _edge_name(e)
        if gen in self.data.get("blocks", {}) or ("blocks", gen) in self.first:
            raise SpecError(f"inline block `{e.head}(...)` would be named `{gen}`, which is taken", e.loc,
                            f"name it yourself on its own line: `my_{gen} = {e.head}(...)`")
        self.block_from_inline(gen, e)
        return V(gen, e.loc)

    def block_from_inline(self, gen: str, e: Inline) -> None:
        self.block(_At(gen, e.loc), ("call", (_At(e.head, e.loc), None), (e.edges, e.kwargs), None, False, None))

    def objective(self, terms, what: str = "objective") -> None:
        at = terms[0][1]
        self.once((what,), at, f"`{what}`")
        body = _merge(terms, f"the {what}")
        body.data = {k: float(v) for k, v in body.data.items()}
        self.data[what] = body.data
        self.reg((what,), body, at)

    def costs(self, terms) -> None:
        self.objective(terms, "costs")

    def level(self, name_tok, kwargs: V | None) -> None:
        levels = self.data.setdefault("levels", [])
        at = self.loc(name_tok)
        fields = [("name", at, V(str(name_tok), at))] + ([(k, kl, kv) for k, (kl, kv) in kwargs.kids.items()] if kwargs else [])
        body = _merge(fields, f"level `{name_tok}`")
        self.reg(("levels", len(levels)), body)
        levels.append(body.data)

    def section(self, name_tok, body: V) -> None:
        key, at = str(name_tok), self.loc(name_tok)
        old = self.data.get(key)
        if old is not None and not isinstance(old, dict):
            raise SpecError(f"`{key}` is written twice", at, "write it once")
        target = self.data.setdefault(key, {})
        for k, (kl, kv) in body.kids.items():
            if k in target:
                raise SpecError(Diagnostic(f"`{key}.{k}` is given twice", kl, "give each key once",
                                           related=[("first given", self.raw.at((key, k), key=True))]))
            target[k] = kv.data
            self.reg((key, k), kv, kl)
        self.raw.keys.setdefault((key,), at)
        self.raw.values.setdefault((key,), body.loc or at)

    # ---------------------------------------------------------------------------- finish
    def finish(self) -> RawSpec:
        blocks = self.data.setdefault("blocks", {})
        errors = []
        for name, (target, at) in self.copies.items():
            kind, seen, cur = None, {name}, target
            while kind is None:
                blk = blocks.get(cur)
                if blk is None or cur in seen:
                    break
                kind = blk.get("kind")
                seen.add(cur)
                cur = self.copies.get(cur, (None,))[0]
            if kind is not None:
                blocks[name] = {"kind": kind, **blocks[name]}
                self.raw.values.setdefault(("blocks", name, "kind"), at)
                continue
            if target == "ema" and target not in blocks:  # `t = ema(enc)`: no inputs list
                src = blocks.get(name, {}).get("in", ["enc"])
                src = src[0] if src and isinstance(src[0], str) else "enc"
                errors.append(Diagnostic("an EMA target is written `ema(block)(inputs, params)`", at,
                                         f"write `{name} = ema({src})(x_next, momentum=0.99..1.0)`: the block "
                                         "it copies, then the inputs it reads"))
            elif target not in blocks:
                errors.append(Diagnostic(f"`{name}` copies `{target}`, which is not a block in this file", at,
                                         _copy_hint(target, [b for b in blocks if b != name])))
            else:
                errors.append(Diagnostic(f"cannot tell the kind of `{name}`: `{target}` has no kind of its own", at,
                                         f"give one block a type (`{target} = encoder.mlp(...)`), or write "
                                         f"`{name} = {{kind=encoder, share={target}, in=[...]}}`"))
        if errors:
            raise SpecError(errors)
        if "name" not in self.data:
            raise SpecError("a .jepa spec starts with `jepa NAME`", Location(self.file, 1, 1),
                            "add a first line such as `jepa my_model`")
        return self.raw


def _edge_name(e) -> str:
    """What an input is called, for naming inline blocks: x -> x, sg(x) -> x, enc(x) -> enc_x."""
    if isinstance(e, V):
        return e.data if isinstance(e.data, str) else e.data["ref"]
    inner = _edge_name(e.edges[0]) if e.edges else "in"
    return inner if e.head == "sg" else inline_name(e.head, inner)


class _At(str):
    """A name with a position, standing in for a lark token."""

    def __new__(cls, text: str, loc: Location):
        obj = super().__new__(cls, text)
        obj.line, obj.column = loc.line, loc.col
        return obj


def _merge(fields: list[tuple[Any, Location, V]], what: str, loc: Location | None = None) -> V:
    data, kids = {}, {}
    for key, kloc, val in fields:
        if key in data:
            raise SpecError(Diagnostic(f"`{key}` is given twice in {what}", kloc, "give it once",
                                       related=[("first given", kids[key][0])]))
        data[key], kids[key] = val.data, (kloc, val)
    return V(data, loc or (fields[0][1] if fields else None), kids)


def _copy_hint(target: str, blocks: dict) -> str:
    if "." in target:
        return f"the kind of `{target}` is not known in this file: add it, e.g. `{target}(x) as encoder`"
    kinds = sorted({c.kind for c in list_blocks() if c.name == target})
    if kinds:
        return f"`{target}` is a block type: write `{kinds[0]}.{target}(...)` to make a new block"
    if target in ("detach", "stop_grad", "stopgrad", "no_grad"):
        return "stop the gradient on an edge with `sg(x)`"
    return did_you_mean(target, list(blocks), "blocks")


def assemble(stmts: list[tuple], text: str, file: str) -> RawSpec:
    """Statements from the parse tree -> :class:`RawSpec` (plain data + positions)."""
    asm = Assembler(text, file)
    for tag, *args in stmts:
        getattr(asm, tag)(*args)
    return asm.finish()
