"""Batched energy minimisation against the straightforward per-sample Python loop.

Two searches, each measured in samples per second (best of ``--repeats``), batched
(``jg.minimize_energy`` on the whole batch) and looped (one sample at a time, the same steps):

* ``gradient``  a real latent z (dim 8), Adam, 20 steps from 0, on an MLP world model
  (obs 16 -> state 32, predictor [s, z] -> 128 -> 128 -> state). The loop runs the same
  Adam steps on one sample's z with ``torch.autograd.grad`` (no weight gradients either way).
* ``enumerate`` a discrete latent with K = 16 values, same model shape. Two loops: per sample
  with its K one-hots in one call (the generous baseline), and per sample per value (naive).

Both paths must find the same z* and F (checked, else the run fails). The batched path also
runs the parts of the energy that do not depend on z (the encoders of x and y) once per sample
instead of once per candidate; the loops call the whole energy program, as a user would. Run::

    .venv/bin/python benchmarks/minimize.py --threads 1           # CPU
    .venv/bin/python benchmarks/minimize.py --device cuda         # GPU
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import jepa_graph as jg  # noqa: E402

SPEC = """
name: bench_{kind}
dims: {{obs: 16, state: 32}}
inputs: {{x: {{shape: [obs]}}, y: {{shape: [obs]}}}}
latents: {{z: {latent}}}
blocks:
  enc:    {{kind: encoder, type: mlp, in: [x], with: {{hidden: [64], out: state}}}}
  target: {{kind: encoder, share: enc, in: [y]}}
  pred:   {{kind: predictor, type: mlp, in: [enc, z], with: {{hidden: [128, 128], out: state}}}}
  E:      {{kind: energy, type: l2, in: [pred, {{ref: target, stop_grad: true}}]}}
objective: {{E: 1.0}}
"""
LATENTS = {"gradient": "{shape: [8]}", "enumerate": "{shape: [16], domain: {discrete: 16}}"}
STEPS, LR = 20, 0.1


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out


def loop_gradient(model, batch):
    zs, Fs = [], []
    for i in range(batch["x"].shape[0]):
        x, y = batch["x"][i:i + 1], batch["y"][i:i + 1]
        z = torch.zeros(1, 8, device=x.device, requires_grad=True)
        opt = torch.optim.Adam([z], lr=LR)
        best_e, best_z = float("inf"), None
        for _ in range(STEPS):
            e = model.energy(x=x, y=y, z=z)
            if e.item() < best_e:
                best_e, best_z = e.item(), z.detach().clone()
            z.grad, = torch.autograd.grad(e.sum(), [z])
            opt.step()
        with torch.no_grad():
            e = model.energy(x=x, y=y, z=z)
        if e.item() < best_e:
            best_e, best_z = e.item(), z.detach().clone()
        zs.append(best_z)
        Fs.append(best_e)
    return torch.cat(zs), torch.tensor(Fs)


@torch.no_grad()
def loop_enumerate(model, batch, per_value: bool):
    K, zs, Fs = 16, [], []
    eye = torch.eye(K, device=batch["x"].device)
    for i in range(batch["x"].shape[0]):
        x, y = batch["x"][i:i + 1], batch["y"][i:i + 1]
        if per_value:
            e = torch.cat([model.energy(x=x, y=y, z=eye[k:k + 1]) for k in range(K)])
        else:
            e = model.energy(x=x.expand(K, -1), y=y.expand(K, -1), z=eye)
        k = int(e.argmin())
        zs.append(eye[k:k + 1])
        Fs.append(float(e[k]))
    return torch.cat(zs), torch.tensor(Fs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1024, help="samples for the batched search")
    ap.add_argument("--loop", type=int, default=64, help="samples for the per-sample loops")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows = []
    for kind in ("gradient", "enumerate"):
        model = jg.compile(jg.loads(SPEC.format(kind=kind, latent=LATENTS[kind])), seed=0, device=device)
        batch = {"x": torch.randn(args.batch, 16, device=device), "y": torch.randn(args.batch, 16, device=device)}
        small = {k: v[:args.loop] for k, v in batch.items()}

        def batched(b=batch):
            with torch.no_grad():
                return jg.minimize_energy(model, b, over="z", method=kind, steps=STEPS, lr=LR, optimizer="adam",
                                          restarts=1, tol_e=0, tol_z=0)  # the loop's search: 20 Adam steps, 1 start

        t_b, _ = timed(batched, device, args.repeats)
        z_ref, F_ref = batched(small)
        rows.append((kind, f"batched, B={args.batch}", args.batch / t_b))
        loops = [("loop", lambda: loop_gradient(model, small))] if kind == "gradient" else \
            [("loop (K values per call)", lambda: loop_enumerate(model, small, False)),
             ("loop (one value per call)", lambda: loop_enumerate(model, small, True))]
        for name, fn in loops:
            t_l, (z_l, F_l) = timed(fn, device, max(1, args.repeats - 1))
            torch.testing.assert_close(F_l, F_ref.cpu(), atol=1e-4, rtol=1e-4)  # the same answer
            torch.testing.assert_close(z_l.cpu(), z_ref.cpu(), atol=1e-3, rtol=1e-3)
            rows.append((kind, f"{name}, {args.loop} samples", args.loop / t_l))
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {dev}; torch {torch.__version__}; gradient: Adam {STEPS} steps, z dim 8; enumerate: K = 16")
    print("| method | how | samples/s | speed-up |")
    print("|---|---|---:|---:|")
    base = {}
    for kind, how, sps in rows:
        base.setdefault(kind, sps)
        print(f"| {kind} | {how} | {sps:,.0f} | {base[kind] / sps:,.1f}x |" if how.startswith("loop")
              else f"| {kind} | {how} | {sps:,.0f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
