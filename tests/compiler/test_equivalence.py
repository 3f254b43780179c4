"""Equivalence with hand-written PyTorch: the seed article's JEPA program, written out below as
the article writes it, against ``specs/seed_world_model.yaml`` compiled.

Same layers -> same parameter counts per block; the same weights copied in -> the same encoder,
predictor, critic, actor outputs, the same prediction loss ``F.mse_loss(pred, enc(x_next).detach())``
and the same gradients. The last tests break the copy on purpose to show the comparison can fail.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import jepa_graph as jg
from conftest import SPECS

OBS, STATE, ACT, BATCH = 16, 8, 4, 32


# --------------------------------------------------------------- the seed article's program
class Encoder(nn.Module):
    """Observation (B, 16) -> latent (B, 8) through hidden widths 64, 32."""

    def __init__(self, input_dim, latent_dim, hidden_dims=(64, 32)):
        super().__init__()
        layers = []
        dims = [input_dim, *hidden_dims, latent_dim]
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:  # no activation after the final layer
                layers.append(nn.ReLU())
        self.network = nn.Sequential(*layers)

    def forward(self, x):
        return self.network(x)


class Predictor(nn.Module):
    """(s (B, 8), a (B, 4)) -> next s (B, 8): a branch per input, concatenated, then an MLP."""

    def __init__(self, latent_dim, action_dim, hidden_dim=64):
        super().__init__()
        self.state_net = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU())
        self.action_net = nn.Sequential(nn.Linear(action_dim, hidden_dim), nn.ReLU())
        self.combined_net = nn.Sequential(nn.Linear(hidden_dim * 2, hidden_dim), nn.ReLU(),
                                          nn.Linear(hidden_dim, latent_dim))

    def forward(self, s, a):
        combined = torch.cat([self.state_net(s), self.action_net(a)], dim=1)  # (B, 128)
        return self.combined_net(combined)


class CostModule(nn.Module):
    """Learned cost of a state: (B, 8) -> (B, 1)."""

    def __init__(self, latent_dim, hidden_dim=32):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    def forward(self, s):
        return self.network(s)


class Actor(nn.Module):
    """Policy: (B, 8) -> action (B, 4) in [-1, 1]."""

    def __init__(self, latent_dim, action_dim, hidden_dim=64):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, action_dim), nn.Tanh())

    def forward(self, s):
        return self.network(s)


def hand_written() -> dict[str, nn.Module]:
    """The article's ``create_jepa_system(16, 8, 4)``, keyed by the spec's block names."""
    return {"encoder": Encoder(OBS, STATE), "predictor": Predictor(STATE, ACT),
            "critic": CostModule(STATE), "actor": Actor(STATE, ACT)}


def hand_forward(ref: dict[str, nn.Module], x, x_next, a) -> dict[str, torch.Tensor]:
    """The article's training step, up to the losses (``train_jepa_step``)."""
    s_t = ref["encoder"](x)
    s_next_actual = ref["encoder"](x_next).detach()  # target for the predictor
    s_next_pred = ref["predictor"](s_t, a)
    return {"encoder": s_t, "target": s_next_actual, "predictor": s_next_pred,
            "critic": ref["critic"](s_next_pred).squeeze(-1), "actor": ref["actor"](s_t),
            "loss": F.mse_loss(s_next_pred, s_next_actual)}


def copy_weights(ref: dict[str, nn.Module], model: jg.CompiledModel) -> None:
    """Load the hand-written weights into the compiled blocks, strictly (same keys, same shapes)."""
    for name, mod in ref.items():
        sd = {k.removeprefix("network."): v for k, v in mod.state_dict().items()}
        model.blocks[name].load_state_dict(sd, strict=True)


def combined_objective(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """A scalar that reaches every block, so every parameter gets a gradient to compare."""
    return out["loss"] + 0.5 * out["critic"].mean() + out["actor"].pow(2).mean()


@pytest.fixture
def pair():
    torch.manual_seed(1)
    ref = hand_written()
    model = jg.compile(SPECS / "seed_world_model.yaml")
    copy_weights(ref, model)
    torch.manual_seed(2)
    data = {"x": torch.randn(BATCH, OBS), "x_next": torch.randn(BATCH, OBS),
            "a": torch.rand(BATCH, ACT) * 2 - 1}
    return ref, model, data


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------------- tests
def test_parameter_counts_match_per_block_and_in_total():
    ref = hand_written()
    model = jg.compile(SPECS / "seed_world_model.yaml")
    assert set(model.blocks.keys()) >= set(ref)
    for name, mod in ref.items():
        assert _count(model.blocks[name]) == _count(mod), name
    # encoder 3,432 + predictor 9,672 + critic 1,377 + actor 4,996; `target` shares the encoder
    assert model.num_parameters() == sum(_count(m) for m in ref.values()) == 19_477
    assert [r["params"] for r in model.summary() if r["name"] == "target"] == [0]


def test_outputs_equal_with_the_same_weights(pair):
    ref, model, data = pair
    out = model(**data)
    want = hand_forward(ref, **data)
    for key in ("encoder", "target", "predictor", "critic", "actor"):
        assert out[key].shape == want[key].shape, key
        torch.testing.assert_close(out[key], want[key], rtol=0, atol=0, msg=key)  # same ops: bit-identical
    torch.testing.assert_close(out["loss"], want["loss"])  # reduction order differs: float tolerance
    torch.testing.assert_close(out["energy"], (want["predictor"] - want["target"]).pow(2).mean(1))
    torch.testing.assert_close(model.loss(**data), want["loss"])


def test_programs_equal_the_hand_written_modules(pair):
    ref, model, data = pair
    s = model.encode(x=data["x"])["state"]
    torch.testing.assert_close(s, ref["encoder"](data["x"]), rtol=0, atol=0)
    s1 = model.step(state=s, a=data["a"])["state"]
    torch.testing.assert_close(s1, ref["predictor"](s, data["a"]), rtol=0, atol=0)
    cost = model.cost(state=s1)["cost"]
    torch.testing.assert_close(cost, ref["critic"](s1).squeeze(-1), rtol=0, atol=0)
    act = model.act(state=s)["action"]
    torch.testing.assert_close(act, ref["actor"](s), rtol=0, atol=0)


def test_gradients_equal_after_backward(pair):
    ref, model, data = pair
    combined_objective(model(**data)).backward()
    combined_objective(hand_forward(ref, **data)).backward()
    for name, mod in ref.items():
        got = dict(model.blocks[name].named_parameters())
        for key, p in mod.named_parameters():
            g = got[key.removeprefix("network.")].grad
            assert p.grad is not None and g is not None, (name, key)
            assert p.grad.abs().sum() > 0, (name, key)  # the check compares something
            torch.testing.assert_close(g, p.grad, msg=f"{name}.{key}")


def test_a_broken_copy_is_caught(pair):
    ref, model, data = pair
    with torch.no_grad():
        ref["predictor"].combined_net[2].bias[3] += 1e-3  # one number in the last layer
    out, want = model(**data), hand_forward(ref, **data)
    torch.testing.assert_close(out["encoder"], want["encoder"])  # upstream is untouched
    with pytest.raises(AssertionError):
        torch.testing.assert_close(out["predictor"], want["predictor"])
    with pytest.raises(AssertionError):
        torch.testing.assert_close(out["loss"], want["loss"], rtol=0, atol=1e-7)


def test_a_missing_stop_gradient_is_caught(pair):
    """Without the article's ``.detach()`` on the target, the encoder's gradient differs."""
    ref, model, data = pair
    model(**data)["loss"].backward()
    s_t = ref["encoder"](data["x"])
    F.mse_loss(ref["predictor"](s_t, data["a"]), ref["encoder"](data["x_next"])).backward()  # no detach
    w = model.blocks["encoder"][0].weight.grad
    with pytest.raises(AssertionError):
        torch.testing.assert_close(w, ref["encoder"].network[0].weight.grad)
    # the predictor's gradient does not depend on the stop-gradient, so it still agrees
    torch.testing.assert_close(model.blocks["predictor"].combined_net[2].weight.grad,
                               ref["predictor"].combined_net[2].weight.grad)
