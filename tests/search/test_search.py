"""The searches over spaces, on their own: action-sequence boxes, discrete sequences, the spaces' rules."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from jepa_graph.search import Continuous, Discrete, cem, combinations, descend, sample

from conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine

H, A, B = 5, 2, 6
LO, HI = torch.tensor([-1.0, -0.5]), torch.tensor([1.0, 0.5])  # each action component its own range


def quadratic(target: torch.Tensor, weight: torch.Tensor):
    """f(a) = sum_ij w_bij (a_ij - t_bij)^2 for problem b = row % B: the box optimum is clip(t, lo, hi)."""
    n = target.shape[0]

    def f(params):
        a = params["a"]  # (C * n, H, A), rows c * n + b
        c = a.shape[0] // n
        return (weight.repeat(c, 1, 1) * (a - target.repeat(c, 1, 1)) ** 2).flatten(1).sum(1)
    return f


def problems():
    g = torch.Generator().manual_seed(3)
    target = 1.6 * torch.randn(B, H, A, generator=g)  # many components beyond their bound
    weight = 0.5 + 1.5 * torch.rand(B, H, A, generator=g)
    return target, weight


SEARCHES = {  # name -> (run(f, space, n), tolerance on the optimum)
    "cem": (lambda f, s, n: cem(f, s, n, steps=40, samples=200, elites=20, generator=torch.Generator().manual_seed(0)),
            2e-2),
    "adam": (lambda f, s, n: descend(f, s, n, steps=400, lr=0.05), 2e-3),
    "lbfgs": (lambda f, s, n: descend(f, s, n, steps=50, lr=1.0, optimizer="lbfgs"), 1e-4),
}


@pytest.mark.parametrize("method", list(SEARCHES))
def test_a_quadratic_over_an_action_sequence_box_is_minimised_per_problem(method):
    run, tol = SEARCHES[method]
    target, weight = problems()
    space = {"a": Continuous((H, A), LO, HI)}
    best = run(quadratic(target, weight), space, B)
    a = best.params["a"]
    optimum = torch.maximum(torch.minimum(target, HI), LO)
    assert a.shape == (B, H, A) and best.value.shape == (B,)
    assert space["a"].inside(a).all()
    assert ((target < LO) | (target > HI)).any() and ((target > LO) & (target < HI)).any()  # both kinds occur
    torch.testing.assert_close(a, optimum, atol=tol, rtol=0)
    f_opt = quadratic(target, weight)({"a": optimum})
    assert (best.value >= f_opt - 1e-5).all()  # never below the true minimum
    torch.testing.assert_close(best.value, quadratic(target, weight)({"a": a}))  # the value is f at the point
    for b in range(B):  # one problem at a time finds the same answer: the rows do not mix
        alone = run(quadratic(target[b:b + 1], weight[b:b + 1]), space, 1)
        exact = method != "cem"  # cem draws other noise for a batch of one
        torch.testing.assert_close(alone.params["a"][0], a[b], atol=1e-6 if exact else 2 * tol, rtol=0)


def test_the_start_point_is_where_every_search_begins():
    target, weight = problems()
    f = quadratic(target, weight)
    space = {"a": Continuous((H, A), LO, HI)}
    init = {"a": torch.maximum(torch.minimum(target, HI), LO)}  # already the optimum
    for best in (sample(f, space, B, init=init, samples=8), cem(f, space, B, init=init, steps=1, samples=8, elites=2),
                 descend(f, space, B, init=init, steps=0, lr=0.1)):
        torch.testing.assert_close(best.params["a"], init["a"])


def test_a_discrete_sequence_is_enumerated_and_found_by_cem():
    K = 4
    g = torch.Generator().manual_seed(1)
    cost = torch.rand(2, 3, K, generator=g)  # (B, H, K): the cost of value v at step h of problem b
    cost.scatter_(-1, cost.argmin(-1, keepdim=True), -0.3)  # a clear best value at every step

    def f(params):
        x = params["x"]  # (C * 2, 3, K) one-hots
        return (x * cost.repeat(x.shape[0] // 2, 1, 1)).sum((1, 2))

    space = {"x": Discrete((3,), K)}
    M, values = combinations(space)
    assert M == K ** 3 == space["x"].count and values["x"].shape == (M, 3, K)
    assert len({tuple(v.argmax(-1).tolist()) for v in values["x"]}) == M  # every joint value, once
    want = cost.argmin(-1)  # (B, 3)
    for best in (descend(f, space, 2, steps=0, lr=0.0),
                 cem(f, space, 2, steps=10, samples=32, elites=4, generator=torch.Generator().manual_seed(0))):
        assert best.params["x"].shape == (2, 3, K) and space["x"].inside(best.params["x"]).all()
        assert torch.equal(best.params["x"].argmax(-1), want)
        torch.testing.assert_close(best.value, cost.min(-1).values.sum(1))


def test_combinations_of_several_spaces_vary_the_first_slowest():
    M, v = combinations({"p": Discrete((), 2), "c": Continuous((1,)), "q": Discrete((), 3)})
    assert M == 6 and set(v) == {"p", "q"}
    assert v["p"].argmax(-1).tolist() == [0, 0, 0, 1, 1, 1] and v["q"].argmax(-1).tolist() == [0, 1, 2] * 2
    assert combinations({"c": Continuous((1,))}) == (1, {})


def test_spaces_sample_project_and_inside():
    g = torch.Generator().manual_seed(0)
    box = Continuous((H, A), LO, HI)
    x = box.sample(100, generator=g)
    assert x.shape == (100, H, A) and box.inside(x).all()
    assert x[..., 1].abs().max() <= 0.5 < x[..., 0].abs().max()  # per-component ranges
    assert not box.inside(3 * x).all() and box.inside(box.project(3 * x)).all()
    assert torch.equal(box.init(2), torch.zeros(2, H, A))
    half = Continuous((3,), lo=0.5)  # bounded below only: the prior is N(0, 1) projected
    assert not half.box and half.prior_std() == 1.0
    assert (half.sample(50, generator=g) >= 0.5).all() and torch.equal(half.init(1), torch.full((1, 3), 0.5))
    real = Continuous((2,), float("-inf"), float("inf"))
    assert real.lo is None and real.hi is None and real.inside(torch.tensor([[1e30, -1e30]])).all()
    d = Discrete((2,), 3)
    assert d.value_shape == (2, 3) and d.sample(4, generator=g).sum(-1).eq(1).all()
    assert d.inside(d.one_hot(torch.tensor([[0, 2], [1, 1]]))).tolist() == [True, True]
    assert d.inside(torch.tensor([[[1.0, 1, 0], [0, 0, 1]], [[0.5, 0.5, 0], [0, 1, 0]]])).tolist() == [False, False]


@pytest.mark.parametrize("make, match", [
    (lambda: Continuous((2,), 1.0, -1.0), "lo <= hi"),
    (lambda: Continuous((2,), torch.zeros(3)), "shape"),
    (lambda: Continuous((0,)), ">= 1"),
    (lambda: Discrete((), 0), "k >= 1"),
    (lambda: descend(lambda p: p["a"].sum(1), {"a": Continuous((1,))}, 1, steps=1, lr=0.1, optimizer="sgd"), "adam"),
    (lambda: cem(lambda p: p["a"].sum(1), {"a": Continuous((1,))}, 1, steps=1, samples=4, elites=5), "elites"),
])
def test_bad_spaces_and_settings_are_refused(make, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        make()


def test_search_and_envs_import_nothing_above_them():
    code = ("import json, sys, jepa_graph; before = set(sys.modules); "
            "import jepa_graph.search, jepa_graph.envs.two_rooms; "
            "new = {m.split('.')[1] for m in set(sys.modules) - before if m.startswith('jepa_graph.')}; "
            "print(json.dumps(sorted(new)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert {"search", "envs"} <= set(json.loads(out)) <= {"core", "search", "envs"}, out
