"""`jepa-graph train` input handling: overrides against either spelling of `train:`, options
between overrides, unusable devices, data that does not fit the spec, failing blocks, resuming
into another spec's run folder. Bad input is a located error and exit 2, never a traceback."""
from __future__ import annotations

import json
import logging
import re

import pytest
import torch

import jepa_graph as jg
from jepa_graph.training.checkpoint import read_checkpoint
from jepa_graph.cli import main
from jepa_graph.frontend.overrides import load_with_overrides
from jepa_graph.training.trainer import Trainer, resolve_config

from conftest import SPECS


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine


FORK = jg.format_spec(SPECS / "fork_no_latent.jepa", to="yaml")  # small, no latent, its own `fork` data source
TRAIN = "train: {steps: 600, batch_size: 64, optimizer: {lr: 0.003}, data: fork}"
assert TRAIN in FORK
SHORT = "train: {steps: 1, batch_size: 8, log_every: 1, lr: 1.0e-3, warmup: 100, data: fork}"
LONG = "train: {steps: 1, batch_size: 8, log_every: 1, optimizer: {lr: 1.0e-3}, schedule: {warmup: 100}, data: {source: fork}}"


def spec_file(tmp_path, train: str, text: str = FORK):
    path = tmp_path / "fork.yaml"
    path.write_text(text.replace(TRAIN, train))
    return path


def train_cli(spec, *args) -> int:
    """`jepa-graph train SPEC ARGS`; the run folder defaults to one beside the spec, never the repo's runs/."""
    out = [] if "--out" in args else ["--out", str(spec.parent / "run")]
    return main(["train", str(spec), *args, *out, "--no-progress"])


def first_lr(out) -> float:
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["lr"]


@pytest.mark.parametrize("train", [SHORT, LONG], ids=["spec shorthand", "spec long form"])
@pytest.mark.parametrize("overrides,lr", [
    (["train.optimizer.lr=0.5", "train.schedule.warmup=0"], 0.5),  # long form overrides
    (["train.lr=0.25", "train.warmup=0"], 0.25),  # shorthand overrides
    (["train.lr=0.25", "train.optimizer.lr=0.5", "train.warmup=0"], 0.5),  # the last one given wins
])
def test_overrides_win_whichever_spelling_either_side_uses(tmp_path, train, overrides, lr):
    out = tmp_path / "run"
    assert train_cli(spec_file(tmp_path, train), *overrides, "--out", str(out)) == 0
    assert first_lr(out) == pytest.approx(lr)  # warm-up 0: step 1 runs at the peak rate


@pytest.mark.parametrize("train", [SHORT, LONG], ids=["data: NAME", "data: {source: NAME}"])
def test_data_overrides_reach_the_source(tmp_path, train):
    out = tmp_path / "run"
    for over in (["train.data.with.noise=0.0"], ["train.data.with={noise: 0.0}"],
                 ["train.data.source=fork", "train.data.with.noise=0.0"],
                 ["train.data=fork", "train.data.with.noise=0.0"]):
        assert train_cli(spec_file(tmp_path, train), *over, "--out", str(out)) == 0, over
        cfg = read_checkpoint(out / "last.pt")["extra"]["config"]
        assert cfg["data"] == {"source": "fork", "params": {"noise": 0.0}, "rename": {}}, over


def test_a_bad_data_override_is_located_on_the_command_line(tmp_path, capsys):
    assert train_cli(spec_file(tmp_path, SHORT), "train.data.with.noise=-1") == 2
    err = capsys.readouterr().err
    assert "not a mapping" not in err and "Traceback" not in err
    assert re.search(r"<command line>:1:\d+: error: data source `fork`: `noise`", err)


def test_shorthand_errors_keep_their_place_in_the_file(tmp_path, capsys):
    spec = spec_file(tmp_path, SHORT.replace("lr: 1.0e-3", "lr: -1"))
    assert train_cli(spec, "train.steps=2") == 2
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(spec.read_text().splitlines(), 1) if t.startswith("train:"))
    col = spec.read_text().splitlines()[line - 1].index("-1") + 1
    assert err.startswith(f"{spec}:{line}:{col}: error: `train.optimizer.lr`"), err


def test_one_setting_spelled_twice_in_the_file_is_an_error(tmp_path, capsys):
    spec = spec_file(tmp_path, SHORT.replace("lr: 1.0e-3", "lr: 1.0e-3, optimizer: {lr: 0.5}"))
    assert train_cli(spec) == 2
    err = capsys.readouterr().err
    assert re.search(r"fork.yaml:\d+:\d+: error: `train.lr` and `train.optimizer.lr` both set", err)
    assert "hint: keep one" in err
    with pytest.raises(jg.SpecError, match="`lr` and `optimizer.lr` both set"):  # the Python path too
        jg.loads(spec.read_text(), "fork.yaml")


def test_overrides_may_follow_options(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(spec_file(tmp_path, SHORT)), "--out", str(out), "train.steps=2",
                 "--no-progress", "train.lr=0.125", "train.warmup=0"]) == 0
    assert "step 2/2" in capsys.readouterr().out and first_lr(out) == pytest.approx(0.125)


def test_betas_need_two_numbers(tmp_path, capsys):
    assert train_cli(spec_file(tmp_path, SHORT), "train.optimizer.betas=[0.9]") == 2
    err = capsys.readouterr().err
    assert "betas needs two numbers, e.g. [0.9, 0.999]" in err and "missing" not in err
    assert err.startswith("<command line>:1:")


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_an_unusable_device_is_located_at_the_override(tmp_path, capsys, no_gpu, device):
    assert train_cli(spec_file(tmp_path, SHORT), f"train.device={device}") == 2
    err = capsys.readouterr().err
    assert re.match(r"<command line>:1:\d+: error: train.device=\S+: no (CUDA|MPS)", err), err
    assert "hint: use train.device=cpu, or train.device=auto" in err and "Traceback" not in err


def test_an_unusable_device_is_located_at_the_spec_line(tmp_path, capsys, no_gpu):
    spec = spec_file(tmp_path, SHORT.replace("steps: 1,", "steps: 1, device: cuda,"))
    assert train_cli(spec) == 2
    line = next(i for i, t in enumerate(spec.read_text().splitlines(), 1) if t.startswith("train:"))
    assert capsys.readouterr().err.startswith(f"{spec}:{line}:"), "points at `device: cuda`"


def test_a_present_gpu_is_accepted(monkeypatch):
    from jepa_graph.training.trainer import check_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda")
    check_device("cuda:1")
    with pytest.raises(jg.SpecError, match=r"no `cuda:2`: this machine has 2 CUDA device\(s\)"):
        check_device("cuda:2")


def test_data_that_does_not_fit_the_spec_names_input_shapes_and_source(tmp_path, capsys):
    # fork_no_latent's obs is 4-d; two_rooms yields 2-d states (x_next renamed to the spec's y)
    spec = spec_file(tmp_path, SHORT)
    assert train_cli(spec, "train.data=two_rooms", "train.data.rename={x_next: y}") == 2
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(spec.read_text().splitlines(), 1) if t.startswith("  x:"))
    assert err.startswith(f"{spec}:{line}:3: error: input `x` should be [B, 4], got [8, 2]"), err
    assert "note: data source `two_rooms` at <command line>:1:" in err and "mat1" not in err


def test_first_batch_check_covers_dtypes_and_python_data():
    model = jg.compile(SPECS / "fork_no_latent.jepa", seed=0)
    x = torch.randn(16, 4)
    with pytest.raises(jg.SpecError, match=r"input `y` should be \[B, 4\], got \[8, 3\]"):
        Trainer(model, {"x": x, "y": torch.randn(16, 3)}, steps=1, batch_size=8, progress=False).fit()
    with pytest.raises(jg.SpecError, match=r"input `y` holds float values \(\[B, 4\]\), got a torch.int64 tensor"):
        Trainer(model, {"x": x, "y": torch.zeros(16, 4, dtype=torch.long)}, steps=1, batch_size=8, progress=False).fit()
    with pytest.raises(jg.SpecError, match=r"input `x` is torch.float64 but the weights of `fork_no_latent` are torch.float32"):
        Trainer(model, {"x": x.double(), "y": x.double()}, steps=1, batch_size=8, progress=False).fit()


def test_first_batch_is_checked_once(monkeypatch):
    import jepa_graph.training.trainer as training
    model = jg.compile(SPECS / "fork_no_latent.jepa", seed=0)
    tr = Trainer(model, {"x": torch.randn(16, 4), "y": torch.randn(16, 4)}, steps=3, batch_size=8, progress=False)
    calls = []
    real = training.check_batch
    monkeypatch.setattr(training, "check_batch", lambda t, b: calls.append(1) or real(t, b))
    tr.fit()
    assert calls == [1]


def test_a_block_failing_inside_a_training_step_is_named(monkeypatch):
    model = jg.compile(SPECS / "fork_no_latent.jepa", seed=0)

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(model.blocks.predictor, "forward", broken)
    with pytest.raises(jg.BlockRuntimeError, match=r"fork_no_latent.jepa:\d+:\d+: block `predictor` \(predictor.mlp\) "
                                                   r"failed at training step 1: RuntimeError: boom"):
        jg.train(model, "fork", steps=2, batch_size=8, progress=False)


def test_resuming_into_another_specs_run_gives_a_hint_for_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_cli(spec_file(tmp_path, SHORT), "--out", str(out)) == 0
    wider = FORK.replace("state: 8", "state: 16")
    assert train_cli(spec_file(tmp_path, SHORT, wider), "--out", str(out), "--resume") == 2
    err = capsys.readouterr().err
    assert "checkpoint was written for spec `fork_no_latent`" in err
    assert "different --out" in err and "drop --resume" in err and "strict_spec" not in err
    model = jg.compile(jg.loads(wider.replace(TRAIN, SHORT), "fork.yaml"))
    with pytest.raises(jg.SpecError, match=r"hint: .*out=\.\.\..*resume=False") as e:  # the Python API's words
        Trainer(model, out=out, resume=True, progress=False)
    assert "strict_spec" not in str(e.value)


# (spec file, overrides, the error's start): every bad `train:` value is a located error, exit 2, with a hint
VICREG = SPECS / "vicreg.jepa"
IJEPA = SPECS / "ijepa.jepa"
BAD_TRAIN = [
    (None, ["train.optimizer.betas=[2,0.5]"], r"<command line>:1:\d+: error: train.optimizer.betas: beta 1 is 2.0"),
    ("batch_size: 64, optimizer: {lr: 0.003, betas: [0.9, 1.5]}", [],
     r"\S+fork.yaml:\d+:\d+: error: train.optimizer.betas: beta 2 is 1.5"),
    (None, ["train.batch_size=8", "train.data.with.paired=true", "train.batch_size=7"],
     r"<command line>:1:\d+: error: train.batch_size=7: data source `fork` needs an even batch per process"),
    (None, ["train.batch_size=100000000000"], r"<command line>:1:\d+: error: `train.batch_size`: input should be "
                                               r"less than or equal to 16777216"),
    (None, ["train.steps=true"], r"<command line>:1:\d+: error: `train.steps` is `true`, not a number"),
    (None, ["train.lr=true"], r"<command line>:1:\d+: error: `train.optimizer.lr`: `true` is not a number"),
    (None, ["train.batch_size=true"], r"<command line>:1:\d+: error: `train.batch_size` is `true`, not a number"),
    (None, ["train.warmup=1e3"], r"<command line>:1:\d+: error: `train.schedule.warmup`: `1e3` is not a whole number"),
    ('batch_size: "64", optimizer: {lr: 0.003}', [],
     r"\S+fork.yaml:\d+:\d+: error: `train.batch_size`: `64` is text, not a number"),
    (VICREG, ["train.batch_size=1"], r"<command line>:1:\d+: error: train.batch_size=1, but regulariser `vicreg` "
                                     r"\(vicreg\) takes statistics over the batch"),
    (IJEPA, ["train.data.with.target_scale=[0.9,0.1]"],
     r"<command line>:1:\d+: error: data source `shapes`: `target_scale`: \[0.9, 0.1\] is a \[lo, hi\] range"),
    (IJEPA, ["train.data.with.target_scale=[2,3]"],
     r"<command line>:1:\d+: error: data source `shapes`: `target_scale`: \[2, 3\] are fractions of the frame"),
    (None, ["train.schedule.final_lr=0.5"], r"<command line>:1:\d+: error: train.schedule.final_lr=0.5 is above "
                                            r"the peak rate train.optimizer.lr=0.003"),
    (None, ["train.data.with.noise=true"],
     r"<command line>:1:\d+: error: data source `fork`: `noise`: `true` is not a number"),
]


@pytest.mark.parametrize("spec,overrides,error", BAD_TRAIN, ids=[" ".join(b[1]) or f"spec {b[0]}" for b in BAD_TRAIN])
def test_bad_train_values_are_located_errors(tmp_path, capsys, spec, overrides, error):
    if spec is None or isinstance(spec, str):  # the fork spec, its `train:` edited in the file
        spec = spec_file(tmp_path, TRAIN.replace("batch_size: 64, optimizer: {lr: 0.003}", spec) if spec else TRAIN)
    assert train_cli(spec, "train.steps=1", *overrides, "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert re.match(error, err), err
    assert "\nhint: " in err and "Traceback" not in err and not (tmp_path / "run" / "last.pt").exists()


def test_batch_stat_regularizers_need_two_samples_in_the_global_batch(monkeypatch):
    from jepa_graph.runtime import distributed
    model = jg.compile(SPECS / "vicreg.jepa", seed=0)
    with pytest.raises(jg.SpecError, match=r"batch_size=1, but regulariser `vicreg` \(vicreg\)") as e:
        Trainer(model, batch_size=1, steps=1, progress=False)
    assert "use train.batch_size=2 or more" in str(e.value)
    monkeypatch.setattr(distributed, "setup", lambda: (0, 2, 0))  # as if under torchrun with 2 ranks
    monkeypatch.setattr(distributed, "wrap_ddp", lambda module, device: module)
    Trainer(model, batch_size=2, steps=1, progress=False)  # one sample per rank: VICReg gathers both


def test_lr_in_exponent_form_loads_from_yaml_and_the_command_line(tmp_path):
    spec = spec_file(tmp_path, SHORT.replace("lr: 1.0e-3", "lr: 3e-4").replace("warmup: 100", "warmup: 0"))
    assert jg.load(spec).train.optimizer.lr == 3e-4  # PyYAML reads `3e-4` as text
    out = tmp_path / "run"
    assert train_cli(spec, "--out", str(out)) == 0 and first_lr(out) == pytest.approx(3e-4)
    assert train_cli(spec, "train.lr=5e-4", "--out", str(out)) == 0 and first_lr(out) == pytest.approx(5e-4)


@pytest.mark.parametrize("over", ["train.optimizer=sgd", "train.optimizer.name=sgd"])
def test_a_name_override_keeps_the_sections_other_settings(over):
    spec = load_with_overrides(str(SPECS / "fork.jepa"), [over])  # fork.jepa: optimizer={lr=0.003}
    assert spec.train.optimizer.name == "sgd" and spec.train.optimizer.lr == 0.003


def test_naming_another_data_source_drops_the_old_ones_parameters(tmp_path):
    spec = spec_file(tmp_path, SHORT.replace("data: fork", "data: {source: fork, with: {noise: 0.0}, rename: {a: b}}"))
    same = load_with_overrides(str(spec), ["train.data=fork"]).train.data
    assert same.source == "fork" and same.params == {"noise": 0.0} and same.rename == {"a": "b"}
    other = load_with_overrides(str(spec), ["train.data=two_rooms", "train.data.with.episodes=4"]).train.data
    assert other.source == "two_rooms" and other.params == {"episodes": 4} and other.rename == {}
    model = jg.compile(jg.load(spec))  # the Python API: a new source starts from its defaults too
    assert resolve_config(model, {"data": "two_rooms"}).data.params == {}
    assert resolve_config(model, {"data": {"with": {"noise": 0.5}}}).data.params == {"noise": 0.5}


def test_resuming_past_train_steps_is_an_error_that_keeps_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    spec = spec_file(tmp_path, SHORT)
    assert train_cli(spec, "train.steps=3", "--out", str(out)) == 0
    capsys.readouterr()
    assert train_cli(spec, "train.steps=2", "--out", str(out), "--resume") == 2
    err = capsys.readouterr().err
    assert re.match(r"<command line>:1:\d+: error: \S+last.pt is at step 3, past train.steps=2", err), err
    assert "hint: set train.steps above 3" in err
    assert read_checkpoint(out / "last.pt")["step"] == 3


def test_a_first_batch_that_does_not_fit_in_memory_points_at_batch_size(tmp_path, capsys, monkeypatch):
    from jepa_graph.data.fork_source import ForkSource

    def huge(self, n, gen):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 409600000000 bytes.")

    monkeypatch.setattr(ForkSource, "sample", huge)
    assert train_cli(spec_file(tmp_path, SHORT), "train.batch_size=16000000") == 2
    err = capsys.readouterr().err
    assert re.match(r"<command line>:1:\d+: error: the first batch of train.batch_size=16000000 samples from "
                    r"data source `fork` does not fit in memory", err), err
    assert "hint: lower train.batch_size" in err


def test_training_on_example_inputs_says_so(tmp_path, caplog):
    spec = spec_file(tmp_path, "train: {steps: 1, batch_size: 8}")  # no data source
    with caplog.at_level(logging.WARNING):
        assert train_cli(spec) == 0
    warned = [r for r in caplog.records if "random example inputs" in r.getMessage()]
    assert warned and warned[0].levelno == logging.WARNING and warned[0].name.startswith("jepa_graph")
    assert "train.data" in warned[0].getMessage() and "two_rooms" in warned[0].getMessage()
    assert logging.getLogger("jepa_graph").getEffectiveLevel() <= logging.WARNING  # what the CLI shows
