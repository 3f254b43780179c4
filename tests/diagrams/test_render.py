"""Diagrams: the paper's notation read back from the DOT and SVG we produce, not just files existing.

DOT-level tests need no graphviz install; SVG tests need the `dot` program (installed by
`make install`, and in CI) and are skipped without it.
"""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pytest

import jepa_graph as jg
from conftest import ROOT, SPECS, spec_path
from jepa_graph.cli import main as cli_main
from jepa_graph.diagrams import MissingDot, dot_source, notation as N, pipe, render, svg_text
from jepa_graph.diagrams.gallery import canonical, check_gallery, write_gallery

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` not installed")
SVG = "{http://www.w3.org/2000/svg}"

AGENT = """\
name: agent
dims: {obs: 6, state: 8, act: 2}
inputs:
  x:      {shape: [obs]}
  x_next: {shape: [obs]}
  goal:   {shape: [obs]}
latents:
  z: {shape: [2], regularizer: {l1: 0.1}}
actions:
  a: {shape: [act], bounds: [-1, 1]}
blocks:
  enc:    {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state}}
  target: {kind: encoder, ema_of: enc, in: [x_next], with: {momentum: [0.99, 1.0]}}
  g:      {kind: encoder, share: enc, in: [goal]}
  pred:   {kind: predictor, type: ac_mlp, in: [enc, a, z], with: {branch: 8, hidden: [16], out: state}}
  E:      {kind: energy, type: l2, in: [pred, {ref: target, stop_grad: true}]}
  reg:    {kind: regularizer, type: vicreg, in: [enc]}
  reach:  {kind: cost, type: goal_distance, in: [pred, g]}
  critic: {kind: critic, type: mlp, in: [pred], with: {hidden: [8]}}
  actor:  {kind: actor, type: mlp, in: [enc], with: {hidden: [8], out: act}}
objective: {E: 1.0, reg: 1.0, z.l1: 1.0}
world_model: {encoder: enc, predictor: pred, action: a, latent: z}
costs: {reach: 1.0, critic: 0.5}
"""

UNIT = """\
name: unit
dims: {d: 8}
inputs:
  u: {shape: [d]}
blocks:
  e1: {kind: encoder, type: mlp, in: [u], with: {out: d}}
  p1: {kind: predictor, type: mlp, in: [e1], with: {out: d}}
  p2: {kind: predictor, type: mlp, in: [p1], with: {out: d}}
  p3: {kind: predictor, type: mlp, in: [p2], with: {out: d}}
  p4: {kind: predictor, type: mlp, in: [p3], with: {out: d}}
outputs: {out: p4}
"""

PAIR = """\
name: pair
dims: {d: 8}
inputs:
  v: {shape: [d]}
blocks:
  first:  {kind: composite, type: unit, in: [v], with: {d: d}}
  second: {kind: composite, type: unit, in: [first], with: {d: d}}
outputs: {out: second}
"""

NESTED = """\
name: nested
dims: {d: 8}
inputs:
  x: {shape: [d]}
  y: {shape: [d]}
blocks:
  outer: {kind: composite, type: pair, in: [{ref: x, stop_grad: true}], with: {d: d}}
  tgt:   {kind: encoder, type: mlp, in: [y], with: {out: d}}
  E:     {kind: energy, type: l2, in: [outer, tgt]}
objective: {E: 1.0}
"""

HIER = """\
name: hjepa
dims: {obs: 6, s1: 8, s2: 4, act: 2}
inputs:
  x:      {shape: [obs]}
  x_next: {shape: [obs]}
actions:
  a1: {shape: [act]}
  a2: {shape: [2]}
blocks:
  enc1:  {kind: encoder, type: mlp, in: [x], with: {out: s1}}
  pred1: {kind: predictor, type: mlp, in: [enc1, a1], with: {out: s1}}
  tgt1:  {kind: encoder, share: enc1, in: [x_next]}
  E1:    {kind: energy, type: l2, in: [pred1, {ref: tgt1, stop_grad: true}]}
  enc2:  {kind: encoder, type: mlp, in: [enc1], with: {out: s2}}
  pred2: {kind: predictor, type: mlp, in: [enc2, a2], with: {out: s2}}
  tgt2:  {kind: encoder, type: mlp, in: [tgt1], with: {out: s2}}
  E2:    {kind: energy, type: l2, in: [pred2, tgt2]}
objective: {E1: 1.0, E2: 0.5}
levels:
  - {name: low, encoder: enc1, predictor: pred1, action: a1}
  - {name: high, encoder: enc2, predictor: pred2, action: a2, stride: 4}
"""


# ------------------------------------------------------------------------------ DOT reading
def _attrs(text: str) -> dict[str, str]:
    """Attributes of one DOT statement ``[k=v k="v" label=<<html>>]``; handles nested <> and quotes."""
    out, i = {}, 0
    while i < len(text):
        m = re.match(r"\s*(\w+)=", text[i:])
        if not m:
            break
        key, i = m.group(1), i + m.end()
        if text[i] == '"':
            j = i + 1
            while text[j] != '"' or text[j - 1] == "\\":
                j += 1
            out[key], i = text[i + 1:j], j + 1
        elif text[i] == "<":
            depth, j = 0, i
            while True:
                depth += {"<": 1, ">": -1}.get(text[j], 0)
                j += 1
                if depth == 0:
                    break
            out[key], i = text[i + 1:j - 1], j
        else:
            m = re.match(r"[^\s\]]+", text[i:])
            out[key], i = m.group(0), i + m.end()
    return out


def parse_dot(src: str):
    """(nodes: id -> (attrs, cluster stack), edges: list of (src, dst, attrs), clusters: name -> attrs)."""
    nodes, edges, clusters, stack = {}, [], {}, []
    for line in src.splitlines():
        s = line.strip()
        m = re.match(r"subgraph (\S+) \{", s)
        if m:
            stack.append(m.group(1).strip('"'))
            clusters[stack[-1]] = {}
            continue
        if s == "}":
            if stack:
                stack.pop()
            continue
        if stack and re.match(r"^(class|label|style|color|bgcolor|fontcolor|fontname|fontsize|penwidth)=", s):
            clusters[stack[-1]].update(_attrs(s))
            continue
        if stack and s.startswith("graph ["):
            clusters[stack[-1]].update(_attrs(s[len("graph ["):-1]))
            continue
        m = re.match(r'^("[^"]+"|[\w]+)(?::(\w+))?(?::\w+)? -> ("[^"]+"|[\w]+)(?::(\w+))?(?::\w+)? \[(.*)\]$', s)
        if m:
            edges.append((m.group(1).strip('"'), m.group(3).strip('"'), dict(_attrs(m.group(5)),
                          _src_port=m.group(2) or "", _dst_port=m.group(4) or "")))
            continue
        m = re.match(r'^("[^"]+"|\w+) \[(.*)\]$', s)
        if m and m.group(1) not in ("graph", "node", "edge"):
            nodes[m.group(1).strip('"')] = (_attrs(m.group(2)), tuple(stack))
    return nodes, edges, clusters


def _edge(edges, src, dst):
    hits = [a for s, d, a in edges if s == src and d == dst]
    assert hits, f"no edge {src} -> {dst}"
    return hits[0]


@pytest.fixture
def agent():
    return jg.loads(AGENT, "agent.yaml")


@pytest.fixture
def lib(tmp_path):
    (tmp_path / "unit.yaml").write_text(UNIT)
    (tmp_path / "pair.yaml").write_text(PAIR)
    (tmp_path / "nested.yaml").write_text(NESTED)
    return tmp_path


# ------------------------------------------------------------------------- notation in DOT
def test_each_kind_has_its_glyph(agent):
    nodes, _, _ = parse_dot(dot_source(agent))
    want = {"x": "input", "z": "latent", "a": "action", "enc": "encoder", "pred": "predictor", "E": "energy",
            "reg": "regularizer", "reach": "cost", "critic": "critic", "actor": "actor"}
    for name, kind in want.items():
        a, _ = nodes[name]
        g = N.GLYPHS[kind]
        assert a["fillcolor"] == g.fill and a["color"] == g.border, name
        assert kind in a["class"].split()
    assert nodes["x"][0]["shape"] == "circle" and nodes["x"][0]["fillcolor"] != "#ffffff"  # shaded
    assert nodes["z"][0]["shape"] == "circle" and nodes["z"][0]["fillcolor"] == "#ffffff"  # open
    assert nodes["a"][0]["shape"] == "doublecircle"
    assert nodes["pred"][0]["style"] == "rounded,filled" and nodes["actor"][0]["style"] == "rounded,filled"
    for red in ("E", "reg", "reach", "critic"):  # energy and cost terms: square red boxes
        assert nodes[red][0]["shape"] == "box" and "rounded" not in nodes[red][0]["style"]
        assert nodes[red][0]["color"] in ("#cc0000", "#990000")
    # the critic (trainable) is told apart from the intrinsic cost: double outline, other fill, TC vs IC
    assert nodes["critic"][0].get("peripheries") == "2" and "peripheries" not in nodes["reach"][0]
    assert nodes["critic"][0]["fillcolor"] != nodes["reach"][0]["fillcolor"]
    assert "TC" in nodes["critic"][0]["label"] and "IC" in nodes["reach"][0]["label"]
    assert "cost \u00d70.5" in nodes["critic"][0]["label"] and "\u00d7" not in nodes["reach"][0]["label"]


def test_encoder_trapezoid_narrows_toward_representation(agent):
    lr, _, _ = parse_dot(dot_source(agent, rankdir="LR"))
    tb, _, _ = parse_dot(dot_source(agent, rankdir="TB"))
    assert lr["enc"][0]["shape"] == "trapezium" and lr["enc"][0]["orientation"] == "270"
    assert tb["enc"][0]["shape"] == "invtrapezium"


def test_shared_weights_are_one_module_with_a_cell_per_use(agent):
    nodes, edges, _ = parse_dot(dot_source(agent))
    assert "g" not in nodes  # `g` shares `enc`: not a second, independent-looking box
    enc = nodes["enc"][0]
    assert "shared" in enc["class"] and 'port="u0"' in enc["label"] and 'port="u1"' in enc["label"]
    assert _edge(edges, "x", "enc")["_dst_port"] == "u0"
    assert _edge(edges, "goal", "enc")["_dst_port"] == "u1"
    assert _edge(edges, "enc", "reach")["_src_port"] == "u1"  # reach reads the goal's use
    assert _edge(edges, "enc", "pred")["_src_port"] == "u0"


def test_ema_and_stop_grad_edges(agent):
    nodes, edges, _ = parse_dot(dot_source(agent))
    assert "dashed" in nodes["target"][0]["style"] and "ema" in nodes["target"][0]["class"]
    ema = _edge(edges, "enc", "target")
    assert ema["class"] == "ema" and ema["style"] == "dashed" and ema["label"] == "EMA m=0.99\u21921"
    assert ema["arrowhead"] == "empty"
    sg = _edge(edges, "target", "E")
    assert sg["class"] == "stop_grad" and sg["arrowtail"] == "tee" and sg["dir"] == "both"
    assert "stop-grad" in sg["label"]
    plain = _edge(edges, "pred", "E")
    assert plain["class"] == "data" and "arrowtail" not in plain and "stop-grad" not in plain["label"]


def test_amortised_inference_edge():
    text = AGENT.replace("z: {shape: [2], regularizer: {l1: 0.1}}", "z: {shape: [2], regularizer: {l1: 0.1}, encoder: zenc}")
    text = text.replace("  E:  ", "  zenc: {kind: predictor, type: mlp, in: [enc], with: {out: 2}}\n  E:  ")
    _, edges, _ = parse_dot(dot_source(jg.loads(text, "amortised.yaml")))
    e = _edge(edges, "zenc", "z")
    assert e["class"] == "amortize" and e["style"] == "dotted" and "amortised" in e["label"]


def test_shapes_and_params_toggle(agent):
    nodes, edges, _ = parse_dot(dot_source(agent))
    assert _edge(edges, "x", "enc")["label"] == "[B, 6]" and _edge(edges, "enc", "pred")["label"] == "[B, 8]"
    model = jg.compile(agent)
    n_pred = sum(p.numel() for p in model.blocks["pred"].parameters())
    assert f"{N.human(n_pred)} params" in nodes["pred"][0]["label"]
    nodes, edges, _ = parse_dot(dot_source(agent, shapes=False, params=False))
    assert "label" not in _edge(edges, "x", "enc") and "params" not in nodes["pred"][0]["label"]
    assert "stop-grad" in _edge(edges, "target", "E")["label"]  # the marker stays without shapes


def test_legend_lists_every_glyph_and_stroke(agent):
    nodes, edges, clusters = parse_dot(dot_source(agent, legend=True))
    assert clusters["cluster_legend"]["label"] == "<b>notation</b>"
    legend = {n[len("legend__"):]: a for n, (a, path) in nodes.items() if path == ("cluster_legend",)}
    assert set(N.GLYPHS) - {"unknown", "missing"} <= set(legend)
    assert {a["class"] for s, d, a in edges if s.startswith("legend__")} == set(N.STROKES) - {"error"}
    assert "legend__input" not in parse_dot(dot_source(agent))[0]
    if shutil.which("dot"):
        assert ">notation<" in svg_text(agent, legend=True, program="step")


def test_compiled_model_renders_like_its_spec(agent):
    assert dot_source(jg.compile(agent)) == dot_source(agent)


def test_latent_regularizer_is_a_red_box_fed_by_its_latent():
    """two_rooms' objective has `z.l1: 1.0`: the latent's capacity term R(z) is drawn, from z."""
    nodes, edges, _ = parse_dot(dot_source(SPECS / "two_rooms.yaml"))
    a, _ = nodes["z.l1"]
    g = N.GLYPHS["regularizer"]
    assert a["fillcolor"] == g.fill and a["color"] == g.border and "diagonals" in a["style"]
    assert a["class"].split() == ["block", "regularizer"]
    assert "<b>z.l1</b>" in a["label"] and "R(z) \u00b7 l1 0.05" in a["label"]
    e = _edge(edges, "z", "z.l1")
    assert e["class"] == "data" and e["label"] == "[B, 2]"
    fork, _, _ = parse_dot(dot_source(SPECS / "fork.jepa"))  # a latent without R(z): no box
    assert not [n for n in fork if n.startswith("z.")]


def test_latent_regularizer_weight_and_one_only_minimisation_adds(agent):
    nodes, _, _ = parse_dot(dot_source(jg.loads(AGENT.replace("z.l1: 1.0}", "z.l1: 0.5}"), "a.yaml")))
    assert "R(z) \u00b7 l1 0.1 \u00b7 obj \u00d70.5" in nodes["z.l1"][0]["label"]
    # declared but not in the objective: energy minimisation still adds it (LatentSpace.extra_regs)
    nodes, edges, _ = parse_dot(dot_source(jg.loads(AGENT.replace(", z.l1: 1.0}", "}"), "a.yaml"), program="loss"))
    assert "l1 0.1 \u00b7 inference only" in nodes["z.l1"][0]["label"]
    assert "faded" in nodes["z.l1"][0]["class"]  # not a term of the loss
    nodes, _, _ = parse_dot(dot_source(agent, program="loss"))
    assert "used" in nodes["z.l1"][0]["class"]


# --------------------------------------------------------------------- clusters and levels
def test_composites_are_nested_clusters_with_edges_to_the_inner_node(lib):
    nodes, edges, clusters = parse_dot(dot_source(lib / "nested.yaml"))
    assert clusters["cluster_outer"]["label"].strip() == "outer : pair"  # padded: off the rounded corners
    assert clusters["cluster_outer_first"]["label"].strip() == "first : unit"
    assert "composite" in clusters["cluster_outer"]["class"]
    assert nodes["outer/first/e1"][1] == ("cluster_outer", "cluster_outer_first")
    assert nodes["tgt"][1] == ()
    # ports are elided: x enters the encoder inside two levels of composites, stop-grad kept
    e = _edge(edges, "x", "outer/first/e1")
    assert e["class"] == "stop_grad"
    _edge(edges, "outer/first/p4", "outer/second/e1")
    _edge(edges, "outer/second/p4", "E")


def test_depth_collapses_composites(lib):
    nodes, edges, clusters = parse_dot(dot_source(lib / "nested.yaml", depth=0))
    assert not clusters and "outer/first/e1" not in nodes
    assert nodes["outer"][0]["shape"] == "box3d" and "10 blocks" in nodes["outer"][0]["label"]
    _edge(edges, "x", "outer")
    _edge(edges, "outer", "E")
    nodes, edges, clusters = parse_dot(dot_source(lib / "nested.yaml", depth=1))
    assert set(clusters) == {"cluster_outer"}
    assert nodes["outer/first"][1] == ("cluster_outer",) and nodes["outer/first"][0]["shape"] == "box3d"
    _edge(edges, "outer/first", "outer/second")
    assert len([e for e in edges if e[:2] == ("outer/first", "outer/second")]) == 1  # deduplicated


def test_levels_are_clusters():
    nodes, _, clusters = parse_dot(dot_source(jg.loads(HIER, "h.yaml")))
    assert clusters["cluster_level_0"]["label"].strip() == "level 0: low (stride 1)"
    assert clusters["cluster_level_1"]["label"].strip() == "level 1: high (stride 4)"
    assert "level" in clusters["cluster_level_0"]["class"]
    for name in ("enc1", "pred1", "a1", "E1"):
        assert nodes[name][1] == ("cluster_level_0",), name
    for name in ("enc2", "pred2", "a2", "E2", "tgt2"):
        assert nodes[name][1] == ("cluster_level_1",), name
    assert nodes["x"][1] == () and nodes["x_next"][1] == ()  # observations are data, outside levels
    nodes, _, _ = parse_dot(dot_source(jg.loads(HIER, "h.yaml"), program="step_high"))
    assert {n for n, (a, _) in nodes.items() if "used" in a["class"].split()} == {"pred2", "a2"}
    assert {n for n, (a, _) in nodes.items() if "given" in a["class"].split()} == {"enc2"}


def test_shared_module_used_outside_its_composite_is_drawn_outside_it():
    """h_jepa: top-level `far` and `goal_state` share `low/context_encoder` (low.state)."""
    nodes, edges, _ = parse_dot(dot_source(SPECS / "h_jepa.jepa"))
    a, path = nodes["low/context_encoder"]
    assert path == ("cluster_level_0",)  # the innermost cluster holding all three uses, not `low`
    assert re.findall(r'port="u\d"[^>]*>([^<]*)<', a["label"]) == ["context_encoder", "far", "goal_state"]
    assert nodes["low/predictor"][1] == ("cluster_level_0", "cluster_low")
    assert nodes["high/context_encoder"][1] == ("cluster_level_1", "cluster_high")  # not shared: stays
    assert _edge(edges, "x_far", "low/context_encoder")["_dst_port"] == "u1"


def test_collapsed_composite_counts_its_blocks_and_keeps_outside_uses_apart():
    from jepa_graph.diagrams.programs import meta_model, param_counts
    spec = SPECS / "h_jepa.jepa"
    nodes, edges, _ = parse_dot(dot_source(spec, depth=0))
    counts = param_counts(meta_model(jg.check(spec)))
    for level in ("low", "high"):  # ac_jepa_level has 5 blocks, whose weights it owns
        own = sum(v for k, v in counts.items() if k.startswith(level + "__"))
        assert f"5 blocks \u00b7 {N.human(own)} params" in nodes[level][0]["label"], level
    assert "low/context_encoder" in nodes and "far" not in nodes and "goal_state" not in nodes
    assert not [e for e in edges if e[0] in ("x_far", "goal") and e[1] == "low"]  # they feed their own uses
    assert _edge(edges, "goal", "low/context_encoder")["_dst_port"] == "u2"
    # low.state (u0) and far (u1) are two tensors into `high`: two edges, not one
    assert sorted(a["_src_port"] for s, d, a in edges if s == "low/context_encoder" and d == "high") == ["u0", "u1"]
    assert _edge(edges, "low/context_encoder", "low")["class"] == "ema"  # the EMA target is inside `low`


# ------------------------------------------------------------------------------ highlighting
def _cells(label: str) -> dict[str, dict[str, str]]:
    """Attributes of each use's cell (``<td port="u0" ...>``) in a shared module's HTML label."""
    return {m.group(1): dict(re.findall(r'(\w+)="([^"]*)"', m.group(0)))
            for m in re.finditer(r'<td port="(u\d+)"[^>]*>', label)}


def _cell_state(cell: dict[str, str]) -> str:
    if cell.get("color") != N.HIGHLIGHT_COLOR:
        return "faded" if cell.get("color") == N.FADED["color"] else "plain"
    return "given" if cell.get("style") == "dashed" else "used"


# enc is shared: cell u0 is `enc` (x), u1 is `g` (goal); each use is coloured on its own
@pytest.mark.parametrize("program,used,given,faded,cells", [
    ("encode", {"x", "enc"}, set(), {"pred", "E", "critic", "actor"}, ("used", "faded")),
    ("step", {"pred", "a", "z"}, {"enc"}, {"x", "E", "critic", "reach"}, ("given", "faded")),
    ("cost", {"reach", "critic", "enc", "goal"}, {"pred"}, {"E", "a", "actor"}, ("faded", "used")),
    ("act", {"actor"}, {"enc"}, {"pred", "E"}, ("given", "faded")),
    ("energy", {"x", "x_next", "enc", "target", "pred", "E", "a", "z", "z.l1"}, set(), {"critic", "actor", "reach"},
     ("used", "faded")),
])
def test_program_highlight(agent, program, used, given, faded, cells):
    nodes, edges, _ = parse_dot(dot_source(agent, program=program))
    cls = {n: a["class"].split() for n, (a, _) in nodes.items()}
    for n in used:
        assert "used" in cls[n], (program, n)
        # a shared module is not outlined as a whole: its cells are
        assert (nodes[n][0]["color"] == N.HIGHLIGHT_COLOR) == ("shared" not in cls[n]), (program, n)
    for n in given:
        assert "given" in cls[n], (program, n)
    for n in faded:
        assert "faded" in cls[n], (program, n)
    got = _cells(nodes["enc"][0]["label"])
    assert (_cell_state(got["u0"]), _cell_state(got["u1"])) == cells
    if program == "step":
        assert "used" in _edge(edges, "a", "pred")["class"] and "faded" in _edge(edges, "pred", "E")["class"]
        assert "faded" in cls["z.l1"]  # R(z) is a term of the energy, not of one step


def test_program_colours_the_uses_of_a_shared_module_not_the_node():
    """lecun_agent's `act` takes the perceived state as given and encodes the goal itself."""
    nodes, _, _ = parse_dot(dot_source(SPECS / "lecun_agent.jepa", program="act"))
    a, _ = nodes["perception"]
    assert a["color"] != N.HIGHLIGHT_COLOR and "dashed" not in a["style"]
    cells = _cells(a["label"])
    assert ">perception<" in a["label"] and ">goal_state<" in a["label"]
    assert _cell_state(cells["u0"]) == "given" and _cell_state(cells["u1"]) == "used"
    assert cells["u1"]["border"] == "3"
    nodes, _, _ = parse_dot(dot_source(SPECS / "lecun_agent.jepa", program="encode"))
    cells = _cells(nodes["perception"][0]["label"])
    assert _cell_state(cells["u0"]) == "used" and _cell_state(cells["u1"]) == "faded"


@pytest.mark.parametrize("spec,node,given,other", [("seed_world_model", "encoder", "u0", "u1"),
                                                     ("lecun_agent", "perception", "u0", "u1")])
def test_shared_module_the_program_only_is_given_fades(spec, node, given, other):
    """`step` is handed the encoder's state: no use of the shared encoder is computed, so its
    shape fades like any unused block; the cell of the use it is given stays dashed blue."""
    nodes, edges, _ = parse_dot(dot_source(spec_path(spec), program="step"))
    a, _ = nodes[node]
    assert {"shared", "given", "faded"} <= set(a["class"].split())
    assert {k: a[k] for k in N.FADED} == N.FADED
    cells = _cells(a["label"])
    assert _cell_state(cells[given]) == "given" and _cell_state(cells[other]) == "faded"
    assert re.search(rf'<td port="{given}"[^>]*><font color="#222222">', a["label"])  # readable on the faded node
    assert "used" in _edge(edges, node, "predictor")["class"]
    # a use that is computed keeps the module unfaded (act computes the goal's encoding)
    a, _ = parse_dot(dot_source(SPECS / "lecun_agent.jepa", program="act"))[0]["perception"]
    assert "faded" not in a["class"].split() and a["fillcolor"] == N.GLYPHS["encoder"].fill


def test_program_help_names_the_programs_the_hint_lists(capsys):
    from jepa_graph.diagrams.programs import meta_model
    with pytest.raises(SystemExit):
        cli_main(["render", "--help"])
    help_ = " ".join(capsys.readouterr().out.split())
    names = set()
    for p in sorted(SPECS.iterdir()):
        if p.suffix in (".yaml", ".jepa"):
            model = meta_model(jg.check(p))
            level = {f"{k}_{lv.name}": f"{k}_LEVEL" for lv in model.graph.levels for k in ("encode", "step", "rollout")}
            names |= {level.get(n, n) for n in model.program_names()}
    assert "forward" in names and "encode_LEVEL" in names
    for n in names:
        assert re.search(rf"\b{n}\b", help_), n
    assert "lists the spec's own" in help_
    with pytest.raises(jg.SpecError) as e:
        dot_source(SPECS / "ijepa.jepa", program="step")
    assert e.value.diagnostics[0].hint == "programs here: forward, energy, loss"


def test_highlight_blocks_and_unknown_names(agent, lib):
    nodes, _, _ = parse_dot(dot_source(agent, highlight=["pred", "g"]))
    assert "highlight" in nodes["pred"][0]["class"] and "highlight" in nodes["enc"][0]["class"]  # g is enc's use
    assert "highlight" not in nodes["E"][0]["class"]
    _, _, clusters = parse_dot(dot_source(lib / "nested.yaml", highlight=["outer"]))
    assert clusters["cluster_outer"]["color"] == N.HIGHLIGHT_COLOR
    with pytest.raises(jg.SpecError, match="did you mean `pred`"):
        dot_source(agent, highlight=["prd"])
    with pytest.raises(jg.SpecError) as e:  # worded for the Python caller too: no CLI flag in it
        jg.render(agent, lib / "unused.dot", highlight=["xyz"])
    msg = e.value.diagnostics[0].message
    assert msg == "highlight: `xyz` is not a block of `agent`" and "--" not in str(e.value)
    with pytest.raises(jg.SpecError, match="no program `plan`"):
        dot_source(agent, program="plan")


def test_highlight_takes_the_dotted_references_specs_use(lib):
    nodes, _, clusters = parse_dot(dot_source(SPECS / "h_jepa.jepa", highlight=["low.pred"]))
    assert "highlight" in nodes["low/predictor"][0]["class"]
    assert "highlight" not in nodes["high/predictor"][0]["class"]
    assert clusters["cluster_low"]["color"] != N.HIGHLIGHT_COLOR  # the output, not the whole level
    nodes, _, _ = parse_dot(dot_source(SPECS / "h_jepa.jepa", highlight=["low.state"]))
    assert "highlight" in nodes["low/context_encoder"][0]["class"]  # a shared output: its one node
    nodes, _, clusters = parse_dot(dot_source(lib / "nested.yaml", highlight=["outer.out"]))
    assert "highlight" in nodes["outer/second/p4"][0]["class"]
    _, _, clusters = parse_dot(dot_source(lib / "nested.yaml", highlight=["outer.first"]))
    assert clusters["cluster_outer_first"]["color"] == N.HIGHLIGHT_COLOR
    with pytest.raises(jg.SpecError, match="did you mean `low.pred`"):
        dot_source(SPECS / "h_jepa.jepa", highlight=["low.prd"])


@needs_dot
def test_cli_highlight_dotted_reference(tmp_path, capsys):
    out = tmp_path / "h.svg"
    assert cli_main(["render", str(SPECS / "h_jepa.jepa"), "-o", str(out), "--highlight", "low.pred"]) == 0
    nodes = _svg_nodes(out.read_text())
    assert nodes["low/predictor"].find(SVG + "path").get("stroke") == N.HIGHLIGHT_COLOR


# ----------------------------------------------------------------------------- broken specs
def test_unknown_reference_draws_red_edge_with_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT.replace("in: [pred, {ref: target", "in: [prd, {ref: target"))
    nodes, edges, _ = parse_dot(dot_source(bad))
    e = _edge(edges, "missing__prd", "E")
    assert e["class"] == "error" and e["color"] == N.ERROR_COLOR and "unknown reference `prd`" in e["label"]
    assert nodes["missing__prd"][0]["color"] == N.ERROR_COLOR
    assert _edge(edges, "target", "E")["class"] == "stop_grad"  # the rest is drawn normally
    src = dot_source(bad, program="step")  # no programs without a valid spec: the errors still draw
    assert "not shown: the spec does not compile" in src and "unknown reference `prd`" in src


def test_wiring_error_marks_the_edge(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT.replace("critic, type: mlp, in: [pred]", "critic, type: mlp, in: [z]"))
    d = jg.render(bad, tmp_path / "bad.dot")
    assert not d.ok and any("not latents" in x.message for x in d.errors)
    _, edges, _ = parse_dot(d.source)
    e = _edge(edges, "z", "critic")
    assert e["class"] == "error" and "`z` (latent) -> `critic` (critic)" in e["label"]
    assert _edge(edges, "pred", "E")["class"] == "data"


def test_schema_error_marks_the_block_and_syntax_error_goes_in_caption(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT.replace("kind: actor", "kind: actr"))
    nodes, _, _ = parse_dot(dot_source(bad))
    assert "error" in nodes["actor"][0]["class"] and "unknown block kind" in nodes["actor"][0]["label"]
    bad.write_text("name: x\nblocks: {a: [\n")
    src = dot_source(bad)
    assert N.ERROR_COLOR in src and "bad.yaml" in src


def test_dsl_spec_errors_are_placed_too(tmp_path):
    bad = tmp_path / "tiny.jepa"
    bad.write_text("jepa tiny\ndims obs = 4, state = 8\ninput x, y : [obs]\nenc = encoder.mlp(x, out=state)\n"
                   "tgt = enc(y)\nE   = energy.l2(enc, tgtt)\nobjective E\n")
    nodes, edges, _ = parse_dot(dot_source(bad))
    assert "shared" in nodes["enc"][0]["class"]
    assert "unknown reference `tgtt`" in _edge(edges, "missing__tgtt", "E")["label"]
    assert _edge(edges, "enc", "E")["class"] == "data"


def test_broken_spec_keeps_ema_momentum_shapes_and_latent_terms(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT.replace("in: [pred, {ref: target", "in: [prd, {ref: target"))  # no graph: drawn from the data
    nodes, edges, _ = parse_dot(dot_source(bad))
    assert _edge(edges, "enc", "target")["label"] == "EMA m=0.99\u21921"
    assert _edge(edges, "x", "enc")["label"] == "[B, 6]" and _edge(edges, "z", "z.l1")["label"] == "[B, 2]"
    assert "R(z) \u00b7 l1 0.1" in nodes["z.l1"][0]["label"]
    # the EMA target's own `with:` is wrong: its momentum, which validates, is still shown
    bad.write_text(AGENT.replace("with: {momentum: [0.99, 1.0]}", "with: {momentum: [0.99, 1.0], bogus: 1}"))
    nodes, edges, _ = parse_dot(dot_source(bad))
    assert _edge(edges, "enc", "target")["label"] == "EMA m=0.99\u21921"
    assert "no parameter" in nodes["target"][0]["label"] and "error" in nodes["target"][0]["class"]


def test_error_on_a_stop_grad_edge_keeps_the_bar_and_text(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT.replace("{ref: target, stop_grad: true}", "{ref: z, stop_grad: true}"))
    nodes, edges, _ = parse_dot(dot_source(bad))
    e = _edge(edges, "z", "E")
    assert e["class"] == "error stop_grad" and e["color"] == N.ERROR_COLOR
    assert e["arrowtail"] == "tee" and e["dir"] == "both"
    assert "stop-grad" in e["label"] and "compares two representations" in e["label"]
    assert _edge(edges, "enc", "target")["label"] == "EMA m=0.99\u21921"  # from the partial graph
    if shutil.which("dot"):
        root = ET.fromstring(svg_text(bad))
        g = next(g for g in root.iter(SVG + "g") if g.get("class") == "edge error stop_grad")
        assert g.find(SVG + "path").get("stroke") == N.ERROR_COLOR
        assert len(g.findall(SVG + "polygon")) == 2  # the arrow head and the bar at the tail
        assert "stop-grad" in [t.text for t in g.iter(SVG + "text")]


def test_shape_error_keeps_the_shapes_and_parameter_counts_it_found(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT.replace("hidden: [16], out: state}}\n  target", "hidden: [16], out: 5}}\n  target"))
    d = jg.render(bad, tmp_path / "bad.dot")
    assert not d.ok and "(invalid)" in d.source
    nodes, edges, _ = parse_dot(d.source)
    e = _edge(edges, "target", "E")
    assert e["class"] == "error stop_grad" and "[B, 5]" in e["label"] and "one shape" in e["label"]
    assert _edge(edges, "enc", "pred")["label"] == "[B, 5]" and _edge(edges, "pred", "E")["class"] == "data"
    mlp = 6 * 16 + 16 + 16 * 5 + 5  # x [6] -> 16 -> 5
    assert f"{N.human(mlp)} params" in nodes["enc"][0]["label"]
    assert f"{N.human(mlp)} params" in nodes["target"][0]["label"]  # the EMA copy has its source's
    assert "params" not in parse_dot(dot_source(bad, params=False))[0]["enc"][0]["label"]


def test_broken_spec_with_composites_draws_them_expanded(tmp_path):
    from jepa_graph.core.errors import Diagnostic
    from jepa_graph.diagrams.broken import from_spec
    bad = tmp_path / "h.yaml"
    bad.write_text(jg.format_spec(SPECS / "h_jepa.jepa", to="yaml").replace(
        "with: {obs: s1, state: s2, act: plan}", "with: {obs: obs, state: s2, act: plan}"))
    blocks = [str(ROOT / "blocks")]
    d = jg.render(bad, tmp_path / "h.dot", search_path=blocks)
    nodes, edges, clusters = parse_dot(d.source)
    assert {"cluster_level_0", "cluster_low", "cluster_level_1", "cluster_high"} <= set(clusters)
    e = _edge(edges, "low/context_encoder", "high/context_encoder")
    assert e["class"] == "error" and "`high/x` expects [B, 2]" in e["label"] and "[B, 32]" in e["label"]
    assert _edge(edges, "low/predictor", "low/E")["class"] == "data"
    assert _edge(edges, "low/context_encoder", "high/target_encoder")["_src_port"] == "u1"  # far's use
    assert "params" in nodes["low/predictor"][0]["label"]
    assert _edge(edges, "high/context_encoder", "high/target_encoder")["label"] == "EMA m=0.99\u21921"
    # an error written on the composite block itself marks its cluster (collapsed: its box)
    spec = jg.load(bad)
    at = Diagnostic("`high` is wrong here", spec.source.at(("blocks", "high"), key=True))
    from jepa_graph.diagrams.layout import Options, to_dot
    sc = from_spec(spec, d.errors + [at], blocks)
    _, _, clusters = parse_dot(to_dot(sc, Options()).source)
    assert "error" in clusters["cluster_high"]["class"] and "is wrong here" in clusters["cluster_high"]["label"]
    assert "error" not in clusters["cluster_low"]["class"]
    nodes, _, _ = parse_dot(to_dot(sc, Options(depth=0)).source)
    assert "error" in nodes["high"][0]["class"] and "error" not in nodes["low"][0]["class"]


@needs_dot
def test_cli_renders_errors_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT.replace("in: [pred, {ref: target", "in: [prd, {ref: target"))
    out = tmp_path / "bad.svg"
    assert cli_main(["render", str(bad), "-o", str(out)]) == 2
    assert "unknown reference `prd`" in capsys.readouterr().err
    edges = [g for g in ET.parse(out).getroot().iter(SVG + "g") if "error" in g.get("class", "").split()]
    assert edges and edges[0].find(SVG + "path").get("stroke") == N.ERROR_COLOR


def test_cli_options_reach_the_diagram(tmp_path, capsys):
    spec = tmp_path / "agent.yaml"
    spec.write_text(AGENT)
    out = tmp_path / "agent.dot"
    argv = ["render", str(spec), "-o", str(out), "--program", "step", "--rankdir", "TB", "--no-shapes",
            "--no-params", "--highlight", "critic"]
    assert cli_main(argv) == 0 and f"wrote {out}" in capsys.readouterr().out
    src = out.read_text()
    nodes, edges, _ = parse_dot(src)
    assert "rankdir=TB" in src and "params" not in src and "[B, 6]" not in src
    assert "used" in nodes["pred"][0]["class"] and "highlight" in nodes["critic"][0]["class"]
    assert cli_main(["render", str(spec), "-o", str(out), "--program", "plan"]) == 2
    assert "no program `plan`" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- SVG
def _svg_nodes(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.find(SVG + "title").text: g for g in root.iter(SVG + "g") if "node" in g.get("class", "").split()}


def _points(el: ET.Element) -> list[tuple[float, float]]:
    pts = [tuple(map(float, p.split(","))) for p in el.get("points").split()]
    return pts[:-1]  # the last point closes the polygon


@needs_dot
def test_svg_shapes_and_colours(agent):
    nodes = _svg_nodes(svg_text(agent))
    assert nodes["x"].find(SVG + "ellipse").get("fill") == N.GLYPHS["input"].fill
    assert nodes["z"].find(SVG + "ellipse").get("fill") == "#ffffff"
    assert len(nodes["a"].findall(SVG + "ellipse")) == 2  # double circle
    assert nodes["pred"].find(SVG + "path") is not None  # rounded corners are drawn as a path
    assert nodes["E"].find(SVG + "polygon").get("fill") == N.GLYPHS["energy"].fill
    assert len(nodes["critic"].findall(SVG + "polygon")) >= 2  # double outline
    assert "g" not in nodes and {t.text for t in nodes["enc"].iter(SVG + "text")} >= {"enc", "g"}
    # trapezoid: left to right, the right (representation) side is the short one
    pts = _points(nodes["enc"].find(SVG + "polygon"))
    xs = sorted({round(x, 1) for x, _ in pts})
    side = lambda x0: max(y for x, y in pts if round(x, 1) == x0) - min(y for x, y in pts if round(x, 1) == x0)  # noqa: E731
    assert len(pts) == 4 and side(xs[-1]) < side(xs[0])
    pts = _points(_svg_nodes(svg_text(agent, rankdir="TB"))["enc"].find(SVG + "polygon"))
    ys = sorted({round(y, 1) for _, y in pts})  # svg y grows downward: ys[-1] is the bottom
    width = lambda y0: max(x for x, y in pts if round(y, 1) == y0) - min(x for x, y in pts if round(y, 1) == y0)  # noqa: E731
    assert width(ys[-1]) < width(ys[0])


@needs_dot
def test_svg_edge_styles(agent):
    root = ET.fromstring(svg_text(agent))
    edges = {g.find(SVG + "title").text: g for g in root.iter(SVG + "g") if g.get("class", "").startswith("edge")}
    ema = next(g for t, g in edges.items() if t.startswith("enc") and t.endswith("target"))
    assert ema.find(SVG + "path").get("stroke-dasharray") and "EMA m=0.99" in ema.find(SVG + "text").text
    sg = next(g for g in edges.values() if "stop_grad" in g.get("class"))
    assert "stop-grad" in [t.text for t in sg.iter(SVG + "text")]
    assert len(sg.findall(SVG + "polygon")) == 2  # the arrow head and the bar at the tail


@needs_dot
@pytest.mark.parametrize("ext,magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF"), (".dot", b"digraph")])
def test_formats_from_extension(agent, tmp_path, ext, magic):
    d = render(agent, tmp_path / f"a{ext}")
    assert d.ok and d.path.read_bytes().startswith(magic)


def test_jg_render_is_the_function_after_the_package_is_imported(agent, tmp_path):
    import jepa_graph.diagrams  # binds `jepa_graph.render` to the package; calling it still renders
    d = jg.render(agent, tmp_path / "a.dot")
    assert d.ok and d.path.read_text() == dot_source(agent)


@needs_dot
def test_dot_failure_is_a_clear_error(monkeypatch, tmp_path, capsys):
    from jepa_graph.diagrams import DotError, pipe
    with pytest.raises(DotError, match="`dot` failed to lay out"):
        pipe("digraph { a -> }", "svg")
    spec = tmp_path / "agent.yaml"
    spec.write_text(AGENT)
    import subprocess

    def fails(cmd, *a, **k):  # what dot 2.43 does on some cluster layouts
        return subprocess.CompletedProcess(cmd, 1, b"", b"Error: trouble in init_rank\n")
    monkeypatch.setattr(subprocess, "run", fails)
    assert cli_main(["render", str(spec), "-o", str(tmp_path / "a.svg")]) == 1
    assert "`dot` failed to lay out the diagram (Error: trouble in init_rank)" in capsys.readouterr().err


def test_unknown_format_is_an_error(agent, tmp_path):
    with pytest.raises(jg.SpecError, match="unknown format"):
        render(agent, tmp_path / "a.jpg2")


@needs_dot
def test_notebook_display(agent):
    for obj in (agent, jg.compile(agent)):
        svg = obj._repr_svg_()
        assert svg is not None and "<svg" in svg and ">pred<" in svg


@needs_dot
def test_layout_past_its_time_is_a_clear_error(agent, tmp_path):
    from jepa_graph.diagrams import DotError
    with pytest.raises(DotError, match=r"did not finish laying out the diagram \(\d+ edges\) within 0.001 s") as info:
        render(agent, tmp_path / "a.svg", timeout=0.001)
    assert "--depth 0" in info.value.hint and ".dot" in info.value.hint
    assert not (tmp_path / "a.svg").exists()
    assert render(agent, tmp_path / "a.svg", timeout=None).path.read_text().startswith("<?xml")


def test_notebook_display_without_dot(agent, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert agent._repr_svg_() is None
    with pytest.raises(MissingDot, match="install graphviz"):
        svg_text(agent)


def _boxes(el: ET.Element) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of every polygon, path and ellipse in ``el``."""
    xs, ys = [], []
    for sub in list(el.iter(SVG + "polygon")) + list(el.iter(SVG + "path")):
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", sub.get("d") or sub.get("points"))]
        xs += nums[0::2]
        ys += nums[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _svg_clusters(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    return {g.find(SVG + "title").text: _boxes(g) for g in root.iter(SVG + "g") if "cluster" in g.get("class", "").split()}


def _text_box(t: ET.Element) -> tuple[float, float, float, float]:
    """Approximate box of one SVG text (Helvetica: about 0.55 em a character)."""
    x, y, size = float(t.get("x")), float(t.get("y")), float(t.get("font-size"))
    w = 0.55 * size * len(t.text or "")
    x0 = {"middle": x - w / 2, "start": x, "end": x - w}[t.get("text-anchor", "start")]
    return x0, y - 0.75 * size, x0 + w, y + 0.2 * size


@needs_dot
# TB expanded is left out: dot does not keep a border-crossing edge's label off that border, and
# two labels of edges running down a cluster's side still touch it (layout._label_room)
@pytest.mark.parametrize("rankdir,depth", [("LR", None), ("LR", 0), ("TB", 0)])
def test_edge_labels_stay_off_cluster_borders(rankdir, depth):
    root = ET.fromstring(svg_text(SPECS / "h_jepa.jepa", rankdir=rankdir, depth=depth))
    clusters = _svg_clusters(root)
    labels = [(g.find(SVG + "title").text, t) for g in root.iter(SVG + "g") if g.get("class", "").startswith("edge")
              for t in g.iter(SVG + "text")]
    assert clusters and labels
    on_border = []
    for c, (cx0, cy0, cx1, cy1) in clusters.items():
        for e, t in labels:
            x0, y0, x1, y1 = _text_box(t)
            meets = x0 < cx1 and x1 > cx0 and y0 < cy1 and y1 > cy0
            inside = x0 >= cx0 and x1 <= cx1 and y0 >= cy0 and y1 <= cy1
            if meets and not inside:
                on_border.append((c, e, t.text))
    assert not on_border


def _curve(d: str, steps: int = 20) -> list[tuple[float, float]]:
    """Points along an SVG path of cubic Bézier segments (``M x,y C x,y x,y x,y ...``, as ``dot`` writes edges)."""
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    pts = list(zip(nums[0::2], nums[1::2]))
    out = []
    for i in range(0, len(pts) - 3, 3):
        p0, p1, p2, p3 = pts[i:i + 4]
        for k in range(steps + 1):
            t = k / steps
            out.append(tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t * t * c + t ** 3 * e
                             for a, b, c, e in zip(p0, p1, p2, p3)))
    return out


@needs_dot
# TB expanded is left out, as above: the edges out of `low` into level 1 run over `low`'s bottom
@pytest.mark.parametrize("spec,rankdir,depth", [("h_jepa", "LR", None), ("h_jepa", "LR", 0), ("h_jepa", "TB", 0),
                                                ("h_jepa", "BT", 0), ("vjepa", "LR", None), ("ijepa", "LR", None)])
def test_edges_stay_off_cluster_labels(spec, rankdir, depth):
    """Level labels sit at the bottom (edges into a level come over its top), composites' at the
    top left to right: no edge runs through a cluster's label (h_jepa --depth 0 had `x_next`'s)."""
    root = ET.fromstring(svg_text(spec_path(spec), rankdir=rankdir, depth=depth))
    labels = [(g.find(SVG + "title").text, _text_box(t)) for g in root.iter(SVG + "g")
              if "cluster" in g.get("class", "").split() for t in g.iter(SVG + "text")]
    assert labels
    crossed = []
    for g in root.iter(SVG + "g"):
        if g.get("class", "").startswith("edge"):
            pts = [q for path in g.iter(SVG + "path") for q in _curve(path.get("d"))]
            for c, (x0, y0, x1, y1) in labels:
                if any(x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1 for x, y in pts):
                    crossed.append((c, g.find(SVG + "title").text))
    assert not crossed


def test_cluster_label_sides():
    _, _, clusters = parse_dot(dot_source(SPECS / "h_jepa.jepa"))
    assert clusters["cluster_level_0"]["labelloc"] == "b" and clusters["cluster_low"]["labelloc"] == "t"
    _, _, clusters = parse_dot(dot_source(SPECS / "h_jepa.jepa", rankdir="TB"))
    assert clusters["cluster_level_0"]["labelloc"] == "b" and clusters["cluster_low"]["labelloc"] == "b"


@needs_dot
@pytest.mark.parametrize("spec", ["vjepa", "ijepa"])
def test_narrow_cluster_label_clears_its_rounded_corners(spec):
    """Top to bottom, `target : masked_target` sets its cluster's width: padded, it keeps off the
    corners (the rounded border's radius is 12 points) instead of running into them."""
    root = ET.fromstring(svg_text(spec_path(spec), rankdir="TB"))
    g = next(g for g in root.iter(SVG + "g") if g.find(SVG + "title").text == "cluster_target")
    cx0, _, cx1, _ = _boxes(g)
    t = g.find(SVG + "text")
    w = N.text_width(t.text.strip(), float(t.get("font-size")))
    assert t.get("text-anchor") == "middle"
    left, right = float(t.get("x")) - w / 2 - cx0, cx1 - float(t.get("x")) - w / 2
    assert min(left, right) >= 20, (left, right)


@needs_dot
@pytest.mark.parametrize("spec,longest", [("seed_world_model", "x_next"), ("lecun_agent", "memory"),
                                          ("h_jepa", "x_next"), ("vjepa", "ctx_idx")])
def test_variable_circles_are_one_size(spec, longest):
    """`x` and `x_next` are the same kind of thing: every input, latent and action circle of a
    diagram has one diameter, the one the longest name needs (the double circle's inner ring)."""
    nodes, _, _ = parse_dot(dot_source(spec_path(spec)))
    var = {n: a for n, (a, _) in nodes.items() if a["class"].split()[0] == "var"}
    assert len(var) >= 3 and {a["fixedsize"] for a in var.values()} == {"true"}
    assert {a["width"] for a in var.values()} == {f"{N.var_width(list(var)):g}"}
    assert float(next(iter(var.values()))["width"]) > N.VAR_MIN_WIDTH
    svg = _svg_nodes(svg_text(spec_path(spec)))
    radii = {n: min(float(e.get("rx")) for e in svg[n].iter(SVG + "ellipse")) for n in var}
    assert len(set(radii.values())) == 1, radii
    r = radii[longest]
    text = next(t for t in svg[longest].iter(SVG + "text"))
    assert N.text_width(longest, float(text.get("font-size"))) + 8 < 2 * r  # the name fits, with air
    assert max(len(n) for n in var) == len(longest)


@needs_dot
@pytest.mark.parametrize("rankdir", ["TB", "BT"])
def test_levels_stack_in_rank_order_top_to_bottom(rankdir):
    src = dot_source(SPECS / "h_jepa.jepa", rankdir=rankdir)
    assert 'class=level_order' in src and "style=invis" in src
    assert "level_order" not in dot_source(SPECS / "h_jepa.jepa")  # left to right they stack already
    root = ET.fromstring(pipe(src, "svg"))
    box = _svg_clusters(root)
    low, high = box["cluster_level_0"], box["cluster_level_1"]
    if rankdir == "TB":  # level 1 reads level 0's states: below it, not beside it
        assert high[1] >= low[3]
    else:  # the paper's upward flow: level 1 above
        assert high[3] <= low[1]


@needs_dot
@pytest.mark.parametrize("spec,name", [("lecun_agent", "anti_collapse"), ("vicreg", "vicreg"), ("two_rooms", "z.l1")])
def test_regularizer_text_clears_the_cut_corners(spec, name):
    g = _svg_nodes(svg_text(spec_path(spec)))[name]
    left = min(float(p.split(",")[0]) for p in g.find(SVG + "polygon").get("points").split())
    cut = max(max(xs) - min(xs) for xs in ([float(p.split(",")[0]) for p in pl.get("points").split()]
                                            for pl in g.iter(SVG + "polyline")))
    assert cut > 0  # the diagonals are drawn
    texts = [t for t in g.iter(SVG + "text") if (t.text or "").strip()]
    assert all(t.get("text-anchor") == "start" for t in texts)
    assert min(float(t.get("x")) for t in texts) >= left + cut  # every line starts past the corner cut


@needs_dot
def test_bold_title_descenders_clear_the_second_line():
    g = _svg_nodes(svg_text(SPECS / "fork.jepa"))["energy_term"]
    title, detail = [t for t in g.iter(SVG + "text") if (t.text or "").strip()]
    assert title.get("font-weight") == "bold" and title.text == "energy_term"
    # baseline to baseline: the 9pt line's cap height plus the 11pt underscore's depth, and air
    assert float(detail.get("y")) - float(title.get("y")) >= 11.5


# ------------------------------------------------------------------------------- large spec
def test_500_blocks_collapse_to_a_readable_diagram(tmp_path):
    (tmp_path / "unit.yaml").write_text(UNIT)
    lines = ["name: big", "dims: {d: 8}", "inputs:", "  x: {shape: [d]}", "  y: {shape: [d]}", "blocks:"]
    for i in range(100):  # 10 chains of 10 composites of 5 blocks: 500 blocks
        src = "x" if i % 10 == 0 else f"u{i - 1}"
        lines.append(f"  u{i}: {{kind: composite, type: unit, in: [{src}], with: {{d: d}}}}")
    lines.append("  tgt: {kind: encoder, type: mlp, in: [y], with: {out: d}}")
    lines += [f"  E{k}: {{kind: energy, type: l2, in: [u{10 * k + 9}, tgt]}}" for k in range(10)]
    lines.append("objective: {" + ", ".join(f"E{k}: 1.0" for k in range(10)) + "}")
    (tmp_path / "big.yaml").write_text("\n".join(lines) + "\n")
    g = jg.check(tmp_path / "big.yaml")
    assert sum(n.op == "call" for n in g.nodes.values()) == 511
    nodes, edges, clusters = parse_dot(dot_source(tmp_path / "big.yaml"))
    assert len(clusters) == 100 and len(nodes) == 2 + 511
    nodes, edges, clusters = parse_dot(dot_source(tmp_path / "big.yaml", depth=0, shapes=False))
    assert not clusters and len(nodes) == 2 + 100 + 11 and len(edges) == 10 + 90 + 1 + 20
    if shutil.which("dot"):
        assert len(_svg_nodes(svg_text(tmp_path / "big.yaml", depth=0, shapes=False))) == 113


# ---------------------------------------------------------------------------------- gallery
def test_gallery_is_up_to_date():
    stale = check_gallery(SPECS, ROOT / "docs" / "gallery")
    assert not stale, f"stale gallery pictures {stale}: run `python -m jepa_graph.diagrams.gallery`"


def test_staleness_ignores_dot_serializer_quirks(agent):
    src = dot_source(agent)
    quirky = src.replace("rankdir=LR ranksep=0.45", 'ranksep="0.45" rankdir="LR"').replace("\n", ";\n")
    quirky = quirky.replace("\tx -> enc", '\t"x" -> "enc"')
    assert quirky != src and canonical(quirky) == canonical(src)
    assert canonical(src.replace("[B, 8]", "[B, 9]", 1)) != canonical(src)
    assert canonical(src.replace("style=dashed", "style=solid", 1)) != canonical(src)


@needs_dot
def test_gallery_detects_stale_pictures(tmp_path, agent):
    specs, gallery = tmp_path / "specs", tmp_path / "gallery"
    specs.mkdir()
    (specs / "agent.yaml").write_text(AGENT)
    write_gallery(specs, gallery)
    assert check_gallery(specs, gallery) == []
    svg = (gallery / "agent.svg").read_text()
    assert ET.fromstring(svg.encode()) is not None and ">critic<" in svg
    (specs / "agent.yaml").write_text(AGENT.replace("hidden: [16], out: state", "hidden: [32], out: state"))
    assert {"agent.dot", "agent.svg"} <= set(check_gallery(specs, gallery))
    write_gallery(specs, gallery)
    (gallery / "agent.svg").write_text(svg)  # an svg drawn from other DOT is stale too
    assert check_gallery(specs, gallery) == ["agent.svg"]
    assert cli_main(["render", "--gallery", str(gallery), str(specs), "--check"]) == 1
    assert cli_main(["render", "--gallery", str(gallery), str(specs)]) == 0
    assert cli_main(["render", "--gallery", str(gallery), str(specs), "--check"]) == 0
    (specs / "agent.yaml").unlink()
    assert "agent.dot" in check_gallery(specs, gallery)


@needs_dot
def test_gallery_reports_and_removes_stray_pictures(tmp_path, capsys):
    """A picture no spec draws (a copied .svg, a renamed spec's .dot) is stale; regenerating removes it."""
    specs, gallery = tmp_path / "specs", tmp_path / "gallery"
    specs.mkdir()
    (specs / "agent.yaml").write_text(AGENT)
    write_gallery(specs, gallery)
    (gallery / "extra.svg").write_text((gallery / "agent.svg").read_text())
    (gallery / "old.dot").write_text((gallery / "agent.dot").read_text())
    assert check_gallery(specs, gallery) == ["old.dot", "extra.svg"]
    assert cli_main(["render", "--gallery", str(gallery), str(specs), "--check"]) == 1
    assert "stale: extra.svg" in capsys.readouterr().err
    assert cli_main(["render", "--gallery", str(gallery), str(specs)]) == 0
    assert not (gallery / "extra.svg").exists() and not (gallery / "old.dot").exists()
    assert check_gallery(specs, gallery) == []
