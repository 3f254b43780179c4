"""Checkpoints: round trip, atomic writes, weights_only loading, spec mismatch, and exact resume
after SIGKILL (bit-identical losses on CPU)."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

import jepa_graph as jg
from jepa_graph.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, spec_hash
from jepa_graph.training.trainer import Trainer

from conftest import ROOT

TINY = """
name: tiny_ema
inputs: {x: {shape: [6]}, x_next: {shape: [6]}}
blocks:
  enc:    {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: 4}}
  target: {kind: encoder, ema_of: enc, in: [x_next], with: {momentum: [0.9, 1.0]}}
  pred:   {kind: predictor, type: mlp, in: [enc], with: {hidden: [16], out: 4}}
  E:      {kind: energy, type: l2, in: [pred, target]}
  reg:    {kind: regularizer, type: vicreg, in: [enc]}
objective: {E: 1.0, reg: 0.1}
train: {steps: 12, batch_size: 8, log_every: 2, checkpoint_every: 4, lr: 0.01, warmup: 2}
"""


def _tiny(text: str = TINY, seed: int = 0):
    return jg.compile(jg.loads(text, "tiny.yaml"), seed=seed)


def test_round_trip_restores_weights_ema_optimizer_scheduler_rng(tmp_path):
    tr = Trainer(_tiny(), progress=False, steps=5)
    tr.fit()
    path = save_checkpoint(tmp_path / "c.pt", tr.model, tr.optimizer, tr.scheduler, step=5, extra={"note": "x"})
    after_save = torch.rand(3)
    tr2 = Trainer(_tiny(seed=1), progress=False, steps=5)
    assert not torch.equal(next(tr2.model.blocks.target.parameters()), next(tr.model.blocks.target.parameters()))
    info = load_checkpoint(path, tr2.model, tr2.optimizer, tr2.scheduler)
    assert torch.equal(torch.rand(3), after_save)  # RNG restored to the moment of saving
    assert info["step"] == 5 and info["extra"]["note"] == "x"
    for (k, a), b in zip(tr.model.state_dict().items(), tr2.model.state_dict().values()):
        assert torch.equal(a, b), k  # includes the EMA target
    assert tr2.optimizer.state_dict()["state"].keys() == tr.optimizer.state_dict()["state"].keys()
    assert tr2.scheduler.last_epoch == tr.scheduler.last_epoch == 5
    assert "tiny_ema" in info["spec_text"] and info["spec_hash"] == spec_hash(tr.model.spec)


def test_write_is_atomic(tmp_path, monkeypatch):
    model = _tiny()
    path = save_checkpoint(tmp_path / "c.pt", model, step=1)
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, step=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary file left


def test_spec_mismatch_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _tiny(), step=1)
    other = _tiny(TINY.replace("out: 4}}\n  target", "out: 5}}\n  target").replace("out: 4}}\n  E", "out: 5}}\n  E"))
    with pytest.raises(jg.SpecError, match=r"written for spec `tiny_ema` \(hash [0-9a-f]{12}\), but the model"):
        load_checkpoint(path, other)
    # a changed `train:` section is the same architecture: resuming with more steps is allowed
    longer = _tiny(TINY.replace("steps: 12", "steps: 99"))
    assert load_checkpoint(path, longer)["step"] == 1


def test_loading_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"format": 1, "x": Evil()}, f)
    with pytest.raises(jg.SpecError, match="not a readable jepa-graph checkpoint"):
        read_checkpoint(bad)
    with pytest.raises(jg.SpecError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")


def test_resume_in_process_is_exact(tmp_path):
    ref = Trainer(_tiny(), progress=False).fit().losses
    seen = []

    class Stop(Exception):
        pass

    def stop_at_6(trainer, step, rec):
        seen.append(rec["loss"])
        if step == 6:
            raise Stop

    with pytest.raises(Stop):  # checkpoint at step 4; steps 5 and 6 are lost
        Trainer(_tiny(), out=tmp_path, progress=False, callbacks=[stop_at_6]).fit()
    rest = Trainer(_tiny(seed=5), out=tmp_path, progress=False, resume=True).fit()
    assert rest.losses == ref[4:] and seen == ref[:6]


KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = {paths!r}  # conftest's folder, and this file's
    import jepa_graph as jg
    from jepa_graph.training.trainer import Trainer
    from test_checkpoint import TINY
    out, kill_at = sys.argv[1], int(sys.argv[2])

    def die(trainer, step, rec):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: as if the machine went away

    model = jg.compile(jg.loads(TINY, "tiny.yaml"), seed=0)
    Trainer(model, out=out, progress=False, tensorboard=False, callbacks=[die]).fit()
""")


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLED.format(paths=[str(ROOT / "tests"), str(ROOT / "tests" / "training")]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(script), str(run), "7"], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr  # SIGKILL between the checkpoints at 4 and 8
    assert read_checkpoint(run / "last.pt")["step"] == 4
    resumed = Trainer(_tiny(seed=3), out=run, resume=True, progress=False, tensorboard=False).fit()
    assert resumed.losses and resumed.step == 12

    ref = Trainer(_tiny(), out=tmp_path / "ref", progress=False, tensorboard=False).fit()
    got = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in got] == list(range(2, 13, 2))  # step 6 of the killed run was dropped
    keys = ("loss", "E", "reg", "lr", "ema.target")
    assert [[r[k] for k in keys] for r in got] == [[r[k] for k in keys] for r in ref.history]
    a = torch.load(run / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_drops_metric_lines_past_the_checkpoint_and_torn_lines(tmp_path):
    Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False, steps=12, checkpoint_every=4).fit()
    ck = tmp_path / "last.pt"
    save_checkpoint(ck, *_state_at(tmp_path, 4))
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 13, "loss": 0.')  # torn by a kill mid-write
    tr = Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False, resume=True)
    assert tr.step == 4
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_a_run_from_step_0_starts_its_metrics_over(tmp_path):
    Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False, steps=6, checkpoint_every=100).fit()
    (tmp_path / "last.pt").unlink()  # killed before its first checkpoint
    Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False, steps=4).fit()
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_resume_with_nothing_to_resume_is_an_error(tmp_path):
    Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False, steps=6, checkpoint_every=100).fit()
    (tmp_path / "last.pt").unlink()  # killed before its first checkpoint
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(SpecError, match="nothing to resume: no checkpoint at .*last.pt") as info:
        Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False, resume=True, steps=4).fit()
    assert "drop --resume" in info.value.first.hint
    assert (tmp_path / "metrics.jsonl").read_text() == before  # nothing was trained or rewritten


def _state_at(out, step):
    """A model/optimizer/scheduler at ``step`` of the TINY run (re-run deterministically)."""
    tr = Trainer(_tiny(), progress=False, tensorboard=False, steps=12)
    for s in range(step):
        tr.train_step(tr.next_batch(s))
    return tr.model, tr.optimizer, tr.scheduler, step


def test_resume_applies_changed_optimizer_and_schedule_settings(tmp_path, caplog):
    from jepa_graph.training.optim import lr_factor
    Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False).fit()  # 12 steps at lr 0.01
    lrs = []
    with caplog.at_level("WARNING", logger="jepa_graph.training"):
        tr = Trainer(_tiny(), out=tmp_path, resume=True, progress=False, tensorboard=False, steps=16, lr=0.05,
                     weight_decay=0.2, optimizer={"betas": [0.8, 0.99]},
                     callbacks=[lambda t, s, rec: lrs.append(rec["lr"])])
    assert "resuming at step 12 with changed settings: steps 12 -> 16; optimizer.lr 0.01 -> 0.05; " \
           "optimizer.weight_decay 0.01 -> 0.2; optimizer.betas [0.9, 0.999] -> [0.8, 0.99]" in caplog.text
    decayed, rest = tr.optimizer.param_groups
    assert decayed["weight_decay"] == 0.2 and rest["weight_decay"] == 0.0 and decayed["betas"] == (0.8, 0.99)
    tr.fit()
    assert lrs == pytest.approx([0.05 * lr_factor(s, tr.cfg) for s in range(12, 16)])  # not 0.01 x ...


def test_resume_refuses_another_optimizer_and_a_finished_count(tmp_path):
    Trainer(_tiny(), out=tmp_path, progress=False, tensorboard=False, steps=4).fit()
    with pytest.raises(jg.SpecError, match=r"last.pt was trained with optimizer `adamw`; its state cannot "
                                           r"continue as `sgd`"):
        Trainer(_tiny(), out=tmp_path, resume=True, progress=False, optimizer="sgd")
    with pytest.raises(jg.SpecError, match=r"last.pt is at step 4, past train.steps=2: nothing is left to train"):
        Trainer(_tiny(), out=tmp_path, resume=True, progress=False, steps=2)
    assert read_checkpoint(tmp_path / "last.pt")["step"] == 4
    assert Trainer(_tiny(), out=tmp_path, resume=True, progress=False, steps=4).fit().step == 4  # done already


# ------------------------------------------------------------------ integrity and structure
from jepa_graph.core.atomic import atomic_write  # noqa: E402
from jepa_graph.core.errors import SpecError  # noqa: E402
from jepa_graph.training.checkpoint import content_hash  # noqa: E402
from jepa_graph.training.metrics import MetricsWriter  # noqa: E402


def _saved(tmp_path):
    tr = Trainer(_tiny(), progress=False, steps=3)
    tr.fit()
    return tr, save_checkpoint(tmp_path / "c.pt", tr.model, tr.optimizer, tr.scheduler, step=3)


def test_damaged_checkpoint_is_refused(tmp_path):
    _, path = _saved(tmp_path)
    raw = bytearray(path.read_bytes())
    data = torch.load(path, weights_only=True)
    w = data["model"]["blocks.enc.net.0.weight"] if "blocks.enc.net.0.weight" in data["model"] else \
        max(data["model"].values(), key=lambda t: t.numel())
    at = bytes(raw).find(w.numpy().tobytes()[:64])  # the tensor's bytes, stored as they are in the zip
    assert at > 0
    raw[at:at + 16] = bytes(b ^ 0xFF for b in raw[at:at + 16])
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=True)  # still a loadable file: only the hash can tell
    with pytest.raises(SpecError, match="damaged"):
        read_checkpoint(path)


def test_damaged_middle_of_file_never_loads(tmp_path):
    _, path = _saved(tmp_path)
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid - 2048:mid + 2048] = bytes(b ^ 0x5A for b in raw[mid - 2048:mid + 2048])
    path.write_bytes(bytes(raw))
    with pytest.raises(SpecError, match="damaged|not a readable"):
        read_checkpoint(path)


def _crafted(tmp_path, edit):
    """A checkpoint edited by hand, with a fresh hash so only the structure check can catch it."""
    tr, path = _saved(tmp_path)
    data = torch.load(path, weights_only=True)
    data.pop("sha256")
    edit(data)
    data["sha256"] = content_hash(data)
    torch.save(data, path)
    return tr, path


@pytest.mark.parametrize("edit, message", [
    (lambda d: [d.pop(k) for k in list(d) if k not in ("format", "sha256")], r"`step`: Field required"),
    (lambda d: d.update(step="abc"), r"`step`: Input should be a valid integer"),
    (lambda d: d.update(step=-5), r"`step`: Input should be greater than or equal to 0"),
    (lambda d: d["rng"].update(torch=torch.zeros(7, dtype=torch.uint8)), r"`rng.torch`: .*uint8 tensor of \d+ bytes"),
    (lambda d: d["rng"].update(python=[3, "x", None]), r"`rng.python`: .*625"),
    (lambda d: d["extra"].update(config={"optimizer": "adamw"}), r"`extra.config.optimizer`: Input should be a valid dict"),
    (lambda d: d.update(model={"w": "not a tensor"}), r"`model.w`"),
])
def test_malformed_checkpoint_is_a_located_error(tmp_path, edit, message):
    _, path = _crafted(tmp_path, edit)
    with pytest.raises(SpecError, match="malformed checkpoint: " + message):
        read_checkpoint(path)


def test_foreign_optimizer_state_is_refused_before_loading(tmp_path):
    def shrink(d):
        st = next(iter(d["optimizer"]["state"].values()))
        st["exp_avg"] = torch.zeros(3)
    tr, path = _crafted(tmp_path, shrink)
    with pytest.raises(SpecError, match=r"optimiser state `exp_avg` of parameter .* has shape \[3\]"):
        load_checkpoint(path, tr.model, tr.optimizer, tr.scheduler)


def test_resume_of_a_damaged_checkpoint_fails_clearly(tmp_path):
    out = tmp_path / "run"
    Trainer(_tiny(), out=out, progress=False, steps=4).fit()
    last = out / "last.pt"
    data = torch.load(last, weights_only=True)
    data["model"] = {k: v + 1 for k, v in data["model"].items()}  # changed without a new hash
    torch.save(data, last)
    with pytest.raises(SpecError, match="damaged"):
        Trainer(_tiny(), out=out, progress=False, steps=8, resume=True).fit()


def test_stale_temporary_files_are_removed(tmp_path):
    model = _tiny()
    dead = tmp_path / ".c.pt.999999999.tmp"  # no such process
    dead.write_bytes(b"half a checkpoint")
    mine_alive = tmp_path / f".c.pt.{os.getppid()}.tmp"  # a live writer's file stays
    mine_alive.write_bytes(b"x")
    save_checkpoint(tmp_path / "c.pt", model, step=1)
    assert not dead.exists() and mine_alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.pt", mine_alive.name])


def test_metrics_truncation_is_atomic(tmp_path, monkeypatch):
    w = MetricsWriter(tmp_path, tensorboard=False)
    for s in range(1, 41):
        w.write({"step": s, "loss": 1.0 / s})
    before = w.path.read_bytes()

    def killed(*a, **k):
        raise KeyboardInterrupt  # the process dies between writing the copy and renaming it
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        w.truncate_after(10)
    assert w.path.read_bytes() == before  # the history is whole
    monkeypatch.undo()
    w.truncate_after(10)
    assert [json.loads(ln)["step"] for ln in w.path.read_text().splitlines()] == list(range(1, 11))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "spec.yaml"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError):
        from jepa_graph.core.atomic import atomic_writer
        with atomic_writer(target, "w") as f:
            f.write("new, half")
            1 / 0
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    atomic_write(target, "new")
    assert target.read_text() == "new"
