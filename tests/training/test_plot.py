"""``jepa-graph plot``'s panels: the wall-leak probe's shares apart from the losses, on their own 0-1 scale."""
from __future__ import annotations

import json

from jepa_graph.cli.main import main
from jepa_graph.training.plot import panels_of, plot_run


def test_leak_and_stall_shares_get_their_own_panel_and_counts_none(tmp_path, capsys):
    rows = [{"step": s, "loss": 10.0 / s, "pred": 1e-3 * s, "lr": 1e-3, "steps_per_s": 5.0, "ema.target": 0.99,
             "collapse.state.std": 0.5, "collapse.state.erank": 3.0, "leak.step": 0.25 * (s - 1),
             "leak.rollout": float("nan") if s == 2 else 0.5, "stall.step": 0.0, "stall.rollout": 0.1,
             "leak.blocked": 40.0} for s in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # NaN as json writes it
    panels = dict(panels_of(list(rows[0])))
    assert panels["loss terms"] == ["loss", "pred"]  # no shares, no count: the log scale is the losses' own
    shares = [ks for title, ks in panels.items() if title.startswith("wall-leak probe")]
    assert shares == [["leak.step", "leak.rollout", "stall.step", "stall.rollout"]]
    assert not any("leak.blocked" in ks for ks in panels.values())
    assert panels["std per dim (mean): near 0 = collapse"] == ["collapse.state.std"]
    assert panels["effective rank: near 1 = collapse"] == ["collapse.state.erank"]
    assert plot_run(tmp_path).stat().st_size > 1000
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "m.png")]) == 0 and (tmp_path / "m.png").is_file()


def test_a_run_without_the_probe_has_no_share_panel():
    titles = [t for t, _ in panels_of(["step", "loss", "lr", "ema.target"])]
    assert titles == ["loss terms", "learning rate", "EMA momentum"]
