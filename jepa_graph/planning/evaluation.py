"""Evaluation episodes for a planner: the success table, and a PNG of sample trajectories.

:func:`evaluate` runs ``episodes`` episodes of :func:`~.control.control`, ``env.num_envs`` at a
time; round r resets the environments with seed ``seed + r`` (held-out seeds: training data
comes from other ones), and every episode's plans draw from streams of its global index, so the
table does not depend on how the episodes are batched. Under ``torchrun`` rank k of W runs rounds
k, k + W, ...; the rows are gathered on every rank.

Example::

    table, sample = evaluate(model, jg.envs.make("two_rooms", n=16), "cem", episodes=64)
    table["success_rate"], table["ci95"], table["plan_ms_per_step"]
    plot_trajectories(sample, env, "plan.png")
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from ..core.errors import SpecError
from ..envs.baselines import wilson
from ..envs.two_rooms import TwoRoomsEnv
from ..envs.wall_rooms import TwoRoomsWallEnv
from .mpc import Run, control


def evaluate(model, env, planner: Any = "cem", *, episodes: int = 32, seed: int = 10_000, rank: int = 0,
             world: int = 1, keep_sample: bool = True, on_step: Callable[[int], None] | None = None,
             **control_options: Any) -> tuple[dict[str, Any], Run | None]:
    """Run ``episodes`` planned episodes (see the module doc); ``on_step`` goes to every round's
    :func:`~.mpc.control` (called with t after each step of all ``env.num_envs`` environments, t
    starting at 0 in each round), e.g. to move a progress bar. Returns ``(table, sample)``: the table
    (``episodes``, ``successes``, ``success_rate``, ``ci95`` (Wilson), ``mean_path_length``,
    ``mean_steps``, ``mean_final_distance`` (where the environment exposes positions),
    ``plan_ms_per_step`` (one planning of all ``env.num_envs`` environments), ``rows`` (one dict
    per episode)) and the first round's :class:`Run` with its plans (rank 0; None elsewhere)."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise SpecError(f"episodes must be a whole number >= 1, got {episodes!r}")
    n = env.num_envs
    rows, sample, plan_s, steps = [], None, 0.0, 0
    for r in range(rank, math.ceil(episodes / n), world):
        first = r == 0 and keep_sample
        run = control(model, env, planner, seed=seed + r, episode_offset=r * n, keep_plans=first, keep_frames=first,
                      on_step=on_step, **control_options)
        length = run.path_length()
        final = None
        if run.positions is not None and run.goal_positions is not None:
            end = run.positions[run.lengths.clamp(min=1).long().to(run.positions.device),
                                torch.arange(n, device=run.positions.device)]
            final = (end - run.goal_positions.to(end.device)).flatten(1).norm(dim=1)
        for i in range(min(n, episodes - r * n)):
            rows.append({"episode": r * n + i, "seed": seed + r, "success": bool(run.success[i]),
                         "path_length": float(length[i]), "steps": int(run.lengths[i]),
                         "final_distance": None if final is None else float(final[i])})
        plan_s += sum(run.plan_time)
        steps += int(run.actions.shape[0])
        if first:
            sample = run
    rows, plan_s, steps = _gather(rows, plan_s, steps)
    return summarize(rows, plan_s, steps), sample


def summarize(rows: list[dict[str, Any]], plan_s: float, steps: int) -> dict[str, Any]:
    """The table of episode ``rows`` (see :func:`evaluate`)."""
    rows = sorted(rows, key=lambda r: r["episode"])
    k, n = sum(r["success"] for r in rows), len(rows)
    finals = [r["final_distance"] for r in rows if r["final_distance"] is not None]
    return {"episodes": n, "successes": k, "success_rate": k / n, "ci95": wilson(k, n),
            "mean_path_length": sum(r["path_length"] for r in rows) / n,
            "mean_steps": sum(r["steps"] for r in rows) / n,
            "mean_final_distance": sum(finals) / len(finals) if finals else None,
            "plan_ms_per_step": 1000.0 * plan_s / max(steps, 1), "rows": rows}


def _gather(rows: list, plan_s: float, steps: int) -> tuple[list, float, int]:
    """Every rank's rows (and planning seconds, steps) on every rank; unchanged without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows, plan_s, steps
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (rows, plan_s, steps))
    return [r for p in parts for r in p[0]], sum(p[1] for p in parts), sum(p[2] for p in parts)


# ------------------------------------------------------------------------------------- the PNG
def plot_trajectories(run: Run, env, path: str | Path, n: int = 4, title: str = "") -> Path:
    """Draw ``n`` episodes of ``run`` (recorded with ``keep_plans`` and ``keep_frames``): the walls
    (Two Rooms Wall: the border and the centre wall with its door, from the layout the run
    recorded; else the first frame), start, goal, the path taken, and about six of the plans made
    on the way: the predicted states where they are positions, else (a learned state is not) the
    planned actions replayed from where each plan was made in the environment's true dynamics
    (Two Rooms, and always in Two Rooms Wall, whose states are never bare positions). Returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SpecError(f"cannot write trajectories to `{path}`: they are drawn as a PNG", hint="e.g. -o plan.png")
    try:
        # matplotlib: only to draw (an optional extra, and slow to import)
        import matplotlib
        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt  # after use("Agg"): the backend is chosen first
    except ImportError:
        raise SpecError("plotting needs matplotlib", hint="pip install 'jepa-graph[plot]'") from None
    n = max(1, min(n, run.episodes))
    pos = run.positions if run.positions is not None else run.obs
    if pos.dim() != 3 or pos.shape[-1] != 2:
        raise SpecError(f"trajectories are drawn in 2-D; this environment's states are {list(pos.shape[2:])}",
                        hint="plot positions of environments with a 2-D state (env.state)")
    extent, origin = _scene(env)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        L = int(run.lengths[i])
        layout = _layout(env, run, i)
        if layout is not None:
            _draw_walls(ax, env.rooms, float(layout[0]), float(layout[1]))
        elif run.frames is not None and extent is not None:
            ax.imshow(run.frames[i].cpu().numpy(), extent=extent, origin=origin, interpolation="nearest")
        shown = [p for p in run.plans if p[0] < L]  # the plans made during this episode, about six of them
        for j, (t, acts, states) in enumerate(shown[:: max(1, len(shown) // 6)]):
            p, how = _planned(env, pos[t, i], acts[i], states[i] if states is not None else None, layout)
            if p is not None:
                ax.plot(p[:, 0], p[:, 1], color="tab:orange", lw=0.8, alpha=0.7, label=how if j == 0 else None)
        p = pos[: L + 1, i].cpu()
        ax.plot(p[:, 0], p[:, 1], color="tab:blue", lw=1.6, label="path")
        ax.plot(p[0, 0], p[0, 1], "o", color="tab:red", ms=6, label="start")
        if run.goal_positions is not None:
            g = run.goal_positions[i].cpu()
            ax.plot(g[0], g[1], "*", color="tab:green", ms=11, label="goal")
        if extent is not None:
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal")
        ax.set_title(f"episode {i}: {'success' if bool(run.success[i]) else 'failure'} in {L} steps", fontsize=8)
        if i == 0:
            ax.legend(fontsize=6, loc="best", framealpha=0.6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scene(env) -> tuple[tuple[float, float, float, float] | None, str]:
    """How a frame of ``env`` lies in its position coordinates: (extent, origin) for imshow."""
    if isinstance(env, TwoRoomsEnv):
        return (-1.0, 1.0, -1.0, 1.0), "lower"  # rows are y from -1 (row 0) up
    if isinstance(env, TwoRoomsWallEnv):
        s = env.rooms.size
        return (-0.5, s - 0.5, s - 0.5, -0.5), "upper"  # pixels: rows are y, downwards
    return None, "lower"


def _layout(env, run: Run, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Episode ``i``'s ``(wall_x, door_y)``, each (1,), in Two Rooms Wall (from ``run.layout``: the
    environment has drawn new walls since, at every later reset); None elsewhere."""
    if not isinstance(env, TwoRoomsWallEnv) or not all(k in run.layout for k in ("wall_x", "door_y")):
        return None
    return run.layout["wall_x"][i:i + 1].cpu(), run.layout["door_y"][i:i + 1].cpu()


def _draw_walls(ax, rooms, wall_x: float, door_y: float) -> None:
    """Two Rooms Wall's walls as grey boxes in pixel coordinates: the border (x or y <= 4 or >= 60)
    and the centre wall |x - wall_x| <= 1, open at the door |y - door_y| <= 4."""
    e0, e1 = -0.5, rooms.size - 0.5  # the arena's edges, as the frame's pixels span it
    lo, hi = rooms.border
    w, d = rooms.wall_half, rooms.door_half
    boxes = [(e0, lo, e0, e1), (hi, e1, e0, e1), (e0, e1, e0, lo), (e0, e1, hi, e1),  # the border
             (wall_x - w, wall_x + w, lo, door_y - d), (wall_x - w, wall_x + w, door_y + d, hi)]  # centre wall
    for j, (x0, x1, y0, y1) in enumerate(boxes):
        ax.fill((x0, x1, x1, x0), (y0, y0, y1, y1), color="0.6", lw=0, zorder=0, label="walls" if j == 0 else None)


def _planned(env, start: torch.Tensor, acts: torch.Tensor, states: torch.Tensor | None,
             layout: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor | None, str]:
    """A plan as a path of positions (H + 1, 2) and how it was drawn. In Two Rooms Wall (given the
    episode's ``layout`` (wall_x, door_y), each (1,)) the planned actions ``acts`` (H, 2) replayed
    from ``start`` (2,) through the true dynamics, walls stopping them: its observations carry the
    layout or are pixels, so a model's states are never positions. Elsewhere the predicted
    ``states`` (H, 2) when they are positions; else Two Rooms' actions replayed likewise; None when
    nothing applies."""
    start = start.cpu()
    if isinstance(env, TwoRoomsWallEnv):
        if layout is None:
            return None, ""
        s, out = start[None], [start[None]]
        for a in acts.cpu():
            s, _ = env.rooms.move(s, a[None].to(s.dtype), *layout)
            out.append(s)
        return torch.cat(out), "plans (actions replayed)"
    if states is not None and states.shape[-1:] == start.shape and states.dim() == 2:
        return torch.cat([start[None], states.cpu()]), "plans (predicted)"
    if isinstance(env, TwoRoomsEnv):
        s, out = start[None], [start[None]]
        for a in acts.cpu():
            s = env.rooms.step(s, a[None])
            out.append(s)
        return torch.cat(out), "plans (actions replayed)"
    return None, ""
