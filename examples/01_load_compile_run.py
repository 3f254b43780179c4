"""Load a spec, compile it, run it, and look at what the compiler produced.

Shows: jg.load -> jg.compile -> model(...) returns every block's output plus the per-sample
energy and the training loss; the programs the graph was lowered to; the generated torch code
of one program; the parameter count per block.
"""
from pathlib import Path

import torch

import jepa_graph as jg

ROOT = Path(__file__).resolve().parent.parent

spec = jg.load(ROOT / "specs" / "seed_world_model.yaml")
model = jg.compile(spec, seed=0)

x, x_next = torch.randn(8, 16), torch.randn(8, 16)  # (B, obs)
a = torch.rand(8, 4) * 2 - 1  # (B, act) in the action bounds
out = model(x=x, x_next=x_next, a=a)
for name, value in out.items():
    print(f"{name:>10}: {tuple(value.shape)}")

print("\nprograms:", ", ".join(model.program_names()))
print("\n# the generated code of one world-model step:")
print(model.code("step"))

for row in model.summary():
    if row["params"]:
        print(f"{row['name']:>10} {row['what']:<18} {row['params']:>6} parameters")
print(f"{'total':>10} {'':<18} {model.num_parameters():>6}")
