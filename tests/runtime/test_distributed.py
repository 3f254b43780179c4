"""torchrun with two CPU processes (gloo): parameters and EMA targets identical across ranks, equal
(within float tolerance) to one process training on the combined batch; rank 0 writes the
checkpoint. Batch-statistics regularisers (VICReg, Barlow Twins, variance, covariance) gather the
shards, so they too match one process on the combined batch, gradients included."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import jepa_graph as jg
from jepa_graph.training.checkpoint import read_checkpoint
from jepa_graph.training.trainer import Trainer

from conftest import ROOT

SPEC = """
name: ddp_tiny
inputs: {x: {shape: [6]}, x_next: {shape: [6]}}
blocks:
  enc:    {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: 4}}
  target: {kind: encoder, ema_of: enc, in: [x_next], with: {momentum: [0.8, 1.0]}}
  pred:   {kind: predictor, type: mlp, in: [enc], with: {hidden: [16], out: 4}}
  E:      {kind: energy, type: l2, in: [pred, target]}
objective: {E: 1.0}
train: {steps: 4, batch_size: 16, lr: 0.01, log_every: 1, checkpoint_every: 2}
"""

# every batch-statistics regulariser; the VICReg expander has a BatchNorm; SGD so that a wrong
# gradient scale moves the weights (AdamW would normalise much of it away)
VICREG_SPEC = """
name: ddp_vicreg
inputs: {x: {shape: [6]}, x_next: {shape: [6]}}
blocks:
  enc:    {kind: encoder, type: mlp, in: [x], with: {hidden: [16], out: 4}}
  target: {kind: encoder, ema_of: enc, in: [x_next], with: {momentum: [0.8, 1.0]}}
  pred:   {kind: predictor, type: mlp, in: [enc], with: {hidden: [16], out: 4}}
  E:      {kind: energy, type: l2, in: [pred, target]}
  vic:    {kind: regularizer, type: vicreg, in: [enc, pred], with: {expander: [8, 8]}}
  bt:     {kind: regularizer, type: barlow_twins, in: [enc, pred]}
  var:    {kind: regularizer, type: variance_hinge, in: [pred]}
  cov:    {kind: regularizer, type: covariance, in: [enc]}
objective: {E: 1.0, vic: 0.1, bt: 0.1, var: 1.0, cov: 1.0}
train: {steps: 4, batch_size: 16, optimizer: {name: sgd, lr: 0.05}, log_every: 1, checkpoint_every: 2}
"""
SPECS = {"ddp_tiny": SPEC, "ddp_vicreg": VICREG_SPEC}

SCRIPT = textwrap.dedent("""
    import pathlib, sys, torch
    import torch.distributed as dist
    import jepa_graph as jg
    from jepa_graph.runtime.distributed import wrap_ddp
    from jepa_graph.training.trainer import Trainer
    out, paths = pathlib.Path(sys.argv[1]), sys.argv[2:]
    torch.set_num_threads(1)
    for path in paths:  # one process group for every spec: one torchrun start
        name = pathlib.Path(path).stem
        spec = lambda: jg.loads(open(path).read(), name + ".yaml")
        model = jg.compile(spec(), seed=0)
        tr = Trainer(model, out=out / name, progress=False, tensorboard=False)
        tr.fit()
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / name / f"rank{tr.rank}_of_{tr.world}.pt")
        batch = {k: v.double() for k, v in tr.next_batch(0).items()}  # this rank's shard of step 0
        fresh = jg.compile(spec(), seed=0).double().train()  # one DDP backward, initial weights, float64
        ddp = wrap_ddp(fresh.program("loss"), torch.device("cpu"))  # held: its hooks average in backward
        ddp(**batch)["loss"].backward()
        grads = {k: p.grad for k, p in fresh.named_parameters() if p.grad is not None}
        torch.save(grads, out / name / f"grad_rank{tr.rank}.pt")
    dist.destroy_process_group()
""")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Both specs trained by ``torchrun --nproc_per_node=2`` on CPU; the run folder."""
    tmp = tmp_path_factory.mktemp("ddp")
    paths = []
    for name, text in SPECS.items():
        (tmp / f"{name}.yaml").write_text(text)
        paths.append(str(tmp / f"{name}.yaml"))
    script = tmp / "ddp.py"
    script.write_text(SCRIPT)
    out = tmp / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(out), *paths], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", list(SPECS))
def test_two_process_ddp_matches_single_process(ddp_run, name):
    out, text = ddp_run / name, SPECS[name]
    r0 = torch.load(out / "rank0_of_2.pt", weights_only=True)
    r1 = torch.load(out / "rank1_of_2.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # weights and EMA targets identical across ranks
    ck = read_checkpoint(out / "last.pt")
    assert ck["step"] == 4 and ck["extra"]["world"] == 2
    assert all(torch.equal(ck["model"][k], r0[k]) for k in r0)

    single = jg.compile(jg.loads(text, f"{name}.yaml"), seed=0)
    Trainer(single, progress=False).fit()  # one process, the same global batches of 16
    ref = single.state_dict()
    for k in r0:
        assert torch.allclose(r0[k], ref[k], atol=1e-5, rtol=1e-4), (k, (r0[k] - ref[k]).abs().max())
    moved = [k for k in r0 if not torch.equal(r0[k], jg.compile(jg.loads(text, "x.yaml"), seed=0).state_dict()[k])]
    assert any(k.startswith("blocks.target.") for k in moved) and any(k.startswith("blocks.enc.") for k in moved)


@pytest.mark.parametrize("name", list(SPECS))
def test_two_process_gradient_is_the_combined_batch_gradient(ddp_run, name):
    """DDP averages the ranks' gradients; with the gathered statistics that average is exactly the
    one-process gradient of the loss on the combined batch (not 1/2 of it, not each shard's own).
    In float64, so the tolerance is tight (a bias before BatchNorm has a true gradient of 0)."""
    g0 = torch.load(ddp_run / name / "grad_rank0.pt", weights_only=True)
    g1 = torch.load(ddp_run / name / "grad_rank1.pt", weights_only=True)
    assert all(torch.equal(g0[k], g1[k]) for k in g0)
    spec = jg.loads(SPECS[name], f"{name}.yaml")
    batch = Trainer(jg.compile(spec, seed=0), progress=False).next_batch(0)  # the combined batch of step 0
    model = jg.compile(spec, seed=0).double().train()
    model.program("loss")(**{k: v.double() for k, v in batch.items()})["loss"].backward()
    want = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert g0.keys() == want.keys()
    if name == "ddp_vicreg":
        assert any(k.startswith("blocks.vic.") for k in want)  # the expander trains too
    for k in want:
        torch.testing.assert_close(g0[k], want[k], atol=1e-12, rtol=1e-9, msg=lambda m: f"{k}: {m}")
