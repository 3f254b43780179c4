"""The error table: one bad spec per row, and the exact message, location, snippet and hint it gets.

Every row is a mistake a researcher makes. The test loops over the table and checks that the
first diagnostic says what went wrong (``message`` regex), points at ``file:line:col``, quotes
that line of the file with a caret under the column, and carries a hint. Rows are mostly one
edit of ``BASE`` (a small, valid world model), so the expected positions can be read off it::

     1 name: tiny
    11   enc: {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state}}
    15 objective: {E: 1.0, z.l1: 1.0}

Sizes are positive integers up to 2**31 - 1, never YAML booleans: `validate` refuses the rest,
located, and the exported JSON Schema refuses them too (JSON Schema's `integer` excludes booleans).
Without these checks pydantic took `true` as 1, and a size past int64 passed `validate` and then
crashed torch in `info`/`compile` ("Overflow when unpacking long long").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import jsonschema
import pytest
import yaml

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.cli import main
from jepa_graph.frontend.schema import json_schema

BASE = """\
name: tiny
dims: {obs: 4, state: 8, act: 2}
inputs:
  x: {shape: [obs]}
  y: {shape: [obs]}
actions:
  a: {shape: [act], bounds: [-1, 1]}
latents:
  z: {shape: [2], regularizer: {l1: 0.1}}
blocks:
  enc: {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: state}}
  tgt: {kind: encoder, ema_of: enc, in: [y]}
  pred: {kind: predictor, type: mlp, in: [enc, a, z], with: {hidden: [16], out: state}}
  E: {kind: energy, type: l2, in: [pred, tgt]}
objective: {E: 1.0, z.l1: 1.0}
world_model: {encoder: enc, predictor: pred, action: a, latent: z}
"""

# A composite block file, written next to the spec (the spec's folder is on the search path).
LEVEL = """\
name: level
dims: {obs: 4, state: 8}
inputs:
  x: {shape: [obs]}
blocks:
  enc: {kind: encoder, type: mlp, in: [x], with: {out: state}}
outputs: {state: enc}
"""


def sub(old: str, new: str, text: str = BASE) -> str:
    """``text`` with the one occurrence of ``old`` replaced (a second one would make rows ambiguous)."""
    assert text.count(old) == 1, f"`{old}` occurs {text.count(old)} times"
    return text.replace(old, new)


def add_block(line: str) -> str:
    """BASE with one more block, written on line 15."""
    return sub("objective:", f"  {line}\nobjective:")


@dataclass
class Bad:
    name: str
    text: str
    message: str  # regex searched in the first diagnostic's message
    at: str  # "line:col" in the spec, or "file:line:col" in another file of the test folder
    ext: str = "yaml"
    files: dict[str, str] = field(default_factory=dict)  # extra files (composites) beside the spec


TABLE = [
    # ---------------------------------------------------------------- YAML syntax
    Bad("unclosed bracket", sub("in: [x],", "in: [x,"),
        r"invalid YAML: did not find expected ',' or '\]'", "11:75"),
    Bad("unclosed bracket at end of file", "name: x\nblocks: {a: [1, 2\n",
        r"invalid YAML: did not find expected ',' or '\]'", "3:1"),
    Bad("tab indentation", sub("  y: {shape", "\ty: {shape"), r"a tab character where YAML expects spaces", "5:1"),
    Bad("over-indented key", sub("  y: {shape", "    y: {shape"), r"did not find expected key", "5:5"),
    Bad("under-indented key", sub("  y: {shape", " y: {shape"), r"did not find expected key", "5:2"),
    Bad("duplicate key", sub("  y: {shape", "  x: {shape"), r"duplicate key `x`", "5:3"),
    Bad("duplicate key in flow mapping", sub("{obs: 4, state: 8,", "{obs: 4, obs: 8,"), r"duplicate key `obs`", "2:16"),
    Bad("python object tag", sub("name: tiny", "name: !!python/object:os.system tiny"),
        r"unsupported YAML tag `!!python/object:os.system`", "1:7"),
    Bad("python apply tag on a sequence", sub("name: tiny", "name: !!python/object/apply:os.system [ls]"),
        r"unsupported YAML tag `!!python/object/apply:os.system`", "1:7"),
    Bad("merge key", sub("  x: {shape: [obs]}\n  y: {shape: [obs]}", "  x: &X {shape: [obs]}\n  y: {<<: *X}"),
        r"merge keys \(`<<`\) are not supported", "5:7"),
    Bad("undefined alias", sub("[obs]}\n  y", "[obs]}\n  y: *nothing\n  w"), r"found undefined alias", "5:6"),
    Bad("two documents", BASE + "---\nname: again\n", r"a spec file holds one YAML document", "18:1"),
    Bad("empty file", "", r"the spec file is empty", "1:1"),
    Bad("only a comment", "# todo\n", r"the spec file is empty", "1:1"),
    Bad("list at top level", "- enc\n- pred\n", r"a spec must be a mapping of sections", "1:1"),
    Bad("control character", "name: x\nblocks: {}\x07\n", r"invalid character", "2:11"),
    # ---------------------------------------------------------------- spec structure
    Bad("unknown top-level key", sub("objective:", "objectve:"), r"unknown key `objectve` in the spec", "15:1"),
    Bad("missing blocks", BASE.split("blocks:")[0], r"the spec is missing `blocks`", "1:1"),
    Bad("unknown key in a block", sub("E: {kind: energy, type: l2,", "E: {kind: energy, typ: l2,"),
        r"unknown key `typ` in blocks\.E", "14:21"),
    Bad("unknown key in an edge", sub("in: [pred, tgt]", "in: [pred, {ref: tgt, stopgrad: true}]"),
        r"unknown key `stopgrad` in blocks\.E\.in\.1", "14:53"),
    Bad("missing kind", sub("E: {kind: energy, type: l2", "E: {type: l2"), r"block `E` has no `kind`", "14:6"),
    Bad("unknown block kind", sub("kind: energy", "kind: energi"), r"unknown block kind `energi`", "14:13"),
    Bad("block is not a mapping", sub("  E: {kind: energy, type: l2, in: [pred, tgt]}", "  E: energy"),
        r"`blocks\.E` must be a mapping", "14:6"),
    Bad("block without type", sub("kind: energy, type: l2,", "kind: energy,"), r"a block needs a `type`", "14:6"),
    Bad("bad dim value", sub("obs: 4,", "obs: 0,"), r"`dims\.obs`: input should be greater than or equal to 1", "2:13"),
    Bad("dim is not a number", sub("obs: 4,", "obs: four,"), r"`dims\.obs`: input should be a valid integer", "2:13"),
    Bad("shape is not a list", sub("x: {shape: [obs]}", "x: {shape: obs}"), r"`inputs\.x\.shape` must be a list", "4:14"),
    Bad("shape entry neither size nor name", sub("x: {shape: [obs]}", "x: {shape: [1.5]}"),
        r"`inputs\.x\.shape\.0`: `1\.5` is not valid here", "4:15"),
    Bad("latent domain", sub("z: {shape: [2],", "z: {shape: [2], domain: boxx,"),
        r"`latents\.z\.domain`: `boxx` is not valid here", "9:27"),
    Bad("discrete latent with one value", sub("z: {shape: [2],", "z: {shape: [2], domain: {discrete: 1},"),
        r"`latents\.z\.domain\.discrete`: input should be greater than or equal to 2", "9:38"),
    Bad("bounds reversed", sub("bounds: [-1, 1]", "bounds: [1, -1]"), r"bounds \[lo, hi\] need lo < hi", "7:29"),
    Bad("latent regulariser name", sub("regularizer: {l1: 0.1}", "regularizer: {l3: 0.1}"),
        r"`latents\.z\.regularizer`: unknown key `l3`; input should be 'l1', 'l2', 'kl' or 'none'", "9:33"),
    Bad("objective weight not a number", sub("{E: 1.0,", "{E: heavy,"), r"`objective\.E`: input should be a valid number", "15:16"),
    Bad("name with a space", sub("name: tiny", "name: my model"), r"`my model` is not a valid name", "1:7"),
    Bad("block name that is a number", sub("  E: {kind", "  1: {kind"), r"`blocks`: key `1` must be a name", "14:3"),
    Bad("spec name that is a number", sub("name: tiny", "name: 12"), r"`name` must be text \(got a number `12`\)", "1:7"),
    Bad("objective weight not finite", sub("{E: 1.0,", "{E: .nan,"), r"objective term `E` has weight nan", "15:13"),
    Bad("python import path as type", sub("type: l2", "type: os.system"), r"`os\.system` is not a block type", "14:27"),
    # sizes past int32 would pass pydantic and crash torch at build time; YAML `true` would be taken as 1
    Bad("dim too big", sub("obs: 4,", "obs: 99999999999999999999,"),
        r"`dims\.obs` is 99999999999999999999; sizes go up to 2,147,483,647", "2:13"),
    Bad("shape entry too big", sub("x: {shape: [obs]}", "x: {shape: [99999999999999999999]}"),
        r"`inputs\.x\.shape\.0` is 99999999999999999999; sizes go up to 2,147,483,647", "4:15"),
    Bad("size parameter too big", sub("out: state}}\n  tgt", "out: 100000000000000000000000000}}\n  tgt"),
        r"`enc` \(encoder\.mlp\) parameter `out`: 100000000000000000000000000 is too big; sizes go up to 2,147,483,647",
        "11:70"),
    Bad("dim that is true", sub("obs: 4,", "obs: true,"), r"`dims\.obs` is `true`, not a number", "2:13"),
    Bad("shape entry that is true", sub("x: {shape: [obs]}", "x: {shape: [true]}"),
        r"`inputs\.x\.shape\.0`: `true` is not valid here", "4:15"),
    Bad("size parameter that is true", sub("out: state}}\n  tgt", "out: true}}\n  tgt"),
        r"`enc` \(encoder\.mlp\) parameter `out`: `true` is not a number", "11:70"),
    # ---------------------------------------------------------------- names and references
    Bad("unknown block type", sub("type: l2", "type: l22"), r"unknown energy type `l22`", "14:27"),
    Bad("type of another kind", sub("type: l2", "type: mlp"), r"unknown energy type `mlp`", "14:27"),
    Bad("unknown reference", sub("in: [pred, tgt]", "in: [prd, tgt]"), r"unknown reference `prd` \(input 0 of `E`\)", "14:36"),
    Bad("dotted reference to a plain block", sub("in: [pred, tgt]", "in: [pred, tgt.out]"),
        r"`tgt\.out`: only composite blocks have named outputs", "14:42"),
    Bad("unknown dim in a shape", sub("x: {shape: [obs]}", "x: {shape: [ob]}"), r"unknown dim `ob` in the shape of `x`", "4:15"),
    Bad("unknown dim in with", sub("out: state}}\n  tgt", "out: stat}}\n  tgt"),
        r"`enc` \(encoder\.mlp\) parameter `out`: unknown dim `stat`", "11:70"),
    Bad("unknown parameter", sub("{hidden: [16], out: state}}\n  tgt", "{hiden: [16], out: state}}\n  tgt"),
        r"`enc` \(encoder\.mlp\) has no parameter `hiden`", "11:51"),
    Bad("missing required parameter", sub("with: {hidden: [16], out: state}}\n  tgt", "with: {hidden: [16]}}\n  tgt"),
        r"`enc` \(encoder\.mlp\) needs parameter `out`", "11:44"),
    Bad("parameter value not allowed", sub("out: state}}\n  tgt", "out: state, act: relux}}\n  tgt"),
        r"`enc` \(encoder\.mlp\) parameter `act`: input should be 'relu', 'gelu'", "11:82"),
    Bad("name defined twice", sub("  E: {kind", "  x: {kind").replace("{E: 1.0", "{x: 1.0"),
        r"`x` is defined twice \(input and block\)", "14:3"),
    Bad("reserved block name", sub("  E: {kind", "  energy: {kind").replace("{E: 1.0", "{energy: 1.0"),
        r"`energy` is a reserved name", "14:3"),
    # ---------------------------------------------------------------- wiring
    Bad("cycle", sub("in: [x], with: {hidden: [16], out: state}}", "in: [pred], with: {hidden: [16], out: state}}"),
        r"cycle: `pred` -> `enc` -> `pred`", "11:40"),
    Bad("block wired into itself", sub("in: [x], with: {hidden", "in: [enc], with: {hidden"),
        r"cycle: `enc` -> `enc`", "11:40"),
    Bad("share of itself", sub("ema_of: enc", "share: tgt"), r"`tgt` shares weights in a loop", "12:31"),
    Bad("energy with one input", sub("in: [pred, tgt]", "in: [pred]"), r"energy `E` compares two representations, got 1", "14:35"),
    Bad("energy with three inputs", sub("in: [pred, tgt]", "in: [pred, tgt, enc]"),
        r"energy `E` compares two representations, got 3", "14:35"),
    Bad("action wired into an encoder", sub("in: [x], with", "in: [a], with"),
        r"`a` \(action\) -> `enc` \(encoder\) input 0: an encoder sees observations", "11:40"),
    Bad("latent wired into an actor", add_block("act: {kind: actor, type: mlp, in: [z], with: {out: act}}"),
        r"`z` \(latent\) -> `act` \(actor\) input 0: an actor sees observations", "15:38"),
    Bad("action wired into a critic", add_block("c: {kind: critic, type: mlp, in: [enc, a]}"),
        r"`a` \(action\) -> `c` \(critic\) input 1: a critic sees observations and states, not actions", "15:42"),
    Bad("wrong number of inputs", add_block("ln: {kind: op, type: layer_norm, in: [enc, pred]}"),
        r"`ln` \(op\.layer_norm\) takes 1 input\(s\), got 2", "15:36"),
    Bad("no inputs", sub("in: [x], with", "in: [], with"), r"`enc` \(encoder\.mlp\) takes 1 input\(s\) \(x\), got 0", "11:35"),
    Bad("index tensor into an MLP", sub("x: {shape: [obs]}", "x: {shape: [obs], dtype: long}"),
        r"`enc` \(encoder\.mlp\) expects a float tensor on input 0, `x` gives \[B, 4\] \(long\)", "11:40"),
    Bad("energy feeding a block", sub("in: [enc, a, z]", "in: [E, a, z]"),
        r"`E` \(energy\) -> `pred` \(predictor\) input 0: an energy gives one number per sample", "13:43"),
    Bad("EMA target of a non-encoder", sub("ema_of: enc", "ema_of: E"), r"EMA target `tgt` \(encoder\) copies `E`, an energy", "12:32"),
    Bad("EMA of an EMA", add_block("t2: {kind: encoder, ema_of: tgt, in: [y]}"),
        r"`t2` is an EMA target of `tgt`, which is itself an EMA target", "15:31"),
    Bad("EMA of an unknown block", sub("ema_of: enc", "ema_of: enk"), r"`tgt` is an EMA target of unknown block `enk`", "12:32"),
    Bad("EMA momentum not a number", sub("ema_of: enc, in: [y]}", "ema_of: enc, in: [y], with: {momentum: high}}"),
        r"EMA target `tgt`: bad `momentum`", "12:63"),
    Bad("EMA momentum above 1", sub("ema_of: enc, in: [y]}", "ema_of: enc, in: [y], with: {momentum: 1.5}}"),
        r"EMA target `tgt`: momentum 1\.5 is outside \[0, 1\]", "12:63"),
    Bad("EMA momentum end below 0", sub("ema_of: enc, in: [y]}", "ema_of: enc, in: [y], with: {momentum: [0.9, -0.5]}}"),
        r"EMA target `tgt`: momentum -0\.5 is outside \[0, 1\]", "12:69"),
    Bad("EMA momentum going down", sub("ema_of: enc, in: [y]}", "ema_of: enc, in: [y], with: {momentum: [1.0, 0.9]}}"),
        r"EMA target `tgt`: momentum goes down from 1\.0 to 0\.9", "12:64"),
    Bad("EMA momentum going down in .jepa", "jepa t\ninput x, y : [2]\nenc = encoder.mlp(x, out=2)\n"
        "t = ema(enc)(y, momentum=1.0..0.9)\nE = energy.l2(enc, t)\nobjective E\n",
        r"EMA target `t`: momentum goes down from 1\.0 to 0\.9", "4:26", ext="jepa"),
    Bad("EMA momentum above 1 in .jepa", "jepa t\ninput x, y : [2]\nenc = encoder.mlp(x, out=2)\n"
        "t = ema(enc)(y, momentum=0.99..1.5)\nE = energy.l2(enc, t)\nobjective E\n",
        r"EMA target `t`: momentum 1\.5 is outside \[0, 1\]", "4:32", ext="jepa"),
    Bad("EMA parameter typo", sub("ema_of: enc, in: [y]}", "ema_of: enc, in: [y], with: {momentm: 0.9}}"),
        r"EMA target `tgt` has no parameter `momentm`", "12:53"),
    Bad("EMA schedule typo", sub("ema_of: enc, in: [y]}", "ema_of: enc, in: [y], with: {schedule: cosin}}"),
        r"EMA target `tgt`: bad `schedule`: input should be 'linear', 'cosine' or 'constant'", "12:63"),
    Bad("EMA target with another type", sub("ema_of: enc, in: [y]}", "ema_of: enc, type: ac_mlp, in: [y]}"),
        r"EMA target `tgt` has type `ac_mlp` but copies `enc` of type `mlp`", "12:43"),
    Bad("shared block with its own with", sub("ema_of: enc, in: [y]}", "share: enc, in: [y], with: {out: 3}}"),
        r"`tgt` shares `enc` and cannot set its own `with:`", "12:45"),
    Bad("share of a different kind", sub("ema_of: enc", "share: pred"), r"`tgt` \(encoder\) shares `pred`, which is a predictor", "12:31"),
    # ---------------------------------------------------------------- shapes
    Bad("shape mismatch between two blocks", sub("in: [pred, tgt]", "in: [pred, x]"),
        r"`E` \(energy\.l2\) compares two representations of one shape: input 0 is \[B, 8\], but input 1, `x` gives \[B, 4\]",
        "14:42"),
    Bad("shape mismatch from a block's width", sub("ema_of: enc, in: [y]}", "type: mlp, in: [y], with: {out: 6}}"),
        r"input 1, `tgt` gives \[B, 6\]", "14:42"),
    Bad("scalar input into an MLP", sub("x: {shape: [obs]}", "x: {shape: []}"),
        r"`enc` \(encoder\.mlp\) needs a vector per sample on input 0, `x` gives \[B\]", "11:40"),
    Bad("scalar action into a predictor", sub("a: {shape: [act],", "a: {shape: [],"),
        r"`pred` \(predictor\.mlp\) needs a vector per sample on input 1, `a` gives \[B\]", "13:48"),
    Bad("goal of another shape than the state", sub("objective:", "  c: {kind: cost, type: goal_distance, in: [pred, x]}\n"
                                                         "costs: {c: 1.0}\nobjective:"),
        r"`c` \(cost\.goal_distance\) compares a state and a goal of one shape: state is \[B, 8\], but the goal, `x` gives \[B, 4\]",
        "15:51"),
    # ---------------------------------------------------------------- objective, costs, world model
    Bad("objective term not a scalar block", sub("{E: 1.0, z.l1", "{enc: 1.0, z.l1"),
        r"objective term `enc` is an encoder, not an energy, regularizer, cost or critic", "15:13"),
    Bad("objective term unknown", sub("{E: 1.0, z.l1", "{EE: 1.0, z.l1"), r"objective term `EE` is not a block", "15:13"),
    Bad("latent regulariser not declared", sub("z.l1: 1.0", "z.l2: 1.0"),
        r"objective term `z\.l2`: latent `z` has no `l2` regulariser", "15:21"),
    Bad("cost term that is an energy", sub("objective:", "costs: {E: 1.0}\nobjective:"),
        r"cost term `E` is an energy, not a cost or critic", "15:9"),
    Bad("world_model naming a wrong kind", sub("encoder: enc, predictor", "encoder: pred, predictor"),
        r"world_model\.encoder must name an encoder, but `pred` is a predictor", "16:24"),
    Bad("world_model naming an unknown block", sub("predictor: pred,", "predictor: prd,"),
        r"world_model\.predictor must name a predictor, but `prd` is not defined", "16:40"),
    Bad("two levels with one name", BASE + "levels:\n  - {name: a, encoder: enc, predictor: pred}\n"
        "  - {name: a, encoder: enc, predictor: pred}\n", r"two levels are named `a`", "19:12"),
    Bad("world_model predictor not on the encoder",
        add_block("p2: {kind: predictor, type: mlp, in: [x, a, z], with: {out: state}}").replace("predictor: pred,", "predictor: p2,"),
        r"predictor `p2` does not depend on encoder `enc`", "17:40"),
    Bad("world_model predictor of another shape than the state",
        add_block("p2: {kind: predictor, type: mlp, in: [enc, a, z], with: {out: 6}}").replace("predictor: pred,", "predictor: p2,"),
        r"world_model: predictor `p2` gives \[B, 6\], but the state from encoder `enc` is \[B, 8\]", "17:40"),
    Bad("level predictor of another shape than the state",
        add_block("p2: {kind: predictor, type: mlp, in: [enc, a, z], with: {out: 6}}")
        + "levels:\n  - {name: lo, encoder: enc, predictor: p2, action: a}\n",
        r"level `lo`: predictor `p2` gives \[B, 6\], but the state from encoder `enc` is \[B, 8\]", "19:41"),
    Bad("actor of another width than the action", add_block("act: {kind: actor, type: mlp, in: [enc], with: {out: 5}}"),
        r"actor `act` gives \[B, 5\], but the world model's action `a` is \[B, 2\]", "15:56"),
    Bad("actor bounds unlike the action's", add_block("act: {kind: actor, type: mlp, in: [enc], with: {out: act, bounds: [0, 9]}}"),
        r"actor `act` gives actions in \[0, 9\], but action `a` is bounded to \[-1, 1\]", "15:69"),
    Bad("level stride below one", BASE + "levels:\n  - {name: lo, encoder: enc, predictor: pred, action: a, stride: 0}\n",
        r"`levels\.0\.stride`: input should be greater than or equal to 1", "18:66"),
    Bad("level stride not a multiple of the level below", BASE + "levels:\n  - {name: lo, encoder: enc, predictor: pred, "
        "action: a, stride: 2}\n  - {name: hi, encoder: enc, predictor: pred, stride: 3}\n",
        r"level `hi` has stride 3, not a multiple of the stride 2 of level `lo` below it", "19:55"),
    Bad("level encoder not reading the level below", add_block("p2: {kind: predictor, type: mlp, in: [tgt], with: {out: state}}")
        + "levels:\n  - {name: lo, encoder: enc, predictor: pred, action: a}\n  - {name: hi, encoder: tgt, predictor: p2}\n",
        r"level `hi`: encoder `tgt` does not read the states of level `lo` \(encoder `enc`\)", "20:25"),
    Bad("world_model stride unlike its level's", sub("action: a, latent: z}", "action: a, latent: z, stride: 2}")
        + "levels:\n  - {name: lo, encoder: enc, predictor: pred, action: a, latent: z}\n",
        r"world_model unrolls level `lo` \(the same encoder and predictor\) with stride 2, but the level has stride 1", "16:76"),
    # ---------------------------------------------------------------- composite blocks
    Bad("unknown composite", add_block("lvl: {kind: composite, type: levle, in: [x]}"),
        r"unknown composite block `levle`", "15:32", files={"level.yaml": LEVEL}),
    Bad("composite given two inputs", add_block("lvl: {kind: composite, type: level, in: [x, y]}"),
        r"composite `level` takes 1 input\(s\) \(x\), `lvl` gives 2", "15:39", files={"level.yaml": LEVEL}),
    Bad("composite dim that does not exist", add_block("lvl: {kind: composite, type: level, in: [x], with: {sate: 4}}"),
        r"composite `level` has no dim `sate`", "15:55", files={"level.yaml": LEVEL}),
    Bad("error inside a composite file", add_block("lvl: {kind: composite, type: level, in: [x]}"),
        r"unknown reference `xx`", "level.yaml:6:40", files={"level.yaml": sub("in: [x]", "in: [xx]", LEVEL)}),
    Bad("YAML error inside a composite file", add_block("lvl: {kind: composite, type: level, in: [x]}"),
        r"did not find expected ',' or '\}'", "level.yaml:7:1", files={"level.yaml": sub("out: state}}", "out: state}", LEVEL)}),
    Bad("objective naming a missing composite output", add_block("lvl: {kind: composite, type: level, in: [x]}").replace(
        "{E: 1.0, z.l1", "{E: 1.0, lvl.E: 1.0, z.l1"),
        r"objective term `lvl\.E`: composite `lvl` has no output `E`", "16:21", files={"level.yaml": LEVEL}),
    Bad("world_model naming a composite", add_block("lvl: {kind: composite, type: level, in: [x]}").replace(
        "{encoder: enc,", "{encoder: lvl,"),
        r"world_model\.encoder must name an encoder, but `lvl` is a composite block", "17:24", files={"level.yaml": LEVEL}),
    Bad("composite input of the wrong shape", add_block("lvl: {kind: composite, type: level, in: [pred]}"),
        r"composite input `lvl/x` expects \[B, 4\], `pred` gives \[B, 8\]", "15:44", files={"level.yaml": LEVEL}),
    Bad("share and ema_of on one block", add_block("t2: {kind: encoder, share: enc, ema_of: enc, in: [y]}"),
        r"`share:` and `ema_of:` exclude each other", "15:7"),
    Bad("actor output into an encoder", add_block("act: {kind: actor, type: mlp, in: [enc], with: {out: 2}}\n"
                                                  "  e2: {kind: encoder, type: mlp, in: [act], with: {out: 8}}"),
        r"`act` \(actor\) -> `e2` \(encoder\) input 0: an encoder sees observations, not the actions an actor proposes",
        "16:39"),
    # ---------------------------------------------------------------- the .yml extension reads the same way
    Bad("duplicate key in a .yml file", sub("  y: {shape", "  x: {shape"), r"duplicate key `x`", "5:3", ext="yml"),
]


def _write(case: Bad, tmp_path):
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / f"spec.{case.ext}"
    path.write_text(case.text)
    return path


@pytest.mark.parametrize("case", TABLE, ids=[c.name for c in TABLE])
def test_error_table(case: Bad, tmp_path):
    path = _write(case, tmp_path)
    with pytest.raises(jg.SpecError) as info:
        jg.check(path)
    d = info.value.first
    assert re.search(case.message, d.message), f"message was: {d.message}"
    where = case.at if case.at.count(":") == 2 else f"spec.{case.ext}:{case.at}"
    assert str(d.loc) == str(tmp_path / where), f"\n{d.format()}"
    assert d.hint, f"no hint:\n{d.format()}"
    # rendered like a compiler: head line, the quoted source line, a caret under the column
    lines = d.format().splitlines()
    assert lines[0] == f"{d.loc}: error: {d.message}"
    text = (tmp_path / where.split(":")[0]).read_text().splitlines() + [""]
    gutter = f"{d.loc.line:>5} | "
    quoted = "".join(c if c.isprintable() else ("\ufffd" if c != "\t" else " ") for c in text[d.loc.line - 1])
    assert lines[1] == (gutter + quoted).rstrip() or lines[1] == gutter + quoted
    assert lines[2].index("^") == len(gutter) + d.loc.col - 1
    assert lines[-1] == f"hint: {d.hint}"
    assert str(info.value).startswith(f"{d.loc}: error: ")


def test_table_is_large_and_distinct():
    assert len(TABLE) >= 30
    assert len({c.name for c in TABLE}) == len(TABLE)
    assert len({(c.text, c.ext, tuple(c.files.items())) for c in TABLE}) == len(TABLE)  # no row repeats another


def test_base_spec_is_valid():
    g = jg.check(jg.loads(BASE))
    assert not g.warnings


def test_error_in_a_composite_file_notes_which_use_loaded_it(tmp_path):
    (tmp_path / "level.yaml").write_text(sub("out: state}}", "out: state}", LEVEL))
    (tmp_path / "spec.yaml").write_text(add_block("lvl: {kind: composite, type: level, in: [x]}"))
    with pytest.raises(jg.SpecError) as info:
        jg.check(tmp_path / "spec.yaml")
    assert info.value.first.related[-1] == ("`level` is used by `lvl`", jg.Location(str(tmp_path / "spec.yaml"), 15, 3))


def test_a_block_too_big_to_build_is_a_located_error():
    """Sizes that pass every check but cannot be allocated name the block, not torch's allocator."""
    # each size is allowed (<= 2**31 - 1); the first weight, (1e9, 1e9) floats, is 4 EB
    text = sub("with: {hidden: [16], out: state}}\n  tgt", "with: {hidden: [1000000000], out: state}}\n  tgt",
               sub("obs: 4,", "obs: 1000000000,"))
    with pytest.raises(jg.SpecError) as info:
        jg.compile(jg.loads(text, "huge.yaml"))
    d = info.value.first
    assert str(d.loc) == "huge.yaml:11:3"
    assert d.message.startswith("`enc` (encoder.mlp) could not be built:") and "allocate" in d.message
    assert d.hint == "its sizes ask for more memory than this machine has; reduce them"


def test_a_block_whose_sizes_overflow_torch_is_a_located_error(tmp_path, capsys):
    """Sizes within bounds whose product (the flattened input) torch cannot even hold: exit 2, no traceback."""
    path = tmp_path / "spec.yaml"
    path.write_text(sub("x: {shape: [obs]}", "x: {shape: [2147483647, 2147483647, 2147483647]}").replace(
        "ema_of: enc, in: [y]", "ema_of: enc, in: [x]"))
    jg.check(path)  # every check passes: each size is allowed
    with pytest.raises(jg.SpecError) as info:
        jg.compile(path)
    d = info.value.first
    assert str(d.loc) == f"{path}:11:3"
    assert d.message.startswith("`enc` (encoder.mlp) is too big to build:")
    assert d.hint.startswith("its sizes (or their product, the flattened input) overflow torch")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:11:3: error: `enc` (encoder.mlp) is too big to build" in err and "Traceback" not in err


# ------------------------------------------------------------------- several errors at once
def test_independent_reference_errors_are_reported_together(tmp_path):
    text = sub("in: [x],", "in: [xx],", sub("in: [pred, tgt]", "in: [prd, tgt]")).replace("ema_of: enc", "ema_of: enk")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(jg.SpecError) as info:
        jg.check(path)
    msgs = [d.message for d in info.value.diagnostics]
    assert any("unknown reference `xx`" in m for m in msgs)
    assert any("unknown reference `prd`" in m for m in msgs)
    assert any("unknown block `enk`" in m for m in msgs)
    assert len({d.loc for d in info.value.diagnostics}) == len(msgs)  # one per place


def test_independent_schema_errors_are_reported_together():
    text = sub("obs: 4,", "obs: 0,", sub("objective:", "objectve:")).replace("kind: energy", "kind: energi")
    with pytest.raises(jg.SpecError) as info:
        jg.loads(text, "spec.yaml")
    got = {(d.loc.line, d.loc.col) for d in info.value.diagnostics}
    assert {(2, 13), (14, 13), (15, 1)} <= got


def test_independent_shape_errors_are_reported_together():
    text = sub("out: state}}\n  tgt", "out: stat}}\n  tgt", sub("x: {shape: [obs]}", "x: {shape: [ob]}"))
    text = text.replace("type: l2", "type: l22")
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.loads(text, "spec.yaml"))
    msgs = [d.message for d in info.value.diagnostics]
    assert any("unknown dim `ob`" in m for m in msgs)
    # downstream of the bad dim, shapes are not inferred, but types and parameters still are
    assert any("unknown energy type `l22`" in m for m in msgs)
    assert any("unknown dim `stat`" in m for m in msgs)
    assert len(msgs) == 3


def test_one_fault_is_reported_once():
    """A bad `with:` seen through the block and its EMA copy is one error, not two."""
    text = sub("{hidden: [16], out: state}}\n  tgt", "{hiden: [16], out: state}}\n  tgt")
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.loads(text, "spec.yaml"))
    assert len(info.value.diagnostics) == 1


def test_a_misspelt_type_is_reported_once_for_a_block_and_its_ema_target():
    text = sub("enc: {kind: encoder, type: mlp,", "enc: {kind: encoder, type: MLP,")
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.loads(text, "spec.yaml"))
    (d,) = info.value.diagnostics
    assert d.message == "unknown encoder type `MLP`" and (d.loc.line, d.loc.col) == (11, 30) and "`mlp`" in d.hint


@pytest.mark.parametrize("rename, ext, example", [
    ("rename: [x, y]", "yaml", "`rename: {obs: x, obs_next: x_next}`"),
    ("rename: {obs: 3}", "yaml", "`rename: {obs: x, obs_next: x_next}`"),
])
def test_a_bad_rename_hint_shows_a_rename(rename, ext, example):
    text = BASE + f"train: {{data: {{source: two_rooms, {rename}}}}}\n"
    with pytest.raises(jg.SpecError) as info:
        jg.loads(text, f"spec.{ext}")
    assert info.value.first.hint.startswith("rename maps names the data source yields") and example in info.value.first.hint


def test_thousands_of_errors_are_cut_short():
    blocks = "".join(f"  b{i}: 1\n" for i in range(500))
    with pytest.raises(jg.SpecError) as info:
        jg.loads(f"name: many\nblocks:\n{blocks}", "many.yaml")
    assert len(info.value.diagnostics) == 500
    text = str(info.value)
    assert text.count("error:") == 20
    assert text.endswith("... and 480 more errors (fix the first ones first)")


# ------------------------------------------------------------------- hints that name both ends
def test_shape_error_names_both_ends_and_their_lines():
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.loads(sub("in: [pred, tgt]", "in: [pred, x]"), "spec.yaml"))
    d = info.value.first
    assert "`E`" in d.message and "`x`" in d.message and "[B, 8]" in d.message and "[B, 4]" in d.message
    assert [str(loc) for _, loc in d.related] == ["spec.yaml:4:3"]  # where `x` is declared
    assert "note: `x` at spec.yaml:4:3" in d.format()


def test_did_you_mean_lists_valid_names_when_nothing_is_close():
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.loads(sub("type: l2", "type: zzz"), "spec.yaml"))
    assert info.value.first.hint == "valid energy types: " + ", ".join(
        f"`{c.name}`" for c in jg.list_blocks() if c.kind == "energy")


def test_from_dict_errors_point_into_generated_yaml():
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.from_dict({"name": "d", "inputs": {"x": {"shape": [3]}},
                               "blocks": {"e": {"kind": "encoder", "type": "mlp", "in": ["xs"], "with": {"out": 2}}}}))
    d = info.value.first
    assert d.loc.file == "<python>.yaml" and "did you mean `x`" in d.hint
    assert d.format().splitlines()[1].strip().startswith(f"{d.loc.line} |")


@pytest.mark.parametrize("ext, momentum, want", [
    ("yaml", "{momentum: fast}", "`momentum: 0.996`"), ("jepa", "momentum=fast", "`momentum=0.996`"),
    ("yaml", "{momentum: 1.5}", "`momentum: [0.996, 1.0]`"), ("jepa", "momentum=1.5", "`momentum=0.996..1.0`"),
])
def test_ema_hints_are_written_in_the_specs_syntax(ext, momentum, want):
    if ext == "yaml":
        text = sub("ema_of: enc, in: [y]}", f"ema_of: enc, in: [y], with: {momentum}}}")
    else:
        text = f"jepa t\ninput x, y : [2]\nenc = encoder.mlp(x, out=2)\nt = ema(enc)(y, {momentum})\n" \
               "E = energy.l2(enc, t)\nobjective E\n"
    with pytest.raises(jg.SpecError) as info:
        jg.check(jg.loads(text, f"spec.{ext}"))
    assert want in info.value.first.hint


# ------------------------------------------------ sizes: positive integers up to 2**31 - 1
SEED = (SPECS / "seed_world_model.yaml").read_text()
HUGE = "99999999999999999999"
MISTAKES = {
    # name: (old, new) in the seed spec, and the message `validate` gives
    "dim true": ("obs: 16,", "obs: true,", "`dims.obs` is `true`, not a number"),
    "dim too big": ("obs: 16,", f"obs: {HUGE},", f"`dims.obs` is {HUGE}; sizes go up to 2,147,483,647"),
    "shape entry true": ("x:      {shape: [obs]}", "x:      {shape: [true]}", "`inputs.x.shape.0`: `true` is not valid here"),
    "shape entry too big": ("x:      {shape: [obs]}", f"x:      {{shape: [{HUGE}]}}", "`inputs.x.shape.0` is " + HUGE),
    "width true": ("hidden: [64, 32], out: state}", "hidden: [64, 32], out: true}", "parameter `out`: `true` is not a number"),
    "hidden width true": ("hidden: [64, 32], out: state}", "hidden: [true, 32], out: state}", "parameter `hidden`: `true`"),
    "width too big": ("hidden: [64, 32], out: state}", f"hidden: [64, 32], out: {HUGE}}}", f"parameter `out`: {HUGE} is too big"),
}


@pytest.mark.parametrize("old,new,message", list(MISTAKES.values()), ids=list(MISTAKES))
def test_validate_refuses_the_size_located(tmp_path, capsys, old, new, message):
    assert SEED.count(old) == 1
    text = SEED.replace(old, new)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    line = text[:text.index(new)].count("\n") + 1
    assert err.startswith(f"{path}:{line}:") and message in err and "\nhint: " in err and "Traceback" not in err


@pytest.mark.parametrize("old,new,message", list(MISTAKES.values()), ids=list(MISTAKES))
def test_the_schema_refuses_them_too(old, new, message):
    validator = jsonschema.Draft202012Validator(json_schema())
    assert list(validator.iter_errors(yaml.safe_load(SEED.replace(old, new)))), "the schema let this through"


def test_the_largest_size_is_allowed_and_one_more_is_not():
    ok = jg.loads(SEED.replace("obs: 16,", "obs: 2147483647,"), "ok.yaml")
    assert ok.dims["obs"] == 2**31 - 1
    with pytest.raises(jg.SpecError, match="sizes go up to 2,147,483,647"):
        jg.loads(SEED.replace("obs: 16,", "obs: 2147483648,"), "bad.yaml")


def test_yes_no_parameters_still_take_booleans():
    text = SEED.replace("hidden: [64, 32], out: state}", "hidden: [64, 32], out: state, norm: true}")
    g = jg.check(jg.loads(text, "ok.yaml"))
    assert g.nodes["encoder"].params.norm is True


def test_a_composite_dim_too_big_is_reported_at_its_use(tmp_path):
    spec = tmp_path / "uses.yaml"
    spec.write_text("name: uses\ninputs: {x: {shape: [2]}, y: {shape: [2]}, a: {shape: [2]}}\nblocks:\n"
                    f"  low: {{kind: composite, type: ac_jepa_level, in: [x, y, a], with: {{state: {HUGE}}}}}\n"
                    "objective: {low.E: 1.0}\n")
    with pytest.raises(jg.SpecError) as e:
        jg.check(spec)
    d = e.value.first
    assert d.message == f"dim `state` of `low` is {HUGE}; sizes go up to 2,147,483,647"
    assert str(d.loc) == f"{spec}:4:76"  # the value


@pytest.mark.parametrize("name", ["keys", "forward", "update", "train"])
def test_a_block_named_like_a_module_dict_attribute_is_a_located_error(name):
    """torch's ModuleDict cannot hold a module under `keys` (etc.): a located error, not a KeyError."""
    text = ("name: kw\ninputs:\n  x: {shape: [4]}\nblocks:\n"
            f"  {name}: {{kind: encoder, type: mlp, in: [x], with: {{out: 4}}}}\n"
            f"  E: {{kind: energy, type: l2, in: [{name}, x]}}\nobjective: {{E: 1.0}}\n")
    with pytest.raises(jg.SpecError) as info:
        jg.compile(jg.loads(text, "kw.yaml"))
    d = info.value.first
    assert str(d.loc) == "kw.yaml:5:3"
    assert d.message == f"block name `{name}` is taken by torch (an attribute of nn.ModuleDict)"
    assert d.hint == f"rename the block, e.g. `{name}_block`"
