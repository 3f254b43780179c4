"""Training: objective terms, EMA schedule, stop-gradients and frozen blocks, optimisers and
schedules, latent inference, non-finite detection, collapse monitors, the CLI and plots."""
from __future__ import annotations

import json
import logging
import math

import pytest
import torch

import jepa_graph as jg
from jepa_graph.training.checkpoint import read_checkpoint
from jepa_graph.cli import main
from jepa_graph.training.metrics import collapse_reason, collapse_stats, is_collapsed
from jepa_graph.compiler.model import ema_momentum
from jepa_graph.training.optim import lr_factor
from jepa_graph.training.trainer import NonFiniteLoss, Trainer, resolve_config

from conftest import SPECS, spec_files, spec_path


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine


BASE = """
name: tiny
inputs: {x: {shape: [6]}, x_next: {shape: [6]}}
blocks:
  enc:    {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: 4}}
  target: {kind: encoder, ema_of: enc, in: [x_next], with: {momentum: [0.5, 0.9], schedule: SCHED}}
  pred:   {kind: predictor, type: mlp, in: [enc], with: {hidden: [16], out: 4}}
  E:      {kind: energy, type: l2, in: [pred, target]}
  reg:    {kind: regularizer, type: vicreg, in: [enc]}
objective: {E: 1.0, reg: 0.5}
"""


def tiny(sched="linear", text=None, seed=0):
    return jg.compile(jg.loads(text or BASE.replace("SCHED", sched), "tiny.yaml"), seed=seed)


@pytest.mark.parametrize("sched", ["linear", "cosine"])
def test_ema_targets_follow_their_schedule_after_each_step(sched):
    model = tiny(sched)
    snaps = []

    def grab(tr, step, rec):  # after the optimiser step and the EMA update of `step`
        snaps.append((rec["ema.target"], [p.detach().clone() for p in tr.model.blocks.enc.parameters()],
                      [p.detach().clone() for p in tr.model.blocks.target.parameters()]))

    expect = [p.detach().clone() for p in model.blocks.target.parameters()]
    Trainer(model, steps=4, batch_size=8, lr=0.05, log_every=1, progress=False, callbacks=[grab]).fit()
    for k, (m, src, tgt) in enumerate(snaps):  # the update after step k (from 0) uses m(k / T), as I-JEPA
        assert m == pytest.approx(ema_momentum(sched, 0.5, 0.9, k / 4))
        expect = [m * e + (1 - m) * s for e, s in zip(expect, src)]
        for e, t in zip(expect, tgt):
            assert torch.allclose(e, t, atol=1e-6)
    assert snaps[0][0] != snaps[-1][0]


def test_loss_is_the_weighted_sum_of_logged_terms():
    r = jg.train(tiny(), steps=3, batch_size=8, progress=False, log_every=1)
    for rec in r.history:
        assert rec["loss"] == pytest.approx(rec["E"] + rec["reg"] * 0.5, rel=1e-5)


def test_frozen_blocks_and_stop_gradients_are_untouched():
    text = """
name: frozen
inputs: {x: {shape: [6]}, y: {shape: [6]}}
blocks:
  enc:    {kind: encoder, type: mlp, in: [x], with: {hidden: [8], out: 4}}
  tenc:   {kind: encoder, type: mlp, in: [y], with: {out: 4}, frozen: true}
  side:   {kind: encoder, type: mlp, in: [y], with: {out: 4}}
  pred:   {kind: predictor, type: mlp, in: [enc], with: {out: 4}}
  E:      {kind: energy, type: l2, in: [pred, tenc]}
  E2:     {kind: energy, type: l2, in: [pred, {ref: side, stop_grad: true}]}
objective: {E: 1.0, E2: 1.0}
"""
    model = jg.compile(jg.loads(text, "frozen.yaml"), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    jg.train(model, steps=3, batch_size=8, lr=0.1, progress=False)
    after = model.state_dict()
    for k in before:
        changed = not torch.equal(before[k], after[k])
        assert changed == (k.startswith(("blocks.enc.", "blocks.pred."))), k


def test_lr_schedule_warmup_then_cosine_and_sgd():
    cfg = resolve_config(tiny(), steps=10, lr=0.1, warmup=2, final_lr=0.01, optimizer="sgd")
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.lr == 0.1
    assert [round(lr_factor(s, cfg), 4) for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(5, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 7)))
    assert lr_factor(9, cfg) == pytest.approx(0.1)  # final_lr / lr at the last step
    r = jg.train(tiny(), steps=10, batch_size=8, lr=0.1, warmup=2, final_lr=0.01, optimizer="sgd",
                 progress=False, log_every=1)
    lrs = [h["lr"] for h in r.history]
    assert lrs[:2] == pytest.approx([0.05, 0.1]) and lrs[-1] == pytest.approx(0.01)
    assert lrs[1:] == sorted(lrs[1:], reverse=True)


def test_gradient_clipping_bounds_the_norm():
    norms = []
    model = tiny()
    clip = 1e-3
    cb = lambda tr, s, rec: norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in tr.params])))
    jg.train(model, steps=3, batch_size=8, grad_clip=clip, progress=False, callbacks=[cb])
    assert max(norms) <= clip * (1 + 1e-4)


def test_overrides_are_validated(monkeypatch):
    with pytest.raises(jg.SpecError, match="train.optimizer.lr"):
        resolve_config(tiny(), lr=-1.0)
    from jepa_graph.runtime import distributed
    monkeypatch.setattr(distributed, "setup", lambda: (0, 3, 0))  # as if under torchrun with 3 ranks
    with pytest.raises(jg.SpecError, match="batch_size=7 does not split over 3 processes"):
        Trainer(tiny(), batch_size=7, progress=False)


def test_latents_are_inferred_for_each_batch(monkeypatch):
    from jepa_graph.inference.latents import EnergyFn  # what every search scores its candidates with
    model = jg.compile(SPECS / "fork.jepa", seed=0)
    seen = []
    real = EnergyFn.__call__

    def spy(self, zs):
        if "z" in zs:
            seen.append(zs["z"].detach().clone())
        return real(self, zs)

    monkeypatch.setattr(EnergyFn, "__call__", spy)
    r = jg.train(model, "fork", steps=30, batch_size=64, lr=3e-3, progress=False)
    assert seen and all(((z == 0) | (z == 1)).all() for z in seen)  # one-hot candidates were scored
    assert r.losses[-1] < 0.5 * r.losses[0]


def test_non_finite_loss_names_the_block_and_keeps_the_checkpoint(tmp_path):
    model = tiny()

    def poison(tr, step, rec):
        if step == 3:
            with torch.no_grad():
                next(tr.model.blocks.pred.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLoss, match=r"tiny.yaml:\d+:\d+: training stopped at step 4: loss is nan; "
                                            r"block `pred` first produced a non-finite value; last good checkpoint"):
        Trainer(model, out=tmp_path, steps=10, batch_size=8, checkpoint_every=2, progress=False,
                tensorboard=False, callbacks=[poison]).fit()
    assert read_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_nan_during_latent_inference_names_step_block_and_checkpoint(tmp_path):
    model = jg.compile(SPECS / "fork.jepa", seed=0)

    def poison(tr, step, rec):
        if step == 2:
            with torch.no_grad():
                next(tr.model.blocks.predictor.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLoss, match=r"fork.jepa:\d+:\d+: training stopped at step 3: latent inference failed: "
                                            r".*block `predictor`.*; the weights of block `predictor` are non-finite"
                                            r".*; last good checkpoint: .*last.pt"):
        Trainer(model, "fork", out=tmp_path, steps=6, batch_size=8, checkpoint_every=2, progress=False,
                tensorboard=False, callbacks=[poison]).fit()
    assert read_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_collapse_monitor_and_warning(caplog):
    assert is_collapsed(collapse_stats(torch.ones(32, 8)))
    assert not is_collapsed(collapse_stats(torch.randn(32, 8)))
    line = torch.randn(32, 1) * torch.ones(1, 8)  # every sample on one line: rank 1
    assert collapse_stats(line)["erank"] == pytest.approx(1.0, abs=1e-3) and is_collapsed(collapse_stats(line))
    model = tiny()
    with torch.no_grad():
        for p in model.blocks.enc.parameters():
            p.zero_()
    model.blocks.enc.requires_grad_(False)  # a dead encoder: every representation is 0
    with caplog.at_level(logging.WARNING, logger="jepa_graph.training"):
        r = jg.train(model, steps=2, batch_size=8, monitor_every=1, progress=False)
    assert r.collapsed and "collapsing" in caplog.text
    assert r.history[0]["collapse.enc.std"] == 0.0


def test_partial_collapse_is_flagged():
    g = torch.Generator().manual_seed(0)
    low_rank = torch.randn(256, 4, generator=g) @ torch.randn(4, 128, generator=g)  # 128-d, spans 4 dims
    s = collapse_stats(low_rank)
    assert s["std"] > 0.1 and s["erank"] > 1.5  # the absolute floors miss it
    assert "under 10% of the attainable 128" in collapse_reason(s)
    half_dead = torch.randn(256, 32, generator=g) * torch.tensor([1.0] * 12 + [1e-4] * 20)  # 20 of 32 dims ~0
    s = collapse_stats(half_dead)
    assert s["dead"] == pytest.approx(20 / 32) and "62% of the 32 dimensions are dead" in collapse_reason(s)
    # healthy: full rank, and a 2-D world seen through 32 dims (two_rooms' state: low rank by nature)
    assert collapse_reason(collapse_stats(torch.randn(256, 128, generator=g))) is None
    world = torch.rand(256, 2, generator=g) @ torch.randn(2, 32, generator=g)
    assert collapse_reason(collapse_stats(torch.tanh(world + 0.05 * torch.randn(256, 32, generator=g)))) is None
    assert collapse_reason(collapse_stats(torch.randn(4, 128, generator=g))) is None  # 4 rows: rank <= 3 is all there is


@pytest.mark.parametrize("spec", ["two_rooms", "ijepa", "vicreg", "vjepa"])
def test_collapse_warning_stays_quiet_on_healthy_shipped_specs(spec, caplog):
    model = jg.compile(spec_path(spec), seed=0)
    with caplog.at_level(logging.WARNING, logger="jepa_graph.training"):
        r = jg.train(model, steps=6, batch_size=32, monitor_every=3, progress=False, tensorboard=False)
    assert not r.collapsed and "collapsing" not in caplog.text
    assert all(h[k] < 0.5 for h in r.history for k in h if k.endswith(".dead"))


def test_bf16_autocast_runs():
    r = jg.train(tiny(), steps=2, batch_size=8, precision="bf16", progress=False)
    assert all(math.isfinite(x) for x in r.losses)


def test_user_dataset_with_names():
    xs = torch.randn(40, 6)
    ds = torch.utils.data.TensorDataset(xs, xs.roll(1, 0))
    r = jg.train(tiny(), ds, names=["x", "x_next"], steps=3, batch_size=8, progress=False)
    assert len(r.losses) == 3
    with pytest.raises(jg.SpecError, match=r"input `x_next` is missing") as e:
        jg.train(tiny(), {"x": xs}, steps=1, batch_size=8, progress=False)
    assert e.value.first.loc is not None and e.value.first.hint == "add `x_next` [B, 6] to the batch"


def test_cli_train_resume_and_plot(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(BASE.replace("SCHED", "linear") + "train: {steps: 4, batch_size: 8, log_every: 1}\n")
    out = tmp_path / "run"
    assert main(["train", str(spec), "train.steps=3", "train.lr=3e-3", "--out", str(out), "--no-progress"]) == 0
    assert "tiny: step 3/3" in capsys.readouterr().out
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[0]["lr"] == pytest.approx(3e-3)
    assert read_checkpoint(out / "last.pt")["extra"]["overrides"] == ["train.steps=3", "train.lr=3e-3"]
    assert main(["train", str(spec), "--out", str(out), "--resume", "--no-progress"]) == 0  # 3 -> 4 steps
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert main(["plot", str(out)]) == 0 and (out / "metrics.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["train", str(spec), "train.optimizer.nme=sgd", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "<command line>:1:" in err and "unknown key `nme`" in err and "did you mean `name`" in err


def test_amortised_latent_encoder_is_trained():
    text = jg.format_spec(SPECS / "fork.jepa", to="yaml")  # edited as YAML text
    text = text.replace("inference: {method: enumerate}}", "inference: {method: enumerate}, encoder: zenc}")
    text = text.replace("blocks:\n", "blocks:\n  xy:   {kind: op, type: concat, in: [x, y]}\n"
                                     "  zenc: {kind: encoder, type: mlp, in: [xy], with: {hidden: [32], out: 2}}\n", 1)
    model = jg.compile(jg.loads(text, "fork_amortised.yaml"), seed=0)
    before = [p.clone() for p in model.blocks.zenc.parameters()]
    r = jg.train(model, "fork", steps=120, batch_size=64, lr=3e-3, log_every=10, progress=False)
    ce = [h["latent_encoder"] for h in r.history]  # rises while the two branches separate, then falls
    assert ce[-1] < 0.5 * max(ce)
    assert not any(torch.equal(a, b) for a, b in zip(before, model.blocks.zenc.parameters()))


@pytest.mark.parametrize("spec", [p.name for p in spec_files()
                                  if (t := jg.load(p).train) is not None and t.data is not None])
def test_every_spec_trains_on_its_data_source(spec, tmp_path):
    model = jg.compile(SPECS / spec, seed=0)
    r = jg.train(model, steps=2, batch_size=4, out=tmp_path, progress=False, tensorboard=False)
    assert r.step == 2 and all(math.isfinite(x) for x in r.losses) and (tmp_path / "last.pt").exists()


@pytest.mark.parametrize("over,msg", [
    ({"steps": True}, "`train.steps` is `true`, not a number"),
    ({"batch_size": "64"}, "`train.batch_size`: `64` is text, not a number"),
    ({"lr": True}, "`train.optimizer.lr`: `true` is not a number"),
    ({"grad_clip": "1.0"}, "`train.grad_clip`: `1.0` is text, not a number"),
])
def test_booleans_and_text_are_not_numbers(over, msg):
    with pytest.raises(jg.SpecError, match=msg.replace("(", r"\(")):
        resolve_config(tiny(), **over)
    cfg = resolve_config(tiny(), steps=3, lr=1, final_lr="1e-5")  # ints are fine floats; so is `1e-5` text
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float) and cfg.schedule.final_lr == 1e-5


def test_a_warmup_as_long_as_the_run_is_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="jepa_graph"):
        Trainer(tiny(), steps=5, warmup=5, batch_size=8, progress=False)
    assert "train.schedule.warmup=5 is not shorter than train.steps=5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jepa_graph"):
        Trainer(tiny(), steps=150, warmup=100, batch_size=8, progress=False)  # steps cut, warm-up kept
    assert "train.schedule.warmup=100 is 67% of train.steps=150: most of the run is warm-up" in caplog.text
    assert "not scaled" in caplog.text and "train.warmup=15" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jepa_graph"):
        Trainer(tiny(), steps=10, warmup=5, batch_size=8, progress=False)
    assert "warmup" not in caplog.text


def test_final_lr_above_lr_is_refused_unless_the_schedule_is_constant():
    with pytest.raises(jg.SpecError, match=r"final_lr=0.5 is above the peak rate train.optimizer.lr=0.1"):
        Trainer(tiny(), lr=0.1, final_lr=0.5, batch_size=8, progress=False)
    Trainer(tiny(), lr=0.1, final_lr=0.5, schedule={"kind": "constant"}, batch_size=8, progress=False)


def test_metrics_reader_skips_a_torn_last_line_only(tmp_path, capsys):
    from jepa_graph.training.metrics import read_metrics
    r = jg.train(tiny(), steps=2, batch_size=8, log_every=1, out=tmp_path, progress=False, tensorboard=False)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 0.')  # the run killed mid-write (or still writing)
    assert [x["step"] for x in read_metrics(tmp_path)] == [1, 2] and r.step == 2
    assert main(["plot", str(tmp_path)]) == 0 and "wrote" in capsys.readouterr().out
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "metrics.jsonl").write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(jg.SpecError, match=r"metrics.jsonl:2:2: error: line 2 of the metrics log is not JSON"):
        read_metrics(tmp_path)


def test_running_out_of_memory_in_a_step_says_to_lower_the_batch(monkeypatch):
    model = tiny()

    def oom(*args):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(model.blocks.pred, "forward", oom)
    with pytest.raises(jg.BlockRuntimeError, match=r"block `pred` .* out of memory.*\(out of memory at "
                                                   r"train.batch_size=8: lower it\)"):
        jg.train(model, steps=1, batch_size=8, progress=False)
