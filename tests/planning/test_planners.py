"""The planners on a problem with a known optimum: a linear world model with a quadratic cost.

s_{t+1} = s_t + M a_t from s_0, cost sum_t w_t (|s_{t+1} - g|^2 + lam |a_t|^2): the optimum is the
solution of one linear system. Each planner must find it, all agree, batched results equal
per-environment results, a seed reproduces a plan, and the bounds hold for every candidate."""
from __future__ import annotations

import math

import pytest
import torch

from jepa_graph import SpecError
from jepa_graph.planning import ACTION, CEM, ICEM, MPPI, Gradient, Plan, Streams, env_seeds, make_planner
from jepa_graph.planning.sampling import coloured_noise
from jepa_graph.search import Continuous

pytestmark = pytest.mark.usefixtures("one_thread")

B, H, A = 3, 6, 2
M = torch.tensor([[0.5, 0.1], [-0.2, 0.4]])
LAM = 0.3


class LQ:
    """The cost of action sequences (C * B, H, A), rows c * B + b; every candidate it saw."""

    def __init__(self, s0: torch.Tensor, g: torch.Tensor):
        self.s0, self.g, self.seen = s0, g, []

    def __call__(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        a = p[ACTION]
        self.seen.append(a.detach().clone())
        C = a.shape[0] // self.s0.shape[0]
        s, g = self.s0.repeat(C, 1), self.g.repeat(C, 1)
        c = LAM * a.pow(2).flatten(1).sum(1)
        for t in range(H):
            s = s + a[:, t] @ M.T
            c = c + (s - g).pow(2).sum(1)
        return c

    def optimum(self) -> torch.Tensor:
        """(B, H, A): argmin of |K a - r|^2 + lam |a|^2 per environment (no bounds)."""
        K = torch.zeros(H * 2, H * A)
        for t in range(H):
            for i in range(t + 1):
                K[2 * t:2 * t + 2, A * i:A * i + A] = M
        Q = K.T @ K + LAM * torch.eye(H * A)
        return torch.stack([torch.linalg.solve(Q, K.T @ (self.g[b] - self.s0[b]).repeat(H)).view(H, A)
                            for b in range(self.s0.shape[0])])


@pytest.fixture
def lq():
    gen = torch.Generator().manual_seed(7)
    return LQ(torch.randn(B, 2, generator=gen), torch.randn(B, 2, generator=gen))


BOX = {ACTION: Continuous((H, A), -3.0, 3.0)}  # wide enough: the optimum lies inside (checked)

# each method with settings that reach the optimum of this problem, and how close they get
SOLVERS = {
    "cem": (dict(iterations=20, min_std=0.001), 0.05),
    "icem": (dict(iterations=25, min_std=0.001, beta=0.5), 0.08),  # beta 2 favours smooth plans; this one is not
    "mppi": (dict(iterations=20, min_std=0.001), 0.05),
    "gradient": (dict(steps=300, lr=0.05, restarts=2), 0.01),
    "cem+gradient": (dict(iterations=6, steps=100, lr=0.05), 0.02),
    "mppi+gradient": (dict(iterations=6, steps=100, lr=0.05), 0.02),
}


def solve(method: str, cost, seed=0, n=B, spaces=BOX, **kw) -> Plan:
    options = {**SOLVERS.get(method, ({}, 0))[0], **kw}
    return make_planner(method, **options).configure(spaces, n, seed=seed).solve(cost)


def test_the_optimum_is_inside_the_box(lq):
    a = lq.optimum()
    assert a.abs().max() < 2.0 and a.abs().max() > 0.5  # inside, and not trivially zero


@pytest.mark.parametrize("method", list(SOLVERS))
def test_each_planner_finds_the_known_optimum(lq, method):
    plan = solve(method, lq)
    opt = lq.optimum()
    tol = SOLVERS[method][1]
    assert plan.actions.shape == (B, H, A) and plan.cost.shape == (B,)
    assert (plan.actions - opt).abs().max() < tol
    assert torch.allclose(plan.cost, lq({ACTION: plan.actions}), rtol=1e-5, atol=1e-5)  # the cost it reports
    assert (plan.cost - lq({ACTION: opt})).max() < 20 * tol ** 2 + 1e-4


def test_lbfgs_is_exact_and_the_planners_agree_with_it(lq):
    exact = solve("gradient", lq, steps=40, lr=1.0, optimizer="lbfgs", restarts=1).actions
    assert (exact - lq.optimum()).abs().max() < 1e-4
    for method, (_, tol) in SOLVERS.items():
        assert (solve(method, lq).actions - exact).abs().max() < tol, method


@pytest.mark.parametrize("method", list(SOLVERS))
def test_batched_results_equal_per_environment_results(lq, method):
    seeds = env_seeds(7, B)
    together = solve(method, lq, seed=seeds)
    for b in range(B):
        alone = solve(method, LQ(lq.s0[b:b + 1], lq.g[b:b + 1]), seed=[seeds[b]], n=1)
        assert torch.allclose(alone.actions[0], together.actions[b], atol=1e-6), b
        assert torch.allclose(alone.cost[0], together.cost[b], atol=1e-5), b


@pytest.mark.parametrize("method", ["cem", "icem", "mppi", "gradient", "cem+gradient"])
def test_a_seed_reproduces_a_plan(lq, method):
    kw = dict(iterations=3) if method != "gradient" else dict(steps=5, restarts=3)
    a, b, c = (solve(method, lq, seed=s, **kw).actions for s in (0, 0, 1))
    assert torch.equal(a, b)
    if method != "gradient":  # (its best start may be the warm start, the same for every seed)
        assert not torch.equal(a, c)  # the seed matters: the draws differ


@pytest.mark.parametrize("method", list(SOLVERS))
def test_every_candidate_and_the_plan_respect_the_bounds(lq, method):
    lo, hi = -0.2, torch.tensor([0.1, 0.25])  # per action component; the optimum is far outside
    spaces = {ACTION: Continuous((H, A), lo, hi)}
    plan = solve(method, lq, spaces=spaces)
    for a in lq.seen + [plan.actions]:
        assert (a >= lo).all() and (a <= hi).all()
    assert plan.actions.amax() == pytest.approx(0.25) and plan.actions.amin() == pytest.approx(-0.2)  # at the bounds


def test_the_bounded_optimum_satisfies_the_kkt_conditions(lq):
    """Projected L-BFGS's answer on the box: no feasible direction lowers the cost."""
    lo, hi = -0.2, 0.25
    a = solve("gradient", lq, spaces={ACTION: Continuous((H, A), lo, hi)}, steps=60, lr=1.0,
              optimizer="lbfgs", restarts=1).actions.requires_grad_(True)
    g, = torch.autograd.grad(lq({ACTION: a}).sum(), a)
    free = (a > lo + 1e-4) & (a < hi - 1e-4)
    assert g[free].abs().max() < 1e-3
    assert (g[a <= lo + 1e-4] >= -1e-3).all() and (g[a >= hi - 1e-4] <= 1e-3).all()
    for method in ("cem", "mppi", "cem+gradient"):
        other = solve(method, lq, spaces={ACTION: Continuous((H, A), lo, hi)})
        assert (other.actions - a.detach()).abs().max() < 0.05, method


def test_non_finite_costs_never_become_elites_or_the_plan(lq):
    """A cost that is NaN wherever a[0, 0] < 0: the unconstrained optimum (a[0, 0] < 0 in every
    environment here) is unreachable; every planner returns a finite plan outside that region."""
    assert (lq.optimum()[:, 0, 0] < 0).all()

    def cost(p):
        c = lq(p)
        return torch.where(p[ACTION][:, 0, 0] < 0, torch.nan, c)

    for method in ("cem", "icem", "mppi", "gradient", "cem+gradient"):
        plan = solve(method, cost)
        assert torch.isfinite(plan.cost).all(), method
        assert (plan.actions[:, 0, 0] >= 0).all(), method


def test_an_environment_whose_candidates_are_all_non_finite_gets_inf():
    plan = CEM(iterations=2, samples=8, elites=2).configure(BOX, 2, seed=0).solve(
        lambda p: torch.full((p[ACTION].shape[0],), math.nan))
    assert torch.isinf(plan.cost).all()


def test_proposals_and_the_warm_start_are_candidates(lq):
    """Candidate 0 is the mean (the warm start), then the proposals: with two candidates and one
    round, the plan is the better of the two, exactly."""
    opt = lq.optimum()
    warm = torch.zeros(B, H, A)
    plan = CEM(iterations=1, samples=2, elites=1).configure(BOX, B, seed=0).solve(lq, {ACTION: warm}, [{ACTION: opt}])
    assert torch.equal(plan.actions, opt)
    plan = CEM(iterations=1, samples=1, elites=1).configure(BOX, B, seed=0).solve(lq, {ACTION: opt})
    assert torch.equal(plan.actions, opt)
    plan = Gradient(steps=1, lr=1e-6, restarts=1).configure(BOX, B, seed=0).solve(lq, None, [{ACTION: opt}])
    assert (plan.actions - opt).abs().max() < 1e-4  # the proposal is a start of the descent


def test_shifted_moves_the_plan_one_step_earlier():
    a = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)
    p = Plan(a, torch.zeros(2))
    assert p.shifted(1)[ACTION][:, :, 0].tolist() == [[1, 2, 3, 3], [5, 6, 7, 7]]
    assert p.shifted(3)[ACTION][:, :, 0].tolist() == [[3, 3, 3, 3], [7, 7, 7, 7]]


def test_coloured_noise_has_unit_variance_and_a_red_spectrum():
    streams = Streams.of(0, 2)
    x = coloured_noise(streams, 4000, (32, 1), beta=2.0)  # (n, B, H, 1)
    assert x.shape == (4000, 2, 32, 1)
    assert x.var().item() == pytest.approx(1.0, rel=0.1)
    power = torch.fft.rfft(x[..., 0], dim=-1).abs().pow(2).mean((0, 1))
    assert power[1] > 20 * power[-1]  # 1/f^2: low frequencies dominate
    white = coloured_noise(streams, 4000, (32, 1), beta=0.0)[..., 0]
    p = torch.fft.rfft(white, dim=-1).abs().pow(2).mean((0, 1))
    assert p[1] == pytest.approx(p[-2].item(), rel=0.3)
    assert ICEM().configure(BOX, 1).noise(3, (H, A)).shape == (3, 1, H, A)


def test_streams_are_per_environment():
    s = Streams([5, 6])
    x = s.randn(3, 4)
    y = Streams([6]).randn(3, 4)
    assert torch.equal(x[:, 1], y[:, 0])
    assert len(set(env_seeds(0, 100))) == 100 and env_seeds(0, 1, offset=1) == env_seeds(0, 2)[1:]


@pytest.mark.parametrize("method, options, message", [
    ("cme", {}, r"unknown planning method `cme`[\s\S]*did you mean `cem`"),
    ("cem", {"sample": 3}, r"`cem` has no option `sample`[\s\S]*did you mean `samples`"),
    ("cem", {"samples": 0}, r"`samples` must be a whole number >= 1"),
    ("mppi", {"temperature": -1.0}, r"`temperature` must be a number > 0"),
    ("icem", {"keep": 2.0}, r"`keep` must be a number \[0.0, 1.0\]"),
    ("gradient", {"optimizer": "sgd"}, r"`optimizer` must be 'adam' or 'lbfgs'"),
    ("gradient", {"samples": 8}, r"`gradient` has no option `samples`"),
    ("cem+gradient", {"restarts": 2}, r"`cem\+gradient` has no option `restarts`"),
])
def test_bad_methods_and_options_are_spec_errors(method, options, message):
    with pytest.raises(SpecError, match=message):
        make_planner(method, **options)


def test_a_planner_instance_is_used_as_given():
    p = MPPI(samples=16)
    assert make_planner(p) is p
    with pytest.raises(SpecError, match="built already"):
        make_planner(p, samples=3)
