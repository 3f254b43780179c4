"""Build a spec from Python data instead of a file, then catch a mistake before anything runs.

Shows: jg.from_dict (same keys as the YAML syntax), the world-model programs `encode` and
`step`, and a located SpecError with a hint for a typo in a reference.
"""
import torch

import jepa_graph as jg

data = {
    "name": "tiny_world_model",
    "dims": {"obs": 4, "state": 16, "act": 2},
    "inputs": {"x": {"shape": ["obs"]}, "x_next": {"shape": ["obs"]}},
    "actions": {"a": {"shape": ["act"], "bounds": [-1, 1]}},
    "blocks": {
        "enc": {"kind": "encoder", "type": "mlp", "in": ["x"], "with": {"hidden": [32], "out": "state"}},
        "target": {"kind": "encoder", "ema_of": "enc", "in": ["x_next"], "with": {"momentum": [0.99, 1.0]}},
        "pred": {"kind": "predictor", "type": "ac_mlp", "in": ["enc", "a"], "with": {"branch": 32, "out": "state"}},
        "E": {"kind": "energy", "type": "smooth_l1", "in": ["pred", "target"]},
    },
    "objective": {"E": 1.0},
    "world_model": {"encoder": "enc", "predictor": "pred", "action": "a"},
}

model = jg.compile(jg.from_dict(data), seed=0)
s = model.encode(x=torch.randn(3, 4))["state"]  # (B, state)
for t in range(5):  # a 5-step rollout in latent space
    s = model.step(state=s, a=torch.zeros(3, 2))["state"]
print("state after 5 steps:", tuple(s.shape))

# The EMA target starts as a copy and moves toward the encoder on its schedule.
print("momentum used:", model.update_ema(progress=0.5))

data["blocks"]["pred"]["in"] = ["encc", "a"]  # a typo
try:
    jg.compile(jg.from_dict(data))
except jg.SpecError as err:
    print("\n" + str(err))
