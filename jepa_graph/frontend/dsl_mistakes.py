"""The table of common .jepa mistakes: example bad inputs, each with its message and a hint.

Data, not code (lark's ``GRAMMAR_ERRORS`` idea): :mod:`jepa_graph.dsl_errors` matches a parse
error against the examples of :data:`MISTAKES` (same parser state and token) and reports the
entry's message; :data:`CHECKED` lists inputs whose mistakes are caught after parsing (in
:mod:`jepa_graph.dsl_build`). ``tests/frontend/test_dsl_errors.py`` loops over both, so every entry is
tested as the first, second and a later statement of a file.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    """One common mistake: example bad inputs, the message and a hint showing the fix.

    ``{first}`` in the message or hint is replaced by the first word of the statement; in the
    hint, ``{token}`` is the unexpected token and ``{prev}`` the word just before it.
    ``details=False`` leaves out the "[found; expected ...]" note (where it would only confuse).
    """

    message: str
    hint: str
    examples: tuple[str, ...]
    details: bool = True


MISTAKES: dict[str, Mistake] = {
    "colon_definition": Mistake(
        "`{first}:` looks like YAML; .jepa definitions use `=` or a keyword",
        "write `enc = encoder.mlp(x, out=state)`, `dims obs=4`, or use a .yaml file for YAML",
        ("enc: encoder.mlp(x)\n", "name: foo\n", "blocks:\n")),
    "unknown_statement": Mistake(
        "`{first}` is not a statement",
        "statements start with `jepa`, `input`, `latent`, `action`, `objective`, `costs`, `level`, "
        "a section name (`dims obs=4`), or `name = ...` for a block",
        ("inptu x : [obs]\n", "lantent z : [2]\n"), details=False),
    "bad_statement": Mistake(
        "a statement is `name = ...` (a block) or `section key=value, ...`",
        "write `enc = encoder.mlp(x)` for a block or `dims obs=4` for a section; a name is ASCII letters, "
        "digits and `_`",
        ("e+c = encoder.mlp(x)\n", "e,c = encoder.mlp(x)\n", "e*c = encoder.mlp(x)\n", "e(c) = encoder.mlp(x)\n",
         "e~c = encoder.mlp(x)\n", "e.c = encoder.mlp(x)\n", "e[c] = encoder.mlp(x)\n", "e-c = encoder.mlp(x)\n",
         "e..c = encoder.mlp(x)\n", "e 3\n", "e 0.5\n")),
    "missing_equals": Mistake(
        "a block definition needs `=` after the block's name",
        "write `{first} = encoder.mlp(x, out=state)`",
        ("enc encoder.mlp(x)\n", "enc encoder(x)\n")),
    "missing_block_name": Mistake(
        "a block definition needs the block's name before `=`",
        "write `enc = encoder.mlp(x, out=state)`",
        ("= encoder.mlp(x)\n", "  = enc(y)\n")),
    "double_equals": Mistake(
        "a block is written `name = kind.type(inputs, params)`",
        "after `=` comes `kind.type(...)`, `block(...)` to share weights, or `ema(block)(...)`",
        ("enc = = encoder.mlp(x)\n", "enc = 3\n", "enc = [x]\n")),
    "call_without_parens": Mistake(
        "a block needs its inputs in parentheses",
        "write `{first} = encoder.mlp(x)`; a block with no inputs is written `encoder.mlp()`",
        ("enc = encoder.mlp\n", "enc = encoder.mlp x\n", "enc = encoder.mlp, x\n")),
    "kind_dot_missing": Mistake(
        "expected `.` or `(` after the block kind",
        "a new block is `kind.type(...)`, e.g. `encoder.mlp(x)`",
        ("enc = encoder mlp(x)\n",)),
    "colon_param": Mistake(
        "parameters are written `key=value`, not `key: value`",
        "write `encoder.mlp(x, out=state)`",
        ("enc = encoder.mlp(x, out: state)\n", "enc = encoder.mlp(out: state)\n")),
    "missing_comma_args": Mistake(
        "missing `,` between the arguments",
        "separate inputs and parameters with commas: `mlp(x, y, out=state)`",
        ("enc = encoder.mlp(x y)\n", "enc = encoder.mlp(x out=state)\n", "enc = encoder.mlp(x, out=4 hidden=[3])\n")),
    "sum_with_equals": Mistake(
        "`{first}` is a weighted sum of terms, not a list of assignments",
        "write `{first} E + 0.5 * reg` (a term alone has weight 1)",
        ("objective E = 1\n", "costs reach = 1.0\n", "objective E + reg = 0.5\n")),
    "missing_comma_list": Mistake(
        "missing `,` between list items",
        "write `[64, 64]`",
        ("enc = encoder.mlp(x, hidden=[64 64])\n", "input x : [obs 2]\n")),
    "param_missing_value": Mistake(
        "a parameter needs a value after `=`",
        "write `key=value`, e.g. `out=state` or `hidden=[64, 64]`",
        ("enc = encoder.mlp(x, out=)\n", "enc = encoder.mlp(x, out=,)\n")),
    "var_missing_colon": Mistake(
        "`{first}` needs `:` between the names and the shape",
        "write `{first} x : [obs]`",
        ("input x [obs]\n", "latent z [2]\n", "input x, y [obs]\n")),
    "var_missing_shape": Mistake(
        "the shape is a list in brackets",
        "write `{first} x : [obs]`, or `[]` for a scalar",
        ("input x :\n", "input x : obs\n", "action a : 2\n")),
    "var_missing_name": Mistake(
        "`{first}` needs a name",
        "write `{first} x : [obs]`; several inputs of one shape: `input x, x_next : [obs]`",
        ("input : [obs]\n", "latent\n")),
    "reg_missing_weight": Mistake(
        "a latent regulariser needs its weight in parentheses",
        "write `latent z : [2] ~ l1(0.05)`",
        ("latent z : [2] ~ l1\n", "latent z : [2] ~ l1 0.05\n")),
    "reg_weight_name": Mistake(
        "a regulariser's weight is a number",
        "write `~ l1(0.05)`",
        ("latent z : [2] ~ l1(a)\n", "latent z : [2] ~ l1()\n")),
    "bounds_not_list": Mistake(
        "action bounds are a list `[lo, hi]`",
        "write `action a : [act] in [-1, 1]`",
        ("action a : [2] in -1..1\n", "action a : [2] in 1\n")),
    "objective_weight_after": Mistake(
        "the weight comes before the term",
        "write `{first} E + 0.5 * reg` (the weight, `*`, then the term)",
        ("objective E + reg * 0.5\n", "costs reach * 2\n")),
    "objective_comma": Mistake(
        "terms of a sum are joined with `+` or `-`",
        "write `{first} E + 0.5 * reg` (a weight `w * term`, default 1)",
        ("objective E, reg\n", "costs reach, 0.1 * effort\n", "objective E reg\n")),
    "objective_equals": Mistake(
        "`{first}` is followed directly by its sum, without `=`",
        "write `{first} E + 0.5 * reg`",
        ("objective = E + reg\n", "costs: reach\n", "objective: E\n")),
    "objective_empty": Mistake(
        "`{first}` needs at least one term",
        "write `{first} E`, or remove the line",
        ("objective\n", "costs\n")),
    "level_name": Mistake(
        "a level starts with its name",
        "write `level low encoder=enc, predictor=pred, stride=1`",
        ("level encoder=enc\n", "level\n")),
    "header_name": Mistake(
        "`jepa` needs the spec's name",
        "write `jepa my_model` (letters, digits and `_`)",
        ("jepa\n", "jepa 3\n", 'jepa "my model"\n')),
    "header_extra": Mistake(
        "`jepa NAME` takes one name",
        "the name is one word: `jepa my_model`; write a description on its own line: `description \"...\"`",
        ("jepa my model\n", "jepa my-model\n")),
    "description_unquoted": Mistake(
        "a description is a string in double quotes",
        'write `description "what this spec is"`',
        ("description hello world\n", "description\n")),
    "single_quotes": Mistake(
        "strings use double quotes",
        'write `"text"`, not `\'text\'`',
        ("description 'x'\n", "enc = encoder.mlp(x, act='relu')\n")),
    "unclosed_string": Mistake(
        "this string is not closed before the end of the line",
        'add the closing `"`; a string cannot span lines (write `\\n` for a newline)',
        ('description "abc\n', 'enc = encoder.mlp(x, act="relu)\n'), details=False),
    "semicolon": Mistake(
        "statements end at the end of the line; `;` is not used",
        "put each statement on its own line",
        ("input x : [4];\n", "jepa a; input x : [4]\n", "enc = encoder.mlp(x, out=4);\n", "objective E;\n",
         "dims obs=4;\n")),
    "section_key_colon": Mistake(
        "section entries are written `key=value`",
        "write `{first} obs=4, state=8` or `{first} {{ key = value }}` on several lines",
        ("dims obs: 4\n", "world_model encoder: enc\n")),
    "section_missing_value": Mistake(
        "`{first}` needs `key=value` entries",
        "write `dims obs=4, state=8`, `world_model encoder=enc, predictor=pred`, or `{first} {{ ... }}`",
        ("dims\n", "world_model\n")),
    "ema_syntax": Mistake(
        "an EMA target is written `ema(block)(inputs, params)`",
        "write `target = ema(enc)(x_next, momentum=0.99..1.0)`",
        ("target = ema enc(x_next)\n",)),
    "range_incomplete": Mistake(
        "a range needs both ends: `lo..hi`",
        "write `momentum=0.99..1.0`",
        ("target = ema(enc)(y, momentum=0.99..)\n",)),
    "range_three_dots": Mistake(
        "a range is written with two dots: `lo..hi`",
        "write `momentum=0.99..1.0`",
        ("target = ema(enc)(y, momentum=0.99...1.0)\n",)),
    "missing_comma_mapping": Mistake(
        "missing `,` between the entries",
        "write `{{a=1, b=2}}`, or one entry per line",
        ("train {steps=1 lr=0.1}\n", "b = {kind=encoder type=mlp}\n")),
    "missing_comma_names": Mistake(
        "missing `,` between the names",
        "write `{first} x, y : [obs]`",
        ("input x y : [obs]\n", "latent z w : [2]\n")),
    "positional_value": Mistake(
        "an input is a block or variable name; a value needs a parameter name",
        "write `key=value`, e.g. `encoder.mlp(x, out=4)`; an EMA target's momentum goes in its second list: "
        "`ema(enc)(x_next, momentum=0.99)`",
        ("t = ema(enc, 0.99)(y)\n", "enc = encoder.mlp(x, 4)\n", "enc = encoder.mlp(4)\n",
         "enc = encoder.mlp(x, [64, 64])\n", "enc = encoder.mlp(x, -1)\n")),
    "sg_without_parens": Mistake(
        "`sg` takes its input in parentheses",
        "write `sg({token})` to stop the gradient on that edge",
        ("E = energy.l2(enc, sg y)\n", "E = energy.l2(sg y, enc)\n")),
    "call_inside_call": Mistake(
        "a new block `kind.type(...)` cannot be written inside another call",
        "define it on its own line, e.g. `E = energy.l2(enc, y)`, and use its name; `sg(...)` takes a name: `sg(target)`",
        ("E = sg(energy.l2(enc, y))\n", "E = energy.l2(pred, sg(encoder.mlp(y)))\n")),
    "reg_position": Mistake(
        "`~ regulariser` comes after the shape (and the domain)",
        "write `latent z : [2] real ~ l1(0.05)`",
        ("latent ~ z : [2]\n", "latent z ~ l1(0.1) : [2]\n", "latent z, w ~ l1(0.1) : [2]\n", "latent z : ~ l1(0.1)\n")),
    "reg_on_block": Mistake(
        "only a latent takes a regulariser `~ ...`",
        "regularise a latent: `latent z : [2] ~ l1(0.05)`; to regularise a representation, add a block "
        "such as `reg = regularizer.vicreg(enc)` to the objective",
        ("enc = encoder.mlp(x, out=4) ~ l1(0.1)\n", "enc = enc2(x) ~ l1(0.1)\n")),
    "reg_empty": Mistake(
        "`~` needs a regulariser after it",
        "write `latent z : [2] real ~ l1(0.05)` (several: `~ l1(0.05) + l2(0.01)`), or remove the `~`",
        ("latent z : [2] ~\n", "latent z : [2] real ~\n", "latent z : [2] real l1(0.1) ~\n")),
    "reg_trailing_plus": Mistake(
        "`+` needs another regulariser after it",
        "write `~ l1(0.05) + l2(0.01)`, or remove the trailing `+`",
        ("latent z : [2] ~ l1(0.1) +\n",)),
    "reg_then_domain": Mistake(
        "the domain goes before `~`; after `~` come regularisers `name(weight)`",
        "write `latent z : [2] {prev} ~ l1(0.05)`",
        ("latent z : [2] ~ real l1(0.1)\n", "latent z : [2] ~ real\n")),
    "sum_trailing_sign": Mistake(
        "`{first}` ends with `+` or `-`; a term must follow",
        "write `{first} E + 0.5 * reg`, or remove the trailing sign",
        ("objective E +\n", "objective E -\n", "costs reach + 0.5 * effort +\n")),
    "weight_without_star": Mistake(
        "a weight is joined to its term with `*`",
        "write `{first} 0.5 * {token}` (the weight, `*`, then the term)",
        ("objective 0.5 E\n", "costs 2 reach\n", "objective E + 0.5 reg\n", "objective E - 2 reg\n")),
    "level_colon": Mistake(
        "a level is written `level NAME key=value, ...`, without `:`",
        "write `level {prev} encoder=enc, predictor=pred, stride=1`",
        ("level low: encoder=enc, predictor=p\n", "level low:\n")),
    "entry_without_value": Mistake(
        "`{first}` entries are written `key=value`",
        "write `{prev}=...`, or remove `{prev}`",
        ("level low encoder=enc, predictor=p, stride=2 extra\n", "dims obs\n", "world_model encoder=enc, predictor\n"),
        details=False),  # the caret is on the word, not at the end of the line the note would speak of
    "statement_run_on": Mistake(
        "the statement is complete, but the line goes on: one statement per line",
        "start a new line before `{token}`, or remove the extra text",
        ("enc = encoder.mlp(x) objective E\n", "enc = encoder.mlp(x) extra\n", "enc = enc2(x) input y : [4]\n",
         'description "x" input y : [4]\n', "enc = encoder.mlp(x) enc2 = encoder.mlp(x)\n")),
}


# Mistakes found after parsing: (example, a fragment of the message it must produce).
CHECKED: list[tuple[str, str]] = [
    ("jepa a\ninput x : [4]\nenc = encoder.mlp(out=2, x)\n", "an input comes after a keyword argument"),
    ("jepa a\ninput x : [4]\nenc = mlp(x)\n", "`enc` copies `mlp`, which is not a block in this file"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x)\ne = encoder.mlp(x)\n", "block `e` is written twice"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x, out=2, out=3)\n", "`out` is given twice"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x, bias=True)\n", "`True` is Python"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x)\nt = ema(e, x)(x)\n", "a second argument list is only for EMA"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x)\nE = energy.l2(e, sg(e, x))\n", "`sg(...)` takes one input"),
    ("jepa a\ninput x : [4] ~ l1(0.1)\ne = encoder.mlp(x)\n", "only a latent takes a regulariser"),
    ("jepa a\naction a : [2] real\n", "does not belong in an action declaration"),
    ("input x : [4]\ne = encoder.mlp(x)\n", "a .jepa spec starts with `jepa NAME`"),
    ("jepa a\njepa b\n", "`jepa NAME` is written twice"),
    ("jepa a\nobjective E\nobjective F\n", "`objective` is written twice"),
    ("jepa a\ndims obs = " + "9" * 5000 + "\n", "number with 5,000 digits is too long"),
    ("# only a comment\n", "the spec file is empty"),
    ("jepa a\ne = encoder.mlp(x, h=" + "[" * 70 + "1" + "]" * 70 + ")\n", "brackets nested more than"),
    ("jepa a\ne = encoder.mlp(x))\n", "unmatched `)`"),
    ("jepa a\ne = encoder.mlp(x]\n", "`]` closes `(`"),
    ("jepa a\ninput x : [4]\na = encoder.mlp(x)\ng = a(x)\nh = g(x)\ng2 = h2(x)\n", "which is not a block in this file"),
    ("jepa a\ne = encoder.mlp(x, s=\"\\q\")\n", "bad escape in string"),
    ("jepa a\ndescription \"\\ud800\"\n", "bad escape in string"),  # half a surrogate pair
    ("jepa a\ne = encoder.mlp(x, \"\\q\"=1)\n", "bad escape in string"),
    ("jepa a\nenc = encoder.mlp(x\npred = predictor.mlp(enc)\n", "`(` opened on line 2 is never closed"),
    ("jepa a\ninput x : [4]\nenc = encoder.mlp(x, out=8", "`(` opened on line 3 is never closed"),  # at the end
    ("jepa a\ntrain {\n  steps = 1\n", "`{` opened on line 2 is never closed"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x)\nt = ema(e)\n", "an EMA target is written `ema(block)(inputs, params)`"),
    ("jepa a\nlatent z : [2] ~ l1(0.1) ~ l2(0.1)\n", "a latent has one `~`"),
]
