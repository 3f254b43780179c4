"""Every registered block: example, build, forward, output shape == shape rule, gradients; and
the shape rules reject wrong inputs (a table of bad inputs per block family)."""
from __future__ import annotations

import math

import pytest
import torch

import jepa_graph as jg
from conftest import ROOT, SPECS
from jepa_graph.primitives.layers.transformer import sincos_table
from jepa_graph.core.tensors import ShapeMismatch, TType

BLOCKS = jg.list_blocks()
B = 3


def _params(cls, params: dict):
    return cls.Params.model_validate(params, context={"dims": {}})


def _inputs(block, p, ins: list[TType]) -> list[torch.Tensor]:
    """Random inputs of the given types; long inputs are distinct valid indices per sample."""
    xs = []
    for i, t in enumerate(ins):
        if t.dtype == "long":
            hi = block.index_bound(p, ins, i)
            assert hi is not None, f"{block.kind}.{block.name} takes indices on input {i} but gives no index_bound"
            xs.append(torch.stack([torch.randperm(hi)[: t.shape[0]] for _ in range(B)]))
        else:
            xs.append(torch.randn(B, *t.shape, requires_grad=True))
    return xs


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: f"{c.kind}.{c.name}")
def test_block_smoke(cls):
    ex = cls.example()
    assert ex is not None, f"{cls.kind}.{cls.name} has no example() for the smoke test"
    params, ins = ex
    block = jg.get_block(cls.kind, cls.name)
    p = _params(cls, params)
    want = block.infer(p, ins)
    module = block.build(p, ins)
    out = module(*_inputs(block, p, ins))
    if want.batched:
        assert tuple(out.shape) == (B, *want.shape)
    else:
        assert out.dim() == 0
    assert torch.isfinite(out).all()
    trainable = [(n, q) for n, q in module.named_parameters() if q.requires_grad]
    if trainable:
        out.float().sum().backward()
        for n, q in trainable:
            assert q.grad is not None, f"no gradient reaches `{n}`"
        assert any(q.grad.abs().sum() > 0 for _, q in trainable)


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: f"{c.kind}.{c.name}")
def test_block_documented(cls):
    assert cls.doc(), f"{cls.kind}.{cls.name} needs a one-line docstring (shown by `info` and diagrams)"


def f(*shape):
    return TType(tuple(shape))


def idx(k):
    return TType((k,), "long")


# (kind, name, params, inputs, part of the message): one or more per family
BAD = [
    ("encoder", "mlp", {"out": 4}, [idx(3)], "float"),
    ("predictor", "ac_mlp", {"out": 4}, [f(4), f(2, 2)], "vector"),
    ("energy", "l2", {}, [f(4), f(5)], "one shape"),
    ("cost", "goal_distance", {}, [f(4), f(3)], "goal"),
    ("encoder", "cnn", {"channels": [4]}, [f(12)], r"image \[B, C, H, W\]"),
    ("encoder", "cnn", {"channels": [4, 4, 4], "kernel": 5, "stride": 2, "padding": 0}, [f(1, 8, 8)],
     "shrinks the image to nothing at conv layer 1"),
    ("encoder", "cnn", {"channels": [4, 4], "kernel": [3]}, [f(1, 8, 8)], "`kernel` lists 1 values"),
    ("encoder", "vit", {"patch": 5, "dim": 8, "heads": 2}, [f(3, 16, 16)], r"height \(16\) divisible by `patch`"),
    ("encoder", "vit", {"patch": 4, "dim": 8, "heads": 2}, [f(3, 16, 16), f(3)], "long"),
    ("encoder", "vit", {"patch": 4, "dim": 8, "heads": 2}, [f(3, 8, 8), idx(5)], "at most the 4 tokens"),
    ("encoder", "vit", {"patch": 4, "dim": 12, "heads": 5}, [f(3, 8, 8)], "divisible by `heads`"),
    ("encoder", "vit", {"patch": 4, "dim": 6, "heads": 2}, [f(3, 8, 8)], "multiple of 4"),
    ("encoder", "vit", {"patch": 4, "tubelet": 3, "dim": 16, "heads": 2}, [f(3, 4, 8, 8)], "frames"),
    ("encoder", "vit", {"patch": 4, "tubelet": 2, "dim": 16, "heads": 2}, [f(3, 8, 8)], "not a clip"),
    ("predictor", "transformer", {"grid": [4], "width": 8, "heads": 2}, [f(3, 8), idx(2), idx(2)],
     "one context index per context token"),
    ("predictor", "transformer", {"grid": [2, 2], "width": 8, "heads": 2}, [f(3, 8), idx(3), idx(5)],
     "more tokens than the grid"),
    ("predictor", "transformer", {"grid": [2, 2], "width": 8, "heads": 2}, [f(8), idx(3), idx(2)],
     r"context tokens \[B, K, D\]"),
    ("regularizer", "vicreg", {}, [f(4), f(5)], "two inputs of one size"),
    ("regularizer", "vicreg", {}, [idx(4)], "float"),
    ("regularizer", "barlow_twins", {}, [f(4), TType((), batched=False)], "per-sample"),
    ("regularizer", "l1", {}, [TType(())], "per-sample"),
    ("op", "concat", {}, [f(3, 4), f(2, 4)], r"all but the last dim"),
    ("op", "pool", {}, [f(4)], r"tokens \[B, N, D\]"),
    ("op", "reshape", {"shape": [3, 3]}, [f(8)], "9 elements per sample"),
    ("op", "apply_mask", {}, [f(4, 2), idx(5)], "at most the 4 tokens"),
    ("op", "apply_mask", {}, [f(4, 2), f(2)], "long"),
    ("op", "temporal_pool", {"stride": 3}, [f(4, 2)], "has 4 steps"),
    ("op", "layer_norm", {}, [TType(())], "not scalars"),
    ("op", "slice_steps", {"start": 5}, [f(4, 2)], "keeps no step of the 4"),
    ("energy", "discounted", {}, [f(3, 4), f(2, 4)], "two sequences of one shape"),
    ("regularizer", "temporal_smoothness", {}, [f(1, 4)], "at least 2 steps"),
    ("regularizer", "inverse_dynamics", {}, [f(3, 4), f(3, 2)], "one state more than the 3 actions"),
    ("regularizer", "path_metric", {}, [f(3, 4), f(3, 2)], "one state more than the 3 actions"),
    ("regularizer", "path_metric", {}, [f(4), f(3, 2)], r"states \[B, T\+1, ...\]"),
    ("op", "rbf", {"dims": [0, 4]}, [f(4)], "distinct feature indices"),
    ("op", "rbf", {}, [f(2, 2)], "feature vector"),
    ("op", "rbf", {"lo": 1.0, "hi": 1.0}, [f(2)], "must be above"),
    ("op", "rbf", {"n": 300}, [f(2)], "at most 65536"),
    # a [B] scalar per sample has no feature axis to flatten: refused at compile time, not at run time
    ("encoder", "mlp", {"out": 4}, [f()], "needs a vector per sample on input 0"),
    ("predictor", "mlp", {"out": 4}, [f(4), f()], "needs a vector per sample on input 1"),
    ("predictor", "mlp", {"out": 4}, [f(), f(2)], "needs a vector per sample on input 0"),
    ("critic", "mlp", {}, [f()], "needs a vector per sample on input 0"),
    ("actor", "mlp", {"out": 2}, [f()], "needs a vector per sample on input 0"),
    ("cost", "l2", {}, [f()], "needs a vector per sample on input 0"),
    ("cost", "box_penalty", {}, [f()], "needs a vector per sample on input 0"),
    ("cost", "goal_distance", {}, [f(), f()], "needs a vector per sample on input 0"),
]


@pytest.mark.parametrize("kind,name,params,ins,match", BAD, ids=lambda v: v if isinstance(v, str) else None)
def test_shape_rule_rejects(kind, name, params, ins, match):
    block = jg.get_block(kind, name)
    with pytest.raises(ShapeMismatch, match=match):
        block.infer(_params(type(block), params), ins)


def _with_scalars(ins: list[TType]) -> list[list[TType]]:
    """The example's inputs with a [B] scalar on one float input, for each, then on all of them."""
    floats = [i for i, t in enumerate(ins) if t.dtype == "float"]
    one = [[TType(()) if j == i else t for j, t in enumerate(ins)] for i in floats]
    return one + [[TType(()) if t.dtype == "float" else t for t in ins]] if floats else []


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: f"{c.kind}.{c.name}")
def test_scalar_inputs_are_refused_or_run(cls):
    """A scalar per sample (`shape: []`) either fails the shape rule (a located compile error) or
    really runs, giving the shape the rule promised; never a run-time failure after validation."""
    params, ins = cls.example()
    block, p = jg.get_block(cls.kind, cls.name), _params(cls, params)
    for bad in _with_scalars(ins):
        try:
            want = block.infer(p, bad)
        except ShapeMismatch:
            continue
        out = block.build(p, bad)(*_inputs(block, p, bad))
        assert tuple(out.shape) == ((B, *want.shape) if want.batched else ()), [str(t) for t in bad]


def test_every_family_has_a_negative_case():
    families = {c.__module__.rsplit(".", 1)[-1] for c in BLOCKS if c.__module__.startswith("jepa_graph.primitives")}
    covered = {type(jg.get_block(k, n)).__module__.rsplit(".", 1)[-1] for k, n, *_ in BAD}
    assert families <= covered, families - covered


# ------------------------------------------------------------------ exact shape arithmetic
@pytest.mark.parametrize("h,w,k,s,pad", [(32, 32, 3, 2, 1), (17, 9, 5, 1, 0), (28, 28, 4, 3, 2), (7, 31, 3, 2, 0)])
def test_cnn_shape_rule_matches_torch(h, w, k, s, pad):
    block = jg.get_block("encoder", "cnn")
    for out in (None, 5):
        params = {"channels": [4, 6], "kernel": k, "stride": s, "padding": pad}
        if out:
            params["out"] = out
        p = _params(type(block), params)
        want = block.infer(p, [f(2, h, w)])
        got = block.build(p, [f(2, h, w)])(torch.randn(2, 2, h, w))
        assert tuple(got.shape[1:]) == want.shape


def test_vit_keep_all_indices_equals_full_encoding():
    block = jg.get_block("encoder", "vit")
    p = _params(type(block), {"patch": 4, "dim": 16, "depth": 2, "heads": 4})
    vit = block.build(p, [f(3, 8, 8)]).eval()
    x = torch.randn(2, 3, 8, 8)
    keep = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    full = vit(x)  # (2, 4, 16)
    torch.testing.assert_close(vit(x, keep)[0], full[0])
    torch.testing.assert_close(vit(x, keep)[1], full[1].flip(0))  # attention is permutation-equivariant
    part = vit(x, keep[:, :2])
    assert part.shape == (2, 2, 16) and not torch.allclose(part[0], full[0, :2])  # masked tokens are unseen


def test_vit_video_tubelets_and_sincos_table():
    block = jg.get_block("encoder", "vit")
    p = _params(type(block), {"patch": 4, "tubelet": 2, "dim": 16, "depth": 1, "heads": 2})
    assert block.infer(p, [f(3, 4, 8, 12)]).shape == (2 * 2 * 3, 16)
    tab = sincos_table(8, (2, 3))  # (6, 8): rows h-major; first half encodes h, second half w
    assert tab.shape == (6, 8)
    torch.testing.assert_close(tab[0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))
    torch.testing.assert_close(tab[4, :4], tab[3, :4])  # same row h=1
    torch.testing.assert_close(tab[4, 4:], tab[1, 4:])  # same column w=1


def test_predictor_follows_target_positions():
    block = jg.get_block("predictor", "transformer")
    p = _params(type(block), {"grid": [3, 3], "width": 8, "depth": 1, "heads": 2})
    ins = [f(4, 6), idx(4), idx(3)]
    pred = block.build(p, ins).eval()
    ctx, ci = torch.randn(2, 4, 6), torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    ti = torch.tensor([[8, 5, 4], [0, 1, 2]])
    out = pred(ctx, ci, ti)
    swapped = pred(ctx, ci, ti[:, [2, 0, 1]])
    torch.testing.assert_close(swapped, out[:, [2, 0, 1]])  # each prediction belongs to its position


def test_example_inputs_give_valid_indices_through_composites():
    model = jg.compile(jg.load("specs/ijepa.jepa"))
    for _ in range(5):
        ex = model.example_inputs(4)
        assert int(ex["ctx_idx"].max()) < 16 and int(ex["tgt_idx"].max()) < 16


def test_shape_error_in_a_spec_is_located():
    text = """\
name: bad_vit
inputs:
  image: {shape: [3, 30, 30]}
blocks:
  enc: {kind: encoder, type: vit, in: [image], with: {patch: 8, dim: 16, depth: 1, heads: 2}}
  reg: {kind: regularizer, type: variance_hinge, in: [enc]}
objective: {reg: 1.0}
"""
    with pytest.raises(jg.SpecError) as e:
        jg.check(jg.loads(text, "bad_vit.yaml"))
    msg = str(e.value)
    assert "bad_vit.yaml:5:" in msg
    assert "`enc` (encoder.vit) needs the height (30) divisible by `patch` (8)" in msg
    assert "choose a `patch` that divides 30" in msg


# --------------------------------------------------------------- standard library composites
STDLIB = sorted(p for p in (ROOT / "blocks").iterdir() if p.suffix in (".yaml", ".jepa"))


@pytest.mark.parametrize("path", STDLIB, ids=lambda p: p.stem)
def test_stdlib_composite_compiles_and_runs(path):
    comp = jg.load(path)
    wrapper = {
        "name": f"use_{comp.name}",
        "dims": dict(comp.dims),
        "inputs": {k: v.model_dump() for k, v in comp.inputs.items()},
        "blocks": {"c": {"kind": "composite", "type": path.stem, "in": list(comp.inputs)}},
        "outputs": {o: f"c.{o}" for o in comp.outputs},
    }
    model = jg.compile(jg.from_dict(wrapper))
    assert not model.graph.warnings, [w.format() for w in model.graph.warnings]
    out = model(**model.example_inputs(4))
    for o, node in model.graph.outputs.items():
        assert torch.isfinite(out[node]).all(), o


def test_ijepa_spec_equals_hand_written_wiring():
    import torch.nn.functional as F
    model = jg.compile(jg.load(SPECS / "ijepa.jepa"), seed=0)
    ex = model.example_inputs(2)
    blocks = model.blocks
    ctx = blocks["context_encoder"](ex["image"], ex["ctx_idx"])  # (2, 10, 64)
    tokens = F.layer_norm(blocks["target_encoder"](ex["image"]), (64,), eps=1e-6)  # (2, 16, 64)
    target = torch.stack([tokens[b, ex["tgt_idx"][b]] for b in range(2)])  # (2, 4, 64)
    pred = blocks["predictor"](ctx, ex["ctx_idx"], ex["tgt_idx"])
    want = F.smooth_l1_loss(pred, target, reduction="none").flatten(1).mean(1)
    out = model(**ex)
    torch.testing.assert_close(out["energy"], want)
    out["loss"].backward()
    assert all(p.grad is None for p in blocks["target_encoder"].parameters())  # EMA target: no gradient
    assert blocks["context_encoder"].patch_embed.weight.grad.abs().sum() > 0


def _random_ttypes(g: torch.Generator, n: int) -> list[TType]:
    out = []
    for _ in range(n):
        rank = int(torch.randint(0, 5, (1,), generator=g))
        shape = tuple(int(s) for s in torch.randint(1, 20, (rank,), generator=g))
        dtype = ["float", "float", "long"][int(torch.randint(0, 3, (1,), generator=g))]
        out.append(TType(shape, dtype, batched=bool(torch.rand(1, generator=g) > 0.1)))
    return out


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: f"{c.kind}.{c.name}")
def test_shape_rule_answers_any_input_with_a_shape_mismatch(cls):
    """Bad input types give a ShapeMismatch (a located error) that names one of the inputs given
    (or the block), never a Python exception; types the rule accepts (small enough to run here)
    really run, giving the shape it promised."""
    params, ins = cls.example()
    block, p = jg.get_block(cls.kind, cls.name), _params(cls, params)
    g = torch.Generator().manual_seed(1)
    lo, hi = cls.arity
    for _ in range(200):
        n = int(torch.randint(lo, (hi if hi is not None else lo + 2) + 1, (1,), generator=g))
        types = _random_ttypes(g, n)
        try:
            want = block.infer(p, types)
        except ShapeMismatch as e:
            assert e.message and (e.index is None or 0 <= e.index < n), (e.message, e.index, [str(t) for t in types])
            continue
        assert isinstance(want, TType), want
        if sum(math.prod(t.shape) for t in types) > 512:  # a covariance of a [19, 19, 19, 19] input is 130k x 130k
            continue
        sizes = [(B, *t.shape) if t.batched else t.shape for t in types]
        xs = [torch.randint(0, block.index_bound(p, types, i) or 10, size) if t.dtype == "long" else torch.randn(size)
              for i, (t, size) in enumerate(zip(types, sizes))]  # any valid index, not only distinct ones
        out = block.build(p, types)(*xs)
        assert tuple(out.shape) == ((B, *want.shape) if want.batched else want.shape), [str(t) for t in types]


def test_rbf_is_a_grid_of_gaussian_bumps_with_the_other_features_kept():
    block = jg.get_block("op", "rbf")
    p = type(block).Params.model_validate({"dims": [0, 2], "lo": 0.0, "hi": 2.0, "n": 3, "sigma": 0.5},
                                          context={"dims": {}})
    out_t = block.infer(p, [f(4)])
    assert out_t.shape == (9 + 2,)  # 3 x 3 centres on features 0 and 2, then features 1 and 3
    x = torch.tensor([[0.0, 7.0, 2.0, -1.0], [1.0, 8.0, 1.5, 5.0]])
    got = block.build(p, [f(4)])(x)
    centres = torch.tensor([[i, j] for i in (0.0, 1.0, 2.0) for j in (0.0, 1.0, 2.0)])
    want = torch.exp(-((x[:, None, [0, 2]] - centres) ** 2).sum(-1) / (2 * 0.5 ** 2))
    torch.testing.assert_close(got, torch.cat([want, x[:, [1, 3]]], 1))
    assert got[0, 2] == 1.0  # (0, 2) sits on the centre (0, 2)
    assert not list(block.build(p, [f(4)]).parameters())  # fixed: nothing to train
