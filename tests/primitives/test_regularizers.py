"""Regularisers against independent computations written out with loops (the published
definitions of VICReg and Barlow Twins), in float64 so differences are real."""
from __future__ import annotations

import math

import pytest
import torch

import jepa_graph as jg
from jepa_graph.core.tensors import TType


def build(name: str, params: dict, *ins: TType):
    block = jg.get_block("regularizer", name)
    p = block.Params.model_validate(params, context={"dims": {}})
    assert block.infer(p, list(ins)) == TType((), batched=False)
    return block.build(p, list(ins)).double()


# ----------------------------------------------------------------- reference computations
def ref_std(x, j):
    n = len(x)
    mean = sum(x[b][j] for b in range(n)) / n
    var = sum((x[b][j] - mean) ** 2 for b in range(n)) / (n - 1)  # unbiased
    return math.sqrt(var + 1e-4)


def ref_variance(x, gamma=1.0):
    d = len(x[0])
    return sum(max(0.0, gamma - ref_std(x, j)) for j in range(d)) / d


def ref_covariance(x):
    n, d = len(x), len(x[0])
    mean = [sum(x[b][j] for b in range(n)) / n for j in range(d)]
    total = 0.0
    for i in range(d):
        for j in range(d):
            if i != j:
                c = sum((x[b][i] - mean[i]) * (x[b][j] - mean[j]) for b in range(n)) / (n - 1)
                total += c * c
    return total / d


def ref_vicreg(a, b, sim=25.0, std=25.0, cov=1.0):
    n, d = len(a), len(a[0])
    inv = sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    var = (ref_variance(a) + ref_variance(b)) / 2
    return sim * inv + std * var + cov * (ref_covariance(a) + ref_covariance(b))


def ref_barlow(a, b, lambd=0.0051, eps=1e-5):
    n, d = len(a), len(a[0])

    def norm(x):
        cols = []
        for j in range(d):
            m = sum(x[i][j] for i in range(n)) / n
            v = sum((x[i][j] - m) ** 2 for i in range(n)) / n  # BatchNorm: biased variance
            cols.append([(x[i][j] - m) / math.sqrt(v + eps) for i in range(n)])
        return cols  # cols[j][i]

    za, zb = norm(a), norm(b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(za[i][k] * zb[j][k] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c * c
    return loss


def data(n=7, d=5, scale=1.0):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    b = a + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return a, b


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("scale", [0.2, 3.0])  # below and above the variance hinge
def test_vicreg_two_branches_matches_definition(scale):
    a, b = data(scale=scale)
    got = build("vicreg", {}, TType((5,)), TType((5,)))(a, b)
    assert got.item() == pytest.approx(ref_vicreg(a.tolist(), b.tolist()), rel=1e-9)


def test_vicreg_one_branch_is_variance_plus_covariance():
    a, _ = data(scale=0.5)
    got = build("vicreg", {"std": 2.0, "cov": 0.5}, TType((5,)))(a)
    want = 2.0 * ref_variance(a.tolist()) + 0.5 * ref_covariance(a.tolist())
    assert got.item() == pytest.approx(want, rel=1e-9)


def test_vicreg_expander_is_shared_and_applied_first():
    a, b = data()
    reg = build("vicreg", {"expander": [6, 4]}, TType((5,)), TType((5,)))
    ea, eb = reg.expander(a), reg.expander(b)  # (7, 4) each, one set of weights
    assert ea.shape == (7, 4)
    assert reg(a, b).item() == pytest.approx(ref_vicreg(ea.tolist(), eb.tolist()), rel=1e-9)


def test_vicreg_flattens_token_inputs():
    a, b = data(n=6, d=6)
    reg = build("vicreg", {}, TType((2, 3)), TType((2, 3)))
    got = reg(a.view(6, 2, 3), b.view(6, 2, 3))
    assert got.item() == pytest.approx(ref_vicreg(a.tolist(), b.tolist()), rel=1e-9)


def test_barlow_twins_matches_definition():
    a, b = data()
    got = build("barlow_twins", {}, TType((5,)), TType((5,)))(a, b)
    assert got.item() == pytest.approx(ref_barlow(a.tolist(), b.tolist()), rel=1e-9)
    got = build("barlow_twins", {"lambd": 0.5}, TType((5,)), TType((5,)))(a, b)
    assert got.item() == pytest.approx(ref_barlow(a.tolist(), b.tolist(), lambd=0.5), rel=1e-9)


def test_barlow_twins_is_small_for_identical_decorrelated_views():
    # orthogonal columns of one batch: the cross-correlation of a view with itself is the identity
    x = torch.randn(16, 4, dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(0))  # (16, 4): centred, orthogonal columns
    loss = build("barlow_twins", {}, TType((4,)), TType((4,)))(q, q)
    assert loss.item() < 1e-6
    shuffled = build("barlow_twins", {}, TType((4,)), TType((4,)))(q, q[torch.randperm(16)])
    assert shuffled.item() > 0.5  # views that disagree pay on the diagonal


@pytest.mark.parametrize("scale", [0.2, 3.0])
def test_variance_hinge_and_covariance_match_definition(scale):
    a, _ = data(scale=scale)
    var = build("variance_hinge", {}, TType((5,)))(a)
    cov = build("covariance", {}, TType((5,)))(a)
    assert var.item() == pytest.approx(ref_variance(a.tolist()), rel=1e-9, abs=1e-12)
    assert cov.item() == pytest.approx(ref_covariance(a.tolist()), rel=1e-9)
    g2 = build("variance_hinge", {"gamma": 2.0}, TType((5,)))(a)
    assert g2.item() == pytest.approx(ref_variance(a.tolist(), gamma=2.0), rel=1e-9)


def test_variance_hinge_pushes_collapsed_embeddings_apart():
    x = (torch.ones(8, 3, dtype=torch.float64) + 1e-3 * torch.randn(8, 3, dtype=torch.float64)).requires_grad_()
    loss = build("variance_hinge", {}, TType((3,)))(x)
    assert loss.item() > 0.9  # near collapse: std ~ 0 so each dim pays ~ gamma
    loss.backward()
    spread = (x - 0.1 * x.grad).detach()  # one descent step increases the batch spread
    assert spread.std(0).mean() > x.detach().std(0).mean()


def test_latent_capacity_terms():
    z, logvar = data(n=4, d=3)
    assert build("l1", {}, TType((3,)))(z).item() == pytest.approx(
        sum(abs(v) for row in z.tolist() for v in row) / 4, rel=1e-12)
    assert build("l2", {}, TType((3,)))(z).item() == pytest.approx(
        sum(v * v for row in z.tolist() for v in row) / 4, rel=1e-12)
    kl = build("kl", {}, TType((3,)), TType((3,)))(z, logvar)
    want = sum(0.5 * (m * m + math.exp(lv) - 1 - lv)
               for mrow, lrow in zip(z.tolist(), logvar.tolist()) for m, lv in zip(mrow, lrow)) / 4
    assert kl.item() == pytest.approx(want, rel=1e-12)
    # with unit variance (logvar = 0) the KL is |mu|^2 / 2, what a single input gives
    one = build("kl", {}, TType((3,)))(z)
    assert one.item() == pytest.approx(build("kl", {}, TType((3,)), TType((3,)))(z, torch.zeros_like(z)).item())


def test_regularizer_on_a_latent_in_a_spec():
    text = """\
name: latent_reg
inputs:
  x: {shape: [4]}
  y: {shape: [4]}
latents:
  z: {shape: [2]}
blocks:
  enc:  {kind: encoder, type: mlp, in: [x], with: {out: 4}}
  pred: {kind: predictor, type: mlp, in: [enc, z], with: {out: 4}}
  E:    {kind: energy, type: l2, in: [pred, y]}
  cap:  {kind: regularizer, type: l1, in: [z]}
objective: {E: 1.0, cap: 0.1}
"""
    model = jg.compile(jg.loads(text, "latent_reg.yaml"))
    x, y, z = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 2)
    out = model(x=x, y=y, z=z)
    assert out["cap"].dim() == 0
    torch.testing.assert_close(out["loss"], out["E"].mean() + 0.1 * z.abs().sum(1).mean())


@pytest.mark.parametrize("name, n_in", [("vicreg", 2), ("barlow_twins", 2), ("variance_hinge", 1), ("covariance", 1)])
def test_batch_statistics_compile_to_one_graph_without_a_gather(name, n_in):
    """Single process: the DDP gather is folded away, so fullgraph compiles and matches eager
    (the two-process gather itself is checked in test_distributed)."""
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile (dynamo) is not supported here")
    params = {"expander": [6, 4]} if name == "vicreg" else {}
    reg = build(name, params, *[TType((5,))] * n_in).float().train()
    xs = [x.float() for x in data()[:n_in]]
    torch._dynamo.reset()
    ex = torch._dynamo.explain(reg)(*xs)
    assert (ex.graph_count, ex.graph_break_count) == (1, 0), ex.break_reasons
    calls = {str(node.target) for g in ex.graphs for node in g.graph.nodes}
    assert not any("gather" in c or "all_reduce" in c for c in calls)
    torch._dynamo.reset()
    compiled = torch.compile(reg, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(*xs), reg(*xs))
    torch._dynamo.reset()
