"""The graph: one validated networkx DiGraph per spec, composites inlined.

Every node has one ``op`` from a small closed set:

============ =================================================================================
``input``    an observed variable; becomes a placeholder of the programs that need it
``latent``   a latent variable z (a placeholder; energy minimisation optimises it)
``action``   an action variable a (a placeholder; planning optimises it)
``call``     applies module ``node.module`` (a registered block type) to ``node.inputs``
``port``     a composite block's input: passes its one input through, checking its type
============ =================================================================================

Edges come from each node's ``inputs`` (a list of :class:`Ref`); the networkx graph is derived
from them, never edited on its own. Walks over the graph (shape inference, lowering, rendering)
live in their own modules and only read it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

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
    _nx: nx.DiGraph | None = None
    _topo: tuple | None = None  # (networkx view it was computed for, node names in order)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    @property
    def nx(self) -> nx.DiGraph:
        """The networkx view, derived from node inputs (edge attribute ``stop_grad``, ``index``)."""
        if self._nx is None:
            g = nx.DiGraph()
            for n in self.nodes.values():
                g.add_node(n.name)
            for n in self.nodes.values():
                for i, r in enumerate(n.inputs):
                    if r.src in self.nodes:
                        g.add_edge(r.src, n.name, stop_grad=r.stop_grad, index=i)
            self._nx = g
        return self._nx

    def topo(self) -> list[Node]:
        """Nodes in a deterministic topological order (spec order breaks ties).

        Kahn's algorithm with a heap of spec positions (what networkx's lexicographical sort does,
        at a fraction of its cost); computed once per networkx view, since every walk needs it."""
        if self._topo is None or self._topo[0] is not self.nx:
            names = list(self.nodes)
            index = {n: i for i, n in enumerate(names)}
            succ: list[list[int]] = [[] for _ in names]
            indeg = [0] * len(names)
            for j, n in enumerate(self.nodes.values()):
                for r in n.inputs:
                    i = index.get(r.src)
                    if i is not None:
                        succ[i].append(j)
                        indeg[j] += 1
            ready = [i for i, d in enumerate(indeg) if d == 0]  # ascending: already a heap
            order: list[str] = []
            while ready:
                i = heapq.heappop(ready)
                order.append(names[i])
                for j in succ[i]:
                    indeg[j] -= 1
                    if indeg[j] == 0:
                        heapq.heappush(ready, j)
            if len(order) < len(names):
                raise nx.NetworkXUnfeasible("the graph has a cycle; no topological order")
            self._topo = (self.nx, order)
        return [self.nodes[n] for n in self._topo[1]]

    def ancestors(self, names: list[str], cut: set[str] = frozenset()) -> set[str]:
        """``names`` and everything they depend on, not looking past nodes in ``cut``."""
        seen, stack = set(), list(names)
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in cut:
                continue
            stack.extend(r.src for r in self.nodes[n].inputs)
        return seen

    def consumers(self, name: str) -> list[str]:
        return list(self.nx.successors(name))

    def modules(self) -> dict[str, Node]:
        """Owning node of every module (one per weight set; shares reuse their owner's)."""
        return {n.module: n for n in self.nodes.values() if n.op == "call" and n.module == _mod(n.name)}


def _mod(name: str) -> str:
    return name.replace("/", "__")


def build_graph(spec: Spec, search_path: list[str] | None = None) -> Graph:
    """Build and check the graph of ``spec``; raises :class:`SpecError` listing every problem."""
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
