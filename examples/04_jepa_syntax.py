"""The two spec syntaxes: a JEPA written in .jepa, converted to YAML and back, and a located error.

Both syntaxes build the same spec model; `jepa-graph fmt` (here `format_text`) converts either
way without losing anything, comments included. Run: python examples/04_jepa_syntax.py
"""
import jepa_graph as jg
from jepa_graph.format.convert import format_text

SPEC = """\
# A world model: encode, predict one step ahead from the action, compare with an EMA target.
jepa tiny_world_model

dims obs=4, state=8, act=2

input  x, x_next : [obs]
action a : [act] in [-1, 1]

enc  = encoder.mlp(x, hidden=[32], out=state)
# the target encoder: a momentum copy of enc, no gradient
tgt  = ema(enc)(x_next, momentum=0.99..1.0)
pred = predictor.ac_mlp(enc, a, out=state)
E    = energy.l2(pred, sg(tgt))

objective E
world_model encoder=enc, predictor=pred, action=a
"""

spec = jg.loads(SPEC, "tiny.jepa")
as_yaml = format_text(SPEC, "tiny.jepa", to="yaml")
print(as_yaml)

# the YAML builds the same spec, and converts back to the same .jepa text
assert jg.loads(as_yaml, "tiny.yaml").model_dump() == spec.model_dump()
assert format_text(as_yaml, "tiny.yaml", to="jepa") == SPEC

model = jg.compile(spec)
out = model(**model.example_inputs(4))
print("energy per sample:", tuple(out["energy"].shape))

# a mistake gets file:line:col, the line, a caret and a hint
try:
    jg.loads(SPEC.replace("hidden=[32], out=state", "hidden=[32], out: state"), "tiny.jepa")
except jg.SpecError as err:
    print(err)
