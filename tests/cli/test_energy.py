"""`jepa-graph energy` on bad command lines: a message and exit 2, never a traceback.

Each row is one mistake a user can make on the command line; the landscape helpers refuse the
same mistakes when called from Python.
"""
from __future__ import annotations

import re

import pytest
import torch

import jepa_graph as jg
from conftest import SPECS
from jepa_graph.cli import main
from jepa_graph.inference.landscape import energy_along, latent_landscape

FORK, ROOMS, SEED = str(SPECS / "fork.jepa"), str(SPECS / "two_rooms.yaml"), str(SPECS / "seed_world_model.yaml")

BAD = {
    # name: (arguments after `energy`, message regex)
    "dims not numbers": ([ROOMS, "--dims", "abc"], r"`--dims abc` is not a list of coordinates"),
    "dims out of range": ([ROOMS, "--dims", "0,9"], r"`dims` picks 1 or 2 of the 2 coordinates of `z` \(all different\)"),
    "dims repeated": ([ROOMS, "--dims", "0,0"], r"got \[0, 0\]"),
    "lim reversed": ([ROOMS, "--lim", "3", "-3"], r"LO < HI, got 3 -3"),
    "sample past the batch": ([ROOMS, "--sample", "99"], r"sample 99 is not in the batch of 8 samples"),
    "negative sample": ([FORK, "--sample", "-1"], r"sample -1 is not in the batch of 8 samples"),
    "between past the batch": ([FORK, "--along", "y", "--between", "0", "99"],
                               r"--between 99 is not in the batch of 8 samples"),
    "negative between": ([FORK, "--along", "y", "--between", "-1", "-2"], r"--between -1 is not in the batch"),
    "with value not YAML": ([FORK, "--with", "paired=["], r"`--with paired=\[`: invalid YAML"),
    "with without =": ([FORK, "--with", "paired"], r"`--with paired` is not KEY=VALUE"),
    "unknown data parameter": ([FORK, "--with", "nosuch=1"], r"data source `fork`: `nosuch`"),
    "unknown data source": ([FORK, "--data", "nosuch"], r"unknown data source `nosuch`"),
    "unknown latent": ([FORK, "--over", "zz"], r"`zz` is not a latent of `fork`"),
    "unknown input for --along": ([FORK, "--along", "nosuch"], r"`nosuch` is not in the batch"),
    "missing checkpoint": ([FORK, "--checkpoint", "{tmp}/missing.pt"], r"no such checkpoint"),
    "garbage checkpoint": ([FORK, "--checkpoint", "{tmp}/garbage.pt"], r"."),
    "missing spec": (["{tmp}/nosuch.yaml"], r"no such spec file"),
    "no latent, names its real inputs": ([SEED], r"has no latent.*\n.*--along x_next"),
}


@pytest.mark.parametrize("args,match", list(BAD.values()), ids=list(BAD))
def test_bad_energy_command_lines_exit_2_with_a_message(args, match, tmp_path, capsys):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint\n")
    argv = ["energy"] + [a.replace("{tmp}", str(tmp_path)) for a in args] + ["-o", str(tmp_path / "e.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(match, err), err
    assert not (tmp_path / "e.png").exists()  # nothing drawn from a bad command line


def test_python_helpers_refuse_the_same_mistakes():
    model = jg.compile(ROOMS, seed=0)
    batch = {k: v for k, v in model.example_inputs(4, name="energy").items() if k != "z"}
    with pytest.raises(jg.SpecError, match="sample 4 is not in the batch of 4 samples"):
        latent_landscape(model, batch, "z", sample=4)
    with pytest.raises(jg.SpecError, match=r"got \[1, 1\]"):
        latent_landscape(model, batch, "z", dims=(1, 1))
    with pytest.raises(jg.SpecError, match="LO < HI"):
        latent_landscape(model, batch, "z", lim=(1.0, 1.0))
    a, b = batch["x_next"][0], batch["x_next"][1]
    with pytest.raises(jg.SpecError, match="sample -1 is not in the batch"):
        energy_along(model, batch, "x_next", a, b, sample=-1)
    # and a good call still gives a finite curve whose minimum is where it says
    land = latent_landscape(model, batch, "z", dims=(1,), resolution=21)
    assert land.kind == "curve" and land.energy.shape == (21,) and torch.isfinite(land.energy).all()


def test_random_inputs_leave_the_latent_to_the_search(tmp_path, capsys):
    # lecun_agent has a latent and no data source: the random batch must not fill the latent in
    out = tmp_path / "agent.png"
    assert main(["energy", str(SPECS / "lecun_agent.jepa"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "random example inputs" in text and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_along_hint_offers_only_observed_float_inputs(tmp_path, capsys):
    # h_jepa: inputs x, x_next, x_far and actions a, a2 feed the energy; a line makes sense for the inputs
    assert main(["energy", str(SPECS / "h_jepa.jepa"), "-o", str(tmp_path / "h.png")]) == 2
    err = capsys.readouterr().err
    assert "--along x or --along x_next or --along x_far" in err and "--along a" not in err


def test_plot_of_a_run_with_no_records_yet_says_what_to_do(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text("")
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no records yet" in err and "hint: `jepa-graph train` writes one every `train.log_every` steps" in err
