"""torchrun with two CPU processes (gloo): parameters and EMA targets identical across ranks, equal
(within float tolerance) to one process training on the combined batch; rank 0 writes the
checkpoint."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

import jepa_graph as jg
from jepa_graph.checkpoint import read_checkpoint
from jepa_graph.training import Trainer

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

SCRIPT = textwrap.dedent("""
    import sys, torch
    import jepa_graph as jg
    from jepa_graph.training import Trainer
    spec_text, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    model = jg.compile(jg.loads(open(spec_text).read(), "ddp_tiny.yaml"), seed=0)
    tr = Trainer(model, out=out, progress=False, tensorboard=False)
    tr.fit()
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/rank{tr.rank}_of_{tr.world}.pt")
    import torch.distributed as dist
    dist.destroy_process_group()
""")


def test_two_process_ddp_matches_single_process(tmp_path):
    spec = tmp_path / "ddp_tiny.yaml"
    spec.write_text(SPEC)
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(spec), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(out / "rank0_of_2.pt", weights_only=True)
    r1 = torch.load(out / "rank1_of_2.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # weights and EMA targets identical across ranks
    ck = read_checkpoint(out / "last.pt")
    assert ck["step"] == 4 and ck["extra"]["world"] == 2
    assert all(torch.equal(ck["model"][k], r0[k]) for k in r0)

    single = jg.compile(jg.loads(SPEC, "ddp_tiny.yaml"), seed=0)
    Trainer(single, progress=False).fit()  # one process, the same global batches of 16
    ref = single.state_dict()
    for k in r0:
        assert torch.allclose(r0[k], ref[k], atol=1e-5, rtol=1e-4), k
    moved = [k for k in r0 if not torch.equal(r0[k], jg.compile(jg.loads(SPEC, "x.yaml"), seed=0).state_dict()[k])]
    assert any(k.startswith("blocks.target.") for k in moved) and any(k.startswith("blocks.enc.") for k in moved)
