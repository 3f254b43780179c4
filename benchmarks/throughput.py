"""Training throughput: the compiled spec under ``Trainer.train_step`` against the same model
trained by a hand-written PyTorch loop, in the same process.

Both sides use the same layers (the ViT, transformer predictor, MLPs and VICReg module built
from the spec, copied with identical initial weights); the hand-written side wires them by
hand, computes the loss with plain ``torch.nn.functional``, and runs the same AdamW (decay on
matrices only), gradient clipping, warm-up + cosine schedule, EMA update (``_foreach_lerp_``)
and one ``loss.item()`` per step (the trainer reads the loss every step to stop on NaN;
loss terms are read only on logging steps, as here). A
check before timing asserts both sides compute the same loss on the same batch. Latent
inference is excluded (z is given, zeros), so the comparison is of one training step.

Timing fights a noisy, shared CPU: sides alternate in rounds (order shuffled per round), each
round times ``--steps`` steps after a warm-up, by the CPU time of the calling thread (one torch
thread) unless ``--wall``; reported: median steps/s per side, and the median of per-round ratios.

    .venv/bin/python benchmarks/throughput.py                     # CPU, batch 64
    .venv/bin/python benchmarks/throughput.py --device cuda --wall --batch 256
"""
from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import jepa_graph as jg  # noqa: E402
from jepa_graph.training.optim import make_optimizer, make_scheduler  # noqa: E402
from jepa_graph.training.trainer import Trainer, resolve_config  # noqa: E402


class HandIJepa:
    """I-JEPA by hand: context encoder on visible patches, EMA target on all, LN, gather, smooth L1."""

    def __init__(self, m):
        b = m.blocks
        self.enc, self.tgt, self.pred = b.context_encoder, b.target_encoder, b.predictor

    def loss(self, image, ctx_idx, tgt_idx):
        ctx = self.enc(image, ctx_idx)  # (B, n_ctx, D)
        with torch.no_grad():
            t = self.tgt(image)  # (B, N, D)
            t = F.layer_norm(t, t.shape[-1:])
            t = torch.gather(t, 1, tgt_idx[..., None].expand(-1, -1, t.shape[-1]))  # (B, n_tgt, D)
        p = self.pred(ctx, ctx_idx, tgt_idx)  # (B, n_tgt, D)
        return F.smooth_l1_loss(p, t)


class HandWorldModel:
    """Two Rooms world model by hand: s = enc(x), s' = pred(s, a, z) vs EMA target(x'), + VICReg + L1(z)."""

    def __init__(self, m):
        b = m.blocks
        self.enc, self.tgt, self.pred, self.reg = b.enc, b.target, b.pred, b.reg
        self.beta = getattr(b.E, "beta", 1.0)
        self.l1 = m.spec.latents["z"].regularizer["l1"]

    def loss(self, x, x_next, a, z):
        s = self.enc(x)  # (B, state)
        with torch.no_grad():
            t = self.tgt(x_next)
        e = F.smooth_l1_loss(self.pred(s, a, z), t, beta=self.beta)
        return e + self.reg(s) + self.l1 * z.abs().sum(1).mean()


def hand_step_fn(model, hand, cfg, pairs):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.optimizer)
    sched = make_scheduler(opt, cfg)
    src = [p for s, _ in pairs for p in model.blocks[s].parameters()]
    tgt = [p for _, t in pairs for p in model.blocks[t].parameters()]

    def step(batch):
        loss = hand.loss(**batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            torch._foreach_lerp_(tgt, src, 1.0 - 0.996)
        return float(loss.detach())
    return step


def bench(spec: str, hand_cls, source: str, batch: int, device: str, rounds: int, steps: int, wall: bool) -> dict:
    torch.manual_seed(0)
    compiled = jg.compile(ROOT / "specs" / spec, seed=0).to(device)
    byhand = copy.deepcopy(compiled)
    tr = Trainer(compiled, source, progress=False, steps=10**6, batch_size=batch, device=device, tensorboard=False)
    cfg = resolve_config(compiled, steps=10**6, batch_size=batch)
    b = {k: v.to(device) for k, v in tr.source.batch(0, batch).items() if k in tr.input_names}
    if "z" in tr.input_names:
        b["z"] = torch.zeros(batch, *compiled.graph.nodes["z"].ttype.shape, device=device)
    hand = hand_cls(byhand)
    pairs = [(s, t) for t, s, _ in byhand.ema_pairs()]
    hstep = hand_step_fn(byhand, hand, cfg, pairs)
    with torch.no_grad():  # the same computation on the same weights
        a, h = compiled.loss(**b), hand.loss(**b)
    assert torch.allclose(a, h, rtol=1e-4, atol=1e-6), (float(a), float(h))
    sides = {"compiled": lambda: tr.train_step(b, detail=False), "hand": lambda: hstep(b)}
    clock = time.perf_counter if wall else time.thread_time
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for f in sides.values():  # warm-up
        for _ in range(5):
            f()
    rates = {k: [] for k in sides}
    ratios = []
    for _ in range(rounds):
        order = list(sides)
        random.shuffle(order)
        got = {}
        for k in order:
            sync()
            t0 = clock()
            for _ in range(steps):
                sides[k]()
            sync()
            got[k] = steps / (clock() - t0)
            rates[k].append(got[k])
        ratios.append(got["compiled"] / got["hand"])
    return {"spec": spec, "batch": batch, "compiled": statistics.median(rates["compiled"]),
            "hand": statistics.median(rates["hand"]), "ratio": statistics.median(ratios)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wall", action="store_true", help="wall-clock time (use on GPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(0)
    print("| spec | device | batch | compiled steps/s | hand-written steps/s | ratio (compiled / hand) |")
    print("|---|---|---|---|---|---|")
    for spec, hand, source in (("ijepa.jepa", HandIJepa, "shapes"), ("two_rooms.yaml", HandWorldModel, "two_rooms")):
        r = bench(spec, hand, source, args.batch, args.device, args.rounds, args.steps, args.wall)
        print(f"| {r['spec']} | {args.device} | {r['batch']} | {r['compiled']:.1f} | {r['hand']:.1f} | {r['ratio']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
