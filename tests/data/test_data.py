"""Data sources: masks, procedural images and videos, Two Rooms, fork, user datasets, sharding."""
from __future__ import annotations

import pytest
import torch

import jepa_graph as jg
from jepa_graph.data import get_source, list_sources, make_source
from jepa_graph.data.datasets import DatasetSource, TensorSource
from jepa_graph.data.masks import multiblock_batch, tube_batch
from jepa_graph.data.shapes import augment, render_shapes
from jepa_graph.data.two_rooms import TwoRooms, collect
from jepa_graph.core.tensors import TType
from jepa_graph.training.trainer import Trainer

from conftest import SPECS


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, a shared machine


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_builtin_sources_are_registered():
    assert {"two_rooms", "shapes", "video", "fork"} <= set(list_sources())
    with pytest.raises(jg.SpecError, match="unknown data source `shape`") as e:
        get_source("shape")
    assert "did you mean `shapes`" in str(e.value)


@pytest.mark.parametrize("grid,n_ctx,n_tgt", [((4, 4), 10, 4), ((8, 8), 30, 12), ((4, 4), 4, 12)])
def test_multiblock_masks_have_exact_disjoint_counts(grid, n_ctx, n_tgt):
    ctx, tgt = multiblock_batch(64, grid, n_ctx, n_tgt, gen())
    assert ctx.shape == (64, n_ctx) and tgt.shape == (64, n_tgt) and ctx.dtype == torch.long
    N = grid[0] * grid[1]
    for c, t in zip(ctx, tgt):
        assert len(set(c.tolist()) | set(t.tolist())) == n_ctx + n_tgt  # no repeats, disjoint
        assert c.min() >= 0 and t.max() < N and torch.equal(c, c.sort().values)
    # masks vary between samples, and are reproducible from the generator
    assert len({tuple(t.tolist()) for t in tgt}) > 10
    assert torch.equal(multiblock_batch(64, grid, n_ctx, n_tgt, gen())[1], tgt)


def test_multiblock_targets_are_blocks_not_scatter():
    # with room to spare, targets come from rectangles: most target patches touch another one
    _, tgt = multiblock_batch(32, (8, 8), 20, 12, gen())
    touching = 0
    for t in tgt.tolist():
        s = set(t)
        touching += sum(any(q in s for q in (p - 1, p + 1, p - 8, p + 8)) for p in t) / len(t)
    assert touching / 32 > 0.8


def test_tube_masks_repeat_over_time():
    ctx, tgt = tube_batch(8, (4, 4, 4), 28, 36, gen())
    assert ctx.shape == (8, 28) and tgt.shape == (8, 36)
    for c, t in zip(ctx, tgt):
        spatial = [set((v % 16 for v in x.tolist() if v // 16 == time)) for x in (t,) for time in range(4)]
        assert all(s == spatial[0] for s in spatial) and len(spatial[0]) == 9
        assert not set(c.tolist()) & set(t.tolist())
    with pytest.raises(ValueError, match="divisible"):
        tube_batch(2, (4, 4, 4), 27, 36, gen())


def test_shapes_render_where_they_say():
    d = render_shapes(16, 32, gen(), noise=0.0)
    assert d["image"].shape == (16, 3, 32, 32) and d["label"].max() < 4
    for img, pos, lab in zip(d["image"], d["pos"], d["label"]):
        col = int((pos[0] + 1) / 2 * 32)
        row = int((pos[1] + 1) / 2 * 32)
        centre = img[:, row, col].max()
        assert (centre > 0.9) == (lab != 3)  # solid shapes cover their centre; a ring does not
        assert img[:, 0, 0].max() == 0 or img.sum() > 0
    v1, v2 = augment(d["image"], gen(1)), augment(d["image"], gen(2))
    assert v1.shape == d["image"].shape and not torch.allclose(v1, v2)


def test_shapes_source_sizes_masks_and_views_from_the_spec():
    ij = jg.compile(SPECS / "ijepa.jepa")
    src = make_source("shapes", {}, {n.name: n.ttype for n in ij.graph.nodes.values() if n.op == "input"})
    b = src.batch(0, 8)
    assert b["image"].shape == (8, 3, 32, 32) and b["ctx_idx"].shape == (8, 10) and b["tgt_idx"].shape == (8, 4)
    ij.loss(**{k: b[k] for k in ("image", "ctx_idx", "tgt_idx")})  # runs on the compiled spec
    views = make_source("shapes", {}, {"x1": TType((3, 32, 32)), "x2": TType((3, 32, 32))}).batch(0, 4)
    assert views["x1"].shape == (4, 3, 32, 32) and not torch.equal(views["x1"], views["x2"])


def test_source_parameters_are_validated_with_locations():
    with pytest.raises(jg.SpecError, match=r"`pach`") as e:
        make_source("shapes", {"pach": 4}, {})
    assert "did you mean `patch`" in str(e.value)
    with pytest.raises(jg.SpecError, match="not a multiple of patch"):
        make_source("shapes", {"patch": 5}, {"image": TType((3, 32, 32))})


def test_two_rooms_wall_door_and_expert():
    env = TwoRooms(door=0.4, speed=0.1)
    s = torch.tensor([[-0.05, 0.8], [-0.05, 0.0], [0.5, 0.5]])
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    s1 = env.step(s, a)
    assert s1[0, 0] < 0  # the wall stops the agent above the door
    assert s1[1, 0] > 0  # through the door
    assert torch.allclose(s1[2], torch.tensor([0.6, 0.5]))
    start = torch.tensor([[-0.6, 0.7]] * 8) + 0.1 * torch.randn(8, 2, generator=gen())
    goal = torch.tensor([[0.6, -0.6]] * 8)
    for _ in range(60):
        s = env.step(start, env.expert(start, goal))
        start = s
    assert env.success(start, goal).all()  # the expert crosses the door and arrives
    img = env.render(start, goal)
    assert img.shape == (8, 3, 64, 64) and img[:, 0].amax() > 0.9 and img[:, 1].amax() > 0.9


def test_two_rooms_trajectories_never_cross_the_wall():
    env = TwoRooms()
    d = collect(env, 64, 40, "random", 0.5, gen())
    S = d["states"]
    assert S.shape == (64, 41, 2) and d["actions"].shape == (64, 40, 2)
    crossed = (S[:, :-1, 0] * S[:, 1:, 0] < 0)
    mid_y = (S[:, :-1, 1] + S[:, 1:, 1]) / 2
    assert (mid_y[crossed].abs() < 0.2 + 0.1).all()  # crossings happen at the door only
    assert (S.abs() <= 1).all()


def test_two_rooms_source_state_pixels_and_sequences():
    tr = jg.compile(SPECS / "two_rooms.yaml")
    inputs = {n.name: n.ttype for n in tr.graph.nodes.values() if n.op in ("input", "action")}
    src = make_source("two_rooms", {"episodes": 16, "length": 10, "horizon": 4}, inputs, seed=3)
    b = src.batch(5, 8)
    assert b["x"].shape == (8, 2) and b["a"].shape == (8, 2) and b["x_seq"].shape == (8, 5, 2)
    assert torch.allclose(b["x_seq"][:, 0], b["x"]) and torch.allclose(b["x_seq"][:, 1], b["x_next"])
    assert torch.equal(src.batch(5, 8)["x"], b["x"]) and not torch.equal(src.batch(6, 8)["x"], b["x"])
    pix = make_source("two_rooms", {"episodes": 4, "length": 5, "obs": "pixels"}, inputs).batch(0, 2)
    assert pix["x"].shape == (2, 3, 64, 64) and pix["goal"].shape == (2, 3, 64, 64)


def test_video_source_and_fork_source():
    vj = jg.compile(SPECS / "vjepa.jepa")
    inputs = {n.name: n.ttype for n in vj.graph.nodes.values() if n.op == "input"}
    b = make_source("video", {}, inputs).batch(0, 2)
    assert b["clip"].shape == (2, 3, 8, 32, 32) and b["ctx_idx"].shape == (2, 28) and b["tgt_idx"].shape == (2, 36)
    assert not torch.equal(b["clip"][:, :, 0], b["clip"][:, :, -1])  # it moves
    vj.loss(**{k: b[k] for k in ("clip", "ctx_idx", "tgt_idx")})
    f = make_source("fork", {}, {}).batch(0, 256)
    assert f["x"].shape == (256, 4) and 0.3 < f["branch"].float().mean() < 0.7
    assert (f["y"][:, 1] > 0).float().mean() > 0.3 and (f["y"][:, 1] < 0).float().mean() > 0.3  # bimodal


def test_shards_partition_the_global_batch():
    src = make_source("fork", {}, {}, seed=1)
    full = src.batch(3, 8)
    parts = [src.batch(3, 8, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat([p["x"] for p in parts]), full["x"])


def test_user_dataset_epochs_and_names():
    ds = torch.utils.data.TensorDataset(torch.arange(10).float()[:, None], torch.arange(10).float()[:, None] * 2)
    src = DatasetSource(ds, names=["x", "y"], seed=0)
    seen = torch.cat([src.batch(s, 5)["x"].flatten() for s in range(2)])
    assert sorted(seen.tolist()) == list(range(10))  # one epoch = every item once
    b = src.batch(2, 4)
    assert torch.equal(b["y"], 2 * b["x"])
    with pytest.raises(jg.SpecError, match="name what it yields"):
        DatasetSource(ds).batch(0, 2)
    t = TensorSource({"x": torch.arange(6.0)[:, None]}).batch(0, 4)
    assert t["x"].shape == (4, 1)


def test_views_mirror_only_when_asked():
    """With no crop, jitter or noise a view is the image itself, or its mirror image when `flip` is on."""
    img = render_shapes(16, 32, torch.Generator().manual_seed(0))["image"]
    plain = augment(img, torch.Generator().manual_seed(1), crop=(1.0, 1.0), jitter=0.0, noise=0.0, flip=False)
    torch.testing.assert_close(plain, img, atol=1e-5, rtol=0)
    views = augment(img, torch.Generator().manual_seed(1), crop=(1.0, 1.0), jitter=0.0, noise=0.0)
    mirrored = [(v - i.flip(-1)).abs().max() < 1e-5 for v, i in zip(views, img)]
    same = [(v - i).abs().max() < 1e-5 for v, i in zip(views, img)]
    assert all(m or s for m, s in zip(mirrored, same)) and any(mirrored) and any(same)


def test_two_rooms_sequences_are_pixels_when_observations_are():
    tr = jg.compile(SPECS / "two_rooms.yaml")
    inputs = {n.name: n.ttype for n in tr.graph.nodes.values() if n.op in ("input", "action")}
    src = make_source("two_rooms", {"episodes": 4, "length": 6, "horizon": 3, "obs": "pixels"}, inputs, seed=1)
    b = src.batch(0, 2)
    assert b["x_seq"].shape == (2, 4, 3, 64, 64) and b["a_seq"].shape == (2, 3, 2)
    assert torch.equal(b["x_seq"][:, 0], b["x"]) and torch.equal(b["x_seq"][:, 1], b["x_next"])


@pytest.mark.parametrize("source,params,msg", [
    ("shapes", {"target_scale": [0.9, 0.1]}, r"`target_scale`: \[0.9, 0.1\] is a \[lo, hi\] range: lo must not exceed"),
    ("shapes", {"target_scale": [2, 3]}, r"`target_scale`: \[2, 3\] are fractions of the frame: each in \(0, 1\]"),
    ("shapes", {"context_scale": [0, 1]}, r"`context_scale`: \[0, 1\] are fractions"),
    ("shapes", {"crop": [0.5, 1.5]}, r"`crop`: \[0.5, 1.5\] are fractions"),
    ("shapes", {"scale": [0.5, 0.2]}, r"`scale`: \[0.5, 0.2\] is a \[lo, hi\] range"),
    ("shapes", {"target_aspect": [0, 1.5]}, r"`target_aspect`: \[0, 1.5\] are ratios: each above 0"),
    ("shapes", {"target_aspect": [2, 1]}, r"`target_aspect`: \[2, 1\] is a \[lo, hi\] range"),
    ("video", {"target_scale": [0.6, 0.5]}, r"`target_scale`: \[0.6, 0.5\] is a \[lo, hi\] range"),
    ("two_rooms", {"episodes": True}, r"`episodes`: `true` is not a number"),
    ("fork", {"noise": "0.1"}, r"`noise`: `0.1` is text, not a number"),
])
def test_source_ranges_and_numbers_are_checked(source, params, msg):
    with pytest.raises(jg.SpecError, match=rf"data source `{source}`: {msg}"):
        make_source(source, params, {})


def test_source_numbers_in_exponent_form_and_aspects_above_one_are_fine():
    assert make_source("fork", {"noise": "1e-3"}, {}).p.noise == 1e-3  # PyYAML reads `1e-3` as text
    assert make_source("shapes", {"target_aspect": [1.5, 3], "crop": [1, 1]}, {}).p.target_aspect == (1.5, 3)
    assert make_source("fork", {"paired": True}, {}).check_batch_size(3)  # an odd shard would split a pair
    assert make_source("fork", {"paired": True}, {}).check_batch_size(4) is None


def test_streams_and_loaders_are_refused_with_a_way_out():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from ({"x": torch.zeros(2)} for _ in range(4))

        def __len__(self):  # a length does not make it indexable
            return 4

    with pytest.raises(jg.SpecError, match="is an IterableDataset") as e:
        DatasetSource(Stream())
    assert "collect it into tensors" in str(e.value) and "batch(step, size, rank, world)" in str(e.value)
    ds = torch.utils.data.TensorDataset(torch.zeros(4, 2))
    with pytest.raises(jg.SpecError, match="a DataLoader is not a dataset") as e:
        DatasetSource(torch.utils.data.DataLoader(ds, batch_size=2))
    assert "loader.dataset" in str(e.value)


def test_training_without_a_data_source_warns(caplog):
    model = jg.compile(SPECS / "fork_no_latent.jepa", seed=0)
    with caplog.at_level("WARNING", logger="jepa_graph"):
        Trainer(model, steps=1, batch_size=4, progress=False)  # the spec's train.data: fork, no warning
    assert "random example inputs" not in caplog.text
    with caplog.at_level("WARNING", logger="jepa_graph"):
        Trainer(model, steps=1, batch_size=4, progress=False, data=None, config={"data": None})
    assert "`fork_no_latent` names no data source (train.data), so it trains on random example inputs" in caplog.text
