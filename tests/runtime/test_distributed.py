"""torchrun with two CPU processes (gloo): parameters and EMA targets identical across ranks, equal
(within float tolerance) to one process training on the combined batch; rank 0 writes the
checkpoint. Batch-statistics regularisers (VICReg, Barlow Twins, variance, covariance) gather the
shards, and BatchNorm is synchronised (running statistics included), so they too match one process
on the combined batch, gradients included. The synchronised BatchNorm itself is checked against
BatchNorm on the concatenated batch in a 2-process gloo group, and against plain BatchNorm alone."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import jepa_graph as jg
from jepa_graph.core.errors import SpecError
from jepa_graph.runtime.sync_batchnorm import GlobalBatchNorm, UnsyncableBatchNorm, convert_sync_batchnorm
from jepa_graph.training.checkpoint import read_checkpoint
from jepa_graph.training.trainer import Trainer, _sync_batchnorm

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
# a CNN encoder with BatchNorm2d (synchronised under DDP) and its EMA target (BatchNorm buffers
# copied from the source); SGD, as above
BATCHNORM_SPEC = """
name: ddp_batchnorm
inputs: {x: {shape: [3, 6, 6]}, x_next: {shape: [3, 6, 6]}}
blocks:
  enc:    {kind: encoder, type: cnn, in: [x], with: {channels: [4, 4], norm: batch, out: 4}}
  target: {kind: encoder, ema_of: enc, in: [x_next], with: {momentum: [0.8, 1.0]}}
  pred:   {kind: predictor, type: mlp, in: [enc], with: {hidden: [16], out: 4}}
  E:      {kind: energy, type: l2, in: [pred, target]}
objective: {E: 1.0}
train: {steps: 4, batch_size: 16, optimizer: {name: sgd, lr: 0.05}, log_every: 1, checkpoint_every: 2}
"""
SPECS = {"ddp_tiny": SPEC, "ddp_vicreg": VICREG_SPEC, "ddp_batchnorm": BATCHNORM_SPEC}

SCRIPT = textwrap.dedent("""
    import pathlib, sys, torch
    import torch.distributed as dist
    import jepa_graph as jg
    from jepa_graph.runtime.distributed import wrap_ddp
    from jepa_graph.runtime.sync_batchnorm import convert_sync_batchnorm
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
        convert_sync_batchnorm(fresh)  # as the trainer does under DDP
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
    if name == "ddp_batchnorm":  # the running statistics were compared too: the encoder's and its EMA copy's
        stats = [k for k in moved if k.endswith(("running_mean", "running_var"))]
        assert {k.split(".")[1] for k in stats} == {"enc", "target"}, stats


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


# ------------------------------------------------------------------ the synchronised BatchNorm
SYNC_SCRIPT = textwrap.dedent("""
    import pathlib, sys, torch
    import torch.distributed as dist
    import torch.nn as nn
    from jepa_graph.runtime.sync_batchnorm import convert_sync_batchnorm
    dist.init_process_group("gloo")
    rank, out = dist.get_rank(), pathlib.Path(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(0)  # every rank draws the same global batches, then keeps its (uneven) shard
    cases = {"1d": (nn.BatchNorm1d, (8, 3), {}), "1d_seq": (nn.BatchNorm1d, (8, 3, 5), {}),
             "2d": (nn.BatchNorm2d, (8, 3, 4, 4), {}), "3d": (nn.BatchNorm3d, (8, 3, 2, 3, 3), {}),
             "cumulative": (nn.BatchNorm2d, (8, 3, 2, 2), {"momentum": None})}
    for name, (cls, shape, kw) in cases.items():
        bn = cls(shape[1], **kw).double()
        with torch.no_grad():  # an affine map that matters
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
        init = {k: v.clone() for k, v in bn.state_dict().items()}
        convert_sync_batchnorm(bn)
        xs = [torch.randn(shape, dtype=torch.float64) * 3 + 1 for _ in range(2)]  # two steps
        ws = [torch.randn(shape, dtype=torch.float64) for _ in range(2)]  # loss = sum(w * y)
        res = {"init": init, "x": xs, "w": ws, "y": [], "grad": []}
        for x, w in zip(xs, ws):
            local = x.split([3, 5])[rank].clone().requires_grad_()
            y = bn(local)
            (y * w.split([3, 5])[rank]).sum().backward()
            res["y"].append(y.detach())
            res["grad"].append(local.grad)
        res["weight_grad"], res["bias_grad"] = bn.weight.grad, bn.bias.grad  # summed over both steps
        res["state"] = {k: v.clone() for k, v in bn.state_dict().items()}
        bn.eval()
        res["eval"] = bn(xs[0].split([3, 5])[rank])  # running statistics: no collective
        torch.save(res, out / f"{name}_rank{rank}.pt")
    dist.destroy_process_group()
""")


@pytest.fixture(scope="module")
def sync_run(tmp_path_factory):
    """The synchronised BatchNorm in a 2-process gloo group: shards of 3 and 5 samples."""
    tmp = tmp_path_factory.mktemp("syncbn")
    (tmp / "sync.py").write_text(SYNC_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(tmp / "sync.py"), str(tmp)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp


@pytest.mark.parametrize("name", ["1d", "1d_seq", "2d", "3d", "cumulative"])
def test_sync_batchnorm_is_batchnorm_on_the_concatenated_batch(sync_run, name):
    """Each rank's output and input gradient are its slice of BatchNorm's on the whole batch; the
    weight gradients sum to BatchNorm's (DDP would average them: the loss here is a sum over ranks);
    the running statistics after two steps are BatchNorm's on every rank, and so is eval."""
    ranks = [torch.load(sync_run / f"{name}_rank{r}.pt", weights_only=True) for r in (0, 1)]
    r0 = ranks[0]
    cls = {"1d": torch.nn.BatchNorm1d, "1d_seq": torch.nn.BatchNorm1d, "3d": torch.nn.BatchNorm3d}.get(
        name, torch.nn.BatchNorm2d)
    bn = cls(r0["x"][0].shape[1], momentum=None if name == "cumulative" else 0.1).double()
    bn.load_state_dict(r0["init"])
    close = dict(atol=1e-12, rtol=1e-10)
    for x, w, step in zip(r0["x"], r0["w"], range(2)):
        x = x.clone().requires_grad_()
        y = bn(x)
        (y * w).sum().backward()
        for r, res in enumerate(ranks):
            torch.testing.assert_close(res["y"][step], y.detach().split([3, 5])[r], **close)
            torch.testing.assert_close(res["grad"][step], x.grad.split([3, 5])[r], **close)
    torch.testing.assert_close(ranks[0]["weight_grad"] + ranks[1]["weight_grad"], bn.weight.grad, **close)
    torch.testing.assert_close(ranks[0]["bias_grad"] + ranks[1]["bias_grad"], bn.bias.grad, **close)
    assert not torch.allclose(ranks[0]["weight_grad"], bn.weight.grad)  # each rank's share is not the whole
    want = bn.state_dict()
    assert want["num_batches_tracked"] == 2
    for res in ranks:
        assert res["state"].keys() == want.keys()
        for k in want:
            torch.testing.assert_close(res["state"][k], want[k], **close)
    bn.eval()
    for r, res in enumerate(ranks):
        torch.testing.assert_close(res["eval"], bn(r0["x"][0]).split([3, 5])[r], **close)


def _bn_pair(cls=torch.nn.BatchNorm2d, c=3):
    """A BatchNorm with a non-trivial affine map and running statistics, and a converted copy."""
    bn = cls(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    synced = convert_sync_batchnorm(copy.deepcopy(bn))
    return bn, synced


def test_converted_batchnorm_is_the_batchnorm_without_a_process_group():
    """One process (or eval): the very BatchNorm it was, bit for bit; the same parameters and
    buffers, so state dicts load either way, and a deepcopy (an EMA target) converts along."""
    bn, synced = _bn_pair()
    params = [id(p) for p in synced.parameters()]
    assert convert_sync_batchnorm(synced) is synced and [id(p) for p in synced.parameters()] == params
    assert isinstance(synced, torch.nn.BatchNorm2d) and isinstance(synced, GlobalBatchNorm)
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    assert torch.equal(synced(x), bn(x))
    assert all(torch.equal(a, b) for a, b in zip(synced.state_dict().values(), bn.state_dict().values()))
    assert synced.state_dict().keys() == bn.state_dict().keys()
    bn.eval(), synced.eval()
    assert torch.equal(synced(x), bn(x))
    fresh = convert_sync_batchnorm(torch.nn.BatchNorm2d(3))
    fresh.load_state_dict(bn.state_dict())  # a plain checkpoint into a converted model...
    torch.nn.BatchNorm2d(3).load_state_dict(fresh.state_dict())  # ...and back
    assert isinstance(copy.deepcopy(synced), GlobalBatchNorm)


def test_converted_batchnorm_compiles_to_batchnorm_without_a_process_group():
    """Under torch.compile without a group the synchronisation is folded away: one graph, no break."""
    bn, synced = _bn_pair(torch.nn.BatchNorm1d, 4)
    x = torch.randn(6, 4)
    compiled = torch.compile(synced, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), bn(x))
    torch.testing.assert_close(synced.running_var, bn.running_var)


class _Gathers(torch.nn.Module):
    global_batch = True  # as the VICReg expander's owner: it gathers the shards itself

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(2)


class _OwnForward(torch.nn.BatchNorm1d):
    def forward(self, x):
        return super().forward(x) * 2


class _Plain(torch.nn.BatchNorm1d):
    pass


def test_convert_skips_gathered_batches_and_refuses_a_batchnorm_with_its_own_forward():
    net = torch.nn.Sequential(torch.nn.BatchNorm3d(2), _Gathers(), _Plain(2))
    convert_sync_batchnorm(net)
    assert isinstance(net[0], GlobalBatchNorm) and isinstance(net[2], GlobalBatchNorm) and isinstance(net[2], _Plain)
    assert type(net[1].norm) is torch.nn.BatchNorm1d  # already sees the global batch
    with pytest.raises(UnsyncableBatchNorm, match=r"`1\.inner` is a _OwnForward"):
        convert_sync_batchnorm(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.ModuleDict({"inner": _OwnForward(2)})))


def test_trainer_names_the_block_whose_batchnorm_cannot_be_synchronised():
    model = jg.compile(jg.loads(BATCHNORM_SPEC, "ddp_batchnorm.yaml"), seed=0)
    model.blocks["enc"].convs[1].__class__ = _OwnForward  # a block type's own BatchNorm
    with pytest.raises(SpecError, match=r"ddp_batchnorm\.yaml:5:\d+: error: block `enc`: .*_OwnForward.*"
                                        r"normalise each rank's shard(.|\n)*hint: use torch's BatchNorm1d/2d/3d"):
        _sync_batchnorm(model)
