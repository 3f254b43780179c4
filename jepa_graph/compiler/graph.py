"""The graph: one validated DAG of nodes per spec, composites inlined.

Every node has one ``op`` from a small closed set:

============ =================================================================================
``input``    an observed variable; becomes a placeholder of the programs that need it
``latent``   a latent variable z (a placeholder; energy minimisation optimises it)
``action``   an action variable a (a placeholder; planning optimises it)
``call``     applies module ``node.module`` (a registered block type) to ``node.inputs``
``port``     a composite block's input: passes its one input through, checking its type
============ =================================================================================

Edges come from each node's ``inputs`` (a list of :class:`Ref`); each node's consumers, the
topological order and (on request) a networkx view are derived from them, never edited on their
own. Walks over the graph (shape inference, lowering, rendering) live in their own modules and
only read it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..core.errors import Diagnostic, Location, SpecError, did_you_mean
from ..frontend.spec import Spec, Block, CompositeBlock
from ..core.tensors import TType

SCALAR_KINDS = ("energy", "cost", "critic", "regularizer")  # graph sinks: one number per sample/batch
VAR_OPS = ("input", "latent", "action")


@dataclass
class Ref:
    """An edge into a node: the source node's graph name, and whether gradients stop there."""

    src: str
    stop_grad: bool = False
    loc: Location | None = None


@dataclass
class Node:
    name: str  # unique graph name; composite members are "inst/block"
    op: str  # input | latent | action | call | port
    kind: str  # block kind for calls ("encoder", ...), the op itself otherwise
    loc: Location
    inputs: list[Ref] = field(default_factory=list)
    type: str | None = None  # registered block type (calls)
    module: str | None = None  # module that holds the weights (shared blocks point at the owner)
    raw_params: dict[str, Any] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)  # the dims visible where the block is written
    share_of: str | None = None  # graph name of the block whose weights this one applies
    ema_of: str | None = None  # graph name of the block this one is a momentum copy of
    ema: Any = None  # EmaParams (momentum range, schedule) of an EMA target
    frozen: bool = False
    scope: str = ""  # composite instance path, "" at top level
    decl: Any = None  # the spec object (variable or block) this node came from
    src: Any = None  # RawSpec of the file the node is written in (positions of its keys)
    path: tuple = ()  # where in that file: ("blocks", "enc") or ("inputs", "x")
    # filled in by shape inference
    ttype: TType | None = None
    params: Any = None
    block: Any = None  # the BlockType instance

    def at(self, *sub, key: bool = False):
        """Location of ``path + sub`` in the node's own file (composites point at theirs)."""
        return self.src.at(self.path + sub, key=key) if self.src is not None else self.loc

    @property
    def is_var(self) -> bool:
        return self.op in VAR_OPS

    @property
    def label(self) -> str:
        return self.name if self.op != "call" else f"{self.name} ({self.kind}.{self.type})"


@dataclass(frozen=True)
class Term:
    """One weighted objective or cost term: a scalar block, or a latent's regulariser R(z)."""

    name: str
    weight: float
    node: str
    latent_reg: str | None = None  # "l1" etc. when the term is R(z) of latent ``node``


@dataclass(frozen=True, kw_only=True)
class WorldModel:
    """What planning unrolls, as graph node names: s_0 = encoder(x), s_{t+1} = predictor(s_t, a_t, z_t).

    ``stride`` counts environment steps per predictor step. Programs: ``encode``, ``step`` and,
    with an action or a latent to unroll, ``rollout`` (:mod:`.programs`)."""

    encoder: str
    predictor: str
    action: str | None = None
    latent: str | None = None
    stride: int = 1
    name: str = ""  # "" for the spec's world model; a level's name otherwise

    @property
    def what(self) -> str:
        """How messages name it: ``world_model`` or ``level `high```."""
        return "world_model" if not self.name else f"level `{self.name}`"

    @property
    def steps(self) -> tuple[str, ...]:
        """The variables a rollout takes one of per step: the action and the latent (graph names)."""
        return tuple(v for v in (self.action, self.latent) if v)


@dataclass(frozen=True, kw_only=True)
class Level(WorldModel):
    """One level of a hierarchy, lowest first. Level k+1 encodes level k's states (``below``);
    ``subgoal`` is the distance between that encoding and what level k+1 planned."""

    name: str
    index: int = 0
    subgoal: str = "l2"  # l2 | l1 | smooth_l1 | cosine: an energy type
    below: str | None = None  # the level whose states this one encodes; None for the lowest


@dataclass
class Graph:
    spec: Spec
    nodes: dict[str, Node] = field(default_factory=dict)
    objective: list[Term] = field(default_factory=list)
    costs: list[Term] = field(default_factory=list)
    world_model: WorldModel | None = None
    levels: list[Level] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # exported names (composite files)
    warnings: list[Diagnostic] = field(default_factory=list)
    composites: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance -> info (render)
    _nx: _Edges | None = None  # derived from the nodes' inputs on first use; None: derive again

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def _edges(self) -> _Edges:
        if self._nx is None:
            self._nx = _Edges(self.nodes)
        return self._nx

    @property
    def nx(self) -> Any:
        """A networkx DiGraph of the nodes (edge attributes ``stop_grad``, ``index``), built on request."""
        e = self._edges()
        if e.digraph is None:
            import networkx as nx  # networkx: only for callers that ask for this view; checking needs none
            g = nx.DiGraph()
            for n in self.nodes.values():
                g.add_node(n.name)
            for n in self.nodes.values():
                for i, r in enumerate(n.inputs):
                    if r.src in self.nodes:
                        g.add_edge(r.src, n.name, stop_grad=r.stop_grad, index=i)
            e.digraph = g
        return e.digraph

    def topo(self) -> list[Node]:
        """Nodes in a deterministic topological order (spec order breaks ties); networkx's
        ``NetworkXUnfeasible`` when the graph has a cycle (:meth:`cycle` names it)."""
        order = self._edges().order
        if order is None:
            import networkx as nx  # networkx: the exception callers catch, raised only for a cycle
            raise nx.NetworkXUnfeasible("the graph has a cycle; no topological order")
        return [self.nodes[n] for n in order]

    def cycle(self) -> list[str] | None:
        """The first cycle a depth-first walk meets, as node names ``[a, b, ..., a]``; None if acyclic.

        The walk starts from each node in spec order and follows consumers in spec order, so the
        cycle is the one networkx's ``find_cycle`` returns."""
        edges = self._edges()
        if edges.order is not None:  # the sort got through every node
            return None
        succ, done = edges.succ, set()
        for start in self.nodes:
            if start in done:
                continue
            path, on_path, todo = [start], {start}, [iter(succ[start])]
            while todo:
                nxt = next(todo[-1], None)
                if nxt is None:  # every consumer of path[-1] explored: no cycle through it
                    done.add(path[-1])
                    on_path.discard(path.pop())
                    todo.pop()
                elif nxt in on_path:  # an edge back into the path closes a cycle
                    return path[path.index(nxt):] + [nxt]
                elif nxt not in done:
                    path.append(nxt)
                    on_path.add(nxt)
                    todo.append(iter(succ[nxt]))
        return None

    def ancestors(self, names: list[str], cut: set[str] = frozenset()) -> set[str]:
        """``names`` and everything they depend on, not looking past nodes in ``cut``."""
        nodes, seen, stack = self.nodes, set(), list(names)
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in cut:
                continue
            for r in nodes[n].inputs:
                if r.src not in seen:
                    stack.append(r.src)
        return seen

    def consumers(self, name: str) -> list[str]:
        """The nodes that read ``name``, each once, in spec order."""
        return list(self._edges().succ[name])

    def modules(self) -> dict[str, Node]:
        """Owning node of every module (one per weight set; shares reuse their owner's)."""
        return {n.module: n for n in self.nodes.values() if n.op == "call" and n.module == module_key(n.name)}


class _Edges:
    """What walks need of the edges, derived once from the nodes' inputs: each node's consumers
    (each once, in spec order) and the topological order, None when there is a cycle.

    The order is Kahn's algorithm with a heap of spec positions: networkx's lexicographical
    topological sort keyed by spec position, at a fraction of its cost."""

    __slots__ = ("succ", "order", "digraph")

    def __init__(self, nodes: dict[str, Node]):
        names = list(nodes)
        index = {n: i for i, n in enumerate(names)}
        succ: list[list[int]] = [[] for _ in names]
        indeg = [0] * len(names)
        for j, n in enumerate(nodes.values()):
            for r in n.inputs:
                i = index.get(r.src)
                if i is not None:
                    succ[i].append(j)
                    indeg[j] += 1
        self.succ = {names[i]: [names[j] for j in dict.fromkeys(js)] for i, js in enumerate(succ)}
        ready = [i for i, d in enumerate(indeg) if d == 0]  # ascending: already a heap
        order: list[str] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(names[i])
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    heapq.heappush(ready, j)
        self.order = order if len(order) == len(names) else None
        self.digraph = None  # networkx's view, built by Graph.nx on request


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of a spec object (a block, a variable), ``default`` where its kind has none.

    A lookup in the model's fields: ``getattr`` on a pydantic model without the field raises and
    catches an exception, and a compile asks every block (``unroll``, ``ema_of``)."""
    fields = getattr(obj, "__dict__", None)
    return fields.get(name, default) if fields is not None else default


# ------------------------------------------------------------ names: graph node <-> torch side
# A node inside a composite instance is `inst/enc`; torch names cannot hold `/`, so its module key
# (in CompiledModel.blocks) and its placeholder / fx node name use `__`. These three functions are
# the only places that convert.
_PY_KEYWORDS = {"lambda", "in", "if", "else", "def", "class", "return", "for", "while", "with", "as", "is",
                "not", "and", "or", "from", "import", "global", "pass", "raise", "try", "yield", "del"}


def module_key(name: str) -> str:
    """The key of node ``name``'s weights in ``CompiledModel.blocks``: ``inst/enc`` -> ``inst__enc``."""
    return name.replace("/", "__")


def fx_name(name: str) -> str:
    """The placeholder (and fx node) name of node ``name``: ``inst/enc`` -> ``inst__enc``; a Python
    keyword gets a trailing ``_`` (``lambda`` -> ``lambda_``). :func:`node_name` inverts it."""
    n = module_key(name)
    return n + "_" if n in _PY_KEYWORDS else n


def node_name(placeholder: str) -> str:
    """The node a placeholder, fx node or module key stands for: the inverse of :func:`fx_name`."""
    if placeholder.endswith("_") and placeholder[:-1] in _PY_KEYWORDS:
        placeholder = placeholder[:-1]
    return placeholder.replace("__", "/")


def build_graph(spec: Spec, search_path: list[str] | None = None) -> Graph:
    """Build and check the graph of ``spec``; raises :class:`SpecError` listing every problem."""
    # a cycle otherwise: composite and checks build on this module's Graph and Node
    from .composite import Inliner
    from .checks import check_graph

    g = Graph(spec)
    errors: list[Diagnostic] = []
    Inliner(g, errors, search_path).add_spec(spec, scope="", dims=dict(spec.dims), bindings=None)
    if errors:
        raise SpecError(errors)
    check_graph(g, errors)
    if errors:
        raise SpecError(errors)
    return g
