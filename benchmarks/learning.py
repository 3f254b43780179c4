"""Does training learn? Three checks on the built-in procedural data, each against a baseline.

* ``ijepa``: I-JEPA (``specs/ijepa.jepa``) on shapes images with multi-block masks. Frozen
  features (the target encoder's tokens: average-pooled, as in I-JEPA's evaluation, and all
  tokens concatenated) get a linear probe for the shape class (ridge classifier, accuracy) and
  the shape's centre (ridge regression, R^2) on held-out images (4096 train, 1024 test); the
  baseline is the same encoder at its random init.
* ``vicreg``: VICReg (``specs/vicreg.jepa``) on two augmented views; the same probes on the
  encoder's output, against its random init.
* ``two_rooms``: the Two Rooms world model (``specs/two_rooms.yaml``). From held-out
  trajectories, s_0 = enc(x_0) is rolled forward s_{t+1} = pred(s_t, a_t, z = 0) and compared
  with the target encoder's representation of x_t (what the predictor is trained to predict);
  the error is normalised by that representation's total variance, and the baseline copies
  the last observed state (target(x_0) for every t).

All three also report the collapse monitors of the final representation (mean std, effective
rank). One torch thread; the machine is shared, so runs are kept to a few minutes.

    .venv/bin/python benchmarks/learning.py ijepa --steps 1500
    .venv/bin/python benchmarks/learning.py vicreg --steps 1500
    .venv/bin/python benchmarks/learning.py two_rooms --steps 1500
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import jepa_graph as jg  # noqa: E402
from jepa_graph.data import make_source, spec_inputs  # noqa: E402
from jepa_graph.training.metrics import collapse_stats, rollout_error  # noqa: E402


# ----------------------------------------------------------------------------- linear probes
def _standardise(tr: torch.Tensor, te: torch.Tensor):
    mu, sd = tr.mean(0), tr.std(0).clamp_min(1e-6)
    return (tr - mu) / sd, (te - mu) / sd


def ridge(xtr, ytr, xte, lam: float = 1e-2):
    """Closed-form ridge regression with a bias; returns predictions on ``xte``."""
    xtr, xte = _standardise(xtr.double(), xte.double())
    xtr = torch.cat([xtr, torch.ones(len(xtr), 1, dtype=xtr.dtype)], 1)
    xte = torch.cat([xte, torch.ones(len(xte), 1, dtype=xte.dtype)], 1)
    a = xtr.T @ xtr + lam * len(xtr) * torch.eye(xtr.shape[1], dtype=xtr.dtype)
    w = torch.linalg.solve(a, xtr.T @ ytr.double())
    return (xte @ w).float()


def probe(ftr, fte, dtr, dte) -> dict[str, float]:
    """Shape-class accuracy (ridge classifier on one-hot targets) and centre R^2."""
    k = int(dtr["label"].max()) + 1
    logits = ridge(ftr, torch.nn.functional.one_hot(dtr["label"], k).float(), fte)
    acc = (logits.argmax(1) == dte["label"]).float().mean().item()
    pos = ridge(ftr, dtr["pos"], fte)
    r2 = 1 - ((pos - dte["pos"]) ** 2).sum() / ((dte["pos"] - dte["pos"].mean(0)) ** 2).sum()
    return {"class_acc": acc, "pos_r2": r2.item()}


@torch.no_grad()
def features(fn, images: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    return torch.cat([fn(images[i:i + chunk]) for i in range(0, len(images), chunk)])


def probe_data(model, n_train=4096, n_test=1024):
    src = make_source("shapes", {}, spec_inputs(model), seed=12345)  # held out: a seed never trained on
    return src.batch(0, n_train), src.batch(1, n_test)


# ------------------------------------------------------------------------------------ checks
def run_image(spec: str, steps: int, batch: int, lr: float, feat, save: str | None = None,
              views: dict | None = None) -> dict:
    model = jg.compile(ROOT / "specs" / spec, seed=0)
    init = copy.deepcopy(model)
    dtr, dte = probe_data(model)
    data = make_source("shapes", views, spec_inputs(model), 0) if views else "shapes"
    t0 = time.time()
    res = jg.train(model, data, steps=steps, batch_size=batch, lr=lr, warmup=steps // 10,
                   weight_decay=0.04, progress=False, log_every=max(steps // 10, 1), monitor_every=max(steps // 5, 1))
    secs = time.time() - t0
    if save:
        torch.save(model.state_dict(), save)
    out = {"steps": steps, "batch": batch, "train_s": round(secs), "loss_first": res.history[0]["loss"],
           "loss_last": res.history[-1]["loss"]}
    for name, m in (("random_init", init), ("trained", model)):
        m.eval()
        for fname, fn in feat.items():
            ftr, fte = features(lambda x: fn(m, x), dtr["image"]), features(lambda x: fn(m, x), dte["image"])
            out[f"{name}, {fname}"] = probe(ftr, fte, dtr, dte)
            c = collapse_stats(fte)
            out[f"{name}, {fname}"].update({"std": c["std"], "erank": c["erank"]})
    return out


IJEPA_FEATURES = {  # the target encoder's tokens (B, N, D)
    "avg-pooled tokens": lambda m, x: m.blocks.target_encoder(x).mean(1),  # (B, D), I-JEPA's evaluation
    "all tokens": lambda m, x: m.blocks.target_encoder(x).flatten(1),  # (B, N * D): keeps where things are
}
VICREG_FEATURES = {"encoder output": lambda m, x: m.blocks.encoder(x)}  # (B, emb), before the expander
# VICReg learns what its two views share. `standard`: the source's defaults (crops of 50-100% of the
# area anywhere, random mirror), so position is what the invariance term teaches it to drop;
# `keep-position`: crops of 80-100% and no mirror, so where the shape is survives into both views.
VIEWS = {"standard": None, "keep-position": {"crop": [0.8, 1.0], "flip": False}}


def run_two_rooms(steps: int, batch: int, lr: float, horizon: int = 16) -> dict:
    model = jg.compile(ROOT / "specs" / "two_rooms.yaml", seed=0)
    t0 = time.time()
    res = jg.train(model, "two_rooms", steps=steps, batch_size=batch, lr=lr, warmup=steps // 10,
                   progress=False, log_every=max(steps // 10, 1), monitor_every=max(steps // 5, 1))
    secs = time.time() - t0
    model.eval()
    src = make_source("two_rooms", {"horizon": horizon, "episodes": 256}, spec_inputs(model), seed=999)
    held_out = src.batch(0, 2048)
    err = rollout_error(model, held_out["x_seq"], held_out["a_seq"], target="target")
    c = collapse_stats(model.encode(x=src.batch(1, 1024)["x"])["state"].detach())
    return {"steps": steps, "batch": batch, "train_s": round(secs), "loss_first": res.history[0]["loss"],
            "loss_last": res.history[-1]["loss"], "error": err, "std": c["std"], "erank": c["erank"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("check", choices=["ijepa", "vicreg", "two_rooms"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", default=None, help="write the trained weights here")
    ap.add_argument("--views", choices=list(VIEWS), default="standard",
                    help="vicreg: the two views' augmentations (keep-position: milder crops, no flip)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.check == "two_rooms":
        r = run_two_rooms(args.steps, args.batch, args.lr or 1e-3)
        print(f"two_rooms: {r['steps']} steps x {r['batch']} in {r['train_s']} s; loss {r['loss_first']:.3f} -> "
              f"{r['loss_last']:.3f}; representation std {r['std']:.3f}, effective rank {r['erank']:.1f}")
        print("| horizon | " + " | ".join(str(h + 1) for h in range(len(r["error"]["model"]))) + " |")
        print("|---" * (len(r["error"]["model"]) + 1) + "|")
        for k in ("model", "copy_last"):
            print(f"| {k} | " + " | ".join(f"{v:.3f}" for v in r["error"][k]) + " |")
        return
    spec, feat, lr = {"ijepa": ("ijepa.jepa", IJEPA_FEATURES, 1e-3),
                      "vicreg": ("vicreg.jepa", VICREG_FEATURES, 1e-3)}[args.check]
    r = run_image(spec, args.steps, args.batch, args.lr or lr, feat, args.save, VIEWS[args.views])
    print(f"{args.check}: {r['steps']} steps x {r['batch']} in {r['train_s']} s; loss {r['loss_first']:.3f} -> "
          f"{r['loss_last']:.3f}")
    print("| encoder, features | class accuracy (4 shapes) | centre R^2 | feature std | effective rank |")
    print("|---|---|---|---|---|")
    for k, v in r.items():
        if isinstance(v, dict):
            print(f"| {k} | {v['class_acc']:.3f} | {v['pos_r2']:.3f} | {v['std']:.3f} | {v['erank']:.1f} |")


if __name__ == "__main__":
    main()
