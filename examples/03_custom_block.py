"""Register your own block type in Python and use it by name in a spec.

Shows: subclassing jg.BlockType with a Params model, a shape rule (`infer`) that rejects bad
wiring at compile time, a builder, and the error a spec gets when its shapes do not fit.
"""
import torch
import torch.nn as nn

import jepa_graph as jg


class Gated(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.value, self.gate = nn.Linear(d_in, d_out), nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_out)
        return self.value(x) * torch.sigmoid(self.gate(x))


@jg.register_block("gated", kind="encoder")
class GatedEncoder(jg.BlockType):
    """A gated linear encoder: s = W x * sigmoid(V x)."""

    class Params(jg.Params):
        out: jg.DimInt  # may name a dim of the spec

    def infer(self, p, ins):
        if len(ins[0].shape) != 1:
            raise jg.ShapeMismatch("expects a vector [B, n] on input 0", 0, "[B, n]")
        return jg.vec(p.out)

    def build(self, p, ins):
        return Gated(ins[0].shape[0], p.out)

    @classmethod
    def example(cls):
        return {"out": 3}, [jg.vec(5)]


SPEC = """
name: gated_pair
dims: {obs: 6, state: 12}
inputs:
  x1: {shape: [obs]}
  x2: {shape: [obs]}
blocks:
  enc:  {kind: encoder, type: gated, in: [x1], with: {out: state}}
  enc2: {kind: encoder, share: enc, in: [x2]}
  E:    {kind: energy, type: cosine, in: [enc, enc2]}
objective: {E: 1.0}
"""

model = jg.compile(jg.loads(SPEC), seed=0)
print(model(x1=torch.randn(4, 6), x2=torch.randn(4, 6))["energy"])

try:  # the same block fed an image-shaped input fails at compile time, not at run time
    jg.compile(jg.loads(SPEC.replace("x1: {shape: [obs]}", "x1: {shape: [3, obs]}")))
except jg.SpecError as err:
    print("\n" + str(err))
