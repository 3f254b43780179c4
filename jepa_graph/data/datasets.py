"""Your own data: tensors, map-style ``torch.utils.data`` datasets, or random example inputs.

Each wraps into the same step-indexed interface as the procedural sources
(:meth:`~jepa_graph.data.DataSource.batch`), so resuming and sharding stay exact:

* :class:`TensorSource`: a dict of (N, ...) tensors; each step draws a random batch.
* :class:`DatasetSource`: any map-style dataset whose items are dicts, or tuples named by
  ``names`` (``names=["x", "x_next", "a"]``); epochs are random permutations of the indices.
  Batches must be drawable by index for any step, so an ``IterableDataset`` (a stream) or a
  ``DataLoader`` is refused with a hint: pass the loader's ``.dataset``, or collect a stream into
  tensors (``TensorSource``), or write a source whose ``batch(step, size, rank, world)`` reads it.
* :class:`ExampleSource`: the program's random example inputs (smoke tests, throughput).

Example::

    ds = torch.utils.data.TensorDataset(xs, ys)
    jg.train(model, DatasetSource(ds, names=["x", "y"]), steps=100)   # or jg.train(model, ds, names=[...])
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from ..core.errors import SpecError
from . import step_seed


class StepSource:
    """Base of the wrappers: ``batch(step, size, rank, world)`` like a registered source."""

    seed = 0

    def batch(self, step: int, size: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
        idx = self.indices(step, size)
        if world > 1:
            per = size // world
            idx = idx[rank * per:(rank + 1) * per]
        return self.fetch(idx)


class TensorSource(StepSource):
    """Random batches (with replacement across steps, without within one) from (N, ...) tensors."""

    def __init__(self, tensors: dict[str, torch.Tensor], seed: int = 0):
        sizes = {k: v.shape[0] for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise SpecError(f"data tensors need one length, got {sizes}", hint="every tensor is (N, ...)")
        self.tensors, self.seed, self.n = tensors, seed, next(iter(sizes.values()))

    def indices(self, step: int, size: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(step_seed(self.seed, step))
        if size <= self.n:
            return torch.randperm(self.n, generator=gen)[:size]
        return torch.randint(0, self.n, (size,), generator=gen)

    def fetch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.tensors.items()}


class DatasetSource(StepSource):
    """A map-style dataset, read in epochs of random order; items are dicts or named tuples."""

    def __init__(self, dataset: Dataset, names: Sequence[str] | None = None, seed: int = 0):
        if isinstance(dataset, DataLoader):  # batching, order and sharding are the trainer's
            raise SpecError("a DataLoader is not a dataset: the trainer batches, shuffles and shards itself",
                            hint="pass its dataset: jg.train(model, loader.dataset, names=[...]) "
                                 "(batch_size comes from train.batch_size)")
        if isinstance(dataset, IterableDataset):  # a stream cannot give the batch of an arbitrary step
            raise SpecError(f"{type(dataset).__name__} is an IterableDataset: the trainer draws each step's batch "
                            "by index (so runs resume and shard exactly), which a stream cannot give",
                            hint="collect it into tensors, jg.train(model, {'x': torch.stack(xs), ...}), or wrap "
                                 "it in an object with batch(step, size, rank, world) -> dict of (B, ...) tensors")
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise SpecError(f"{type(dataset).__name__} is not a map-style dataset",
                            hint="give a torch.utils.data.Dataset with __len__ and __getitem__")
        self.ds, self.names, self.seed, self.n = dataset, list(names) if names else None, seed, len(dataset)
        if self.n == 0:
            raise SpecError("the dataset is empty")

    def indices(self, step: int, size: int) -> torch.Tensor:
        # positions step*size ... step*size+size-1 in the endless concatenation of epoch permutations
        start = step * size
        out, pos = [], start
        while pos < start + size:
            epoch, off = divmod(pos, self.n)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(step_seed(self.seed, -1 - epoch)))
            take = min(self.n - off, start + size - pos)
            out.append(perm[off:off + take])
            pos += take
        return torch.cat(out)

    def fetch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        items = [self._named(self.ds[int(i)]) for i in idx]
        return default_collate(items)

    def _named(self, item: Any) -> dict[str, Any]:
        if isinstance(item, dict):
            return item
        if self.names is None:
            raise SpecError(f"dataset items are {type(item).__name__}, not dicts",
                            hint="name what it yields: jg.train(model, dataset, names=['x', 'x_next', 'a'])")
        item = item if isinstance(item, (tuple, list)) else (item,)
        if len(item) != len(self.names):
            raise SpecError(f"dataset items have {len(item)} parts but names has {len(self.names)}: {self.names}")
        return dict(zip(self.names, item))


class ExampleSource(StepSource):
    """Random inputs of the right shapes for one of the model's programs (no learning signal)."""

    def __init__(self, model, program: str = "loss", seed: int = 0):
        self.model, self.program, self.seed = model, program, seed

    def batch(self, step: int, size: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):  # leaves the global stream untouched
            torch.manual_seed(step_seed(self.seed, step))
            full = self.model.example_inputs(size, self.program)
        if world == 1:
            return full
        per = size // world
        return {k: v[rank * per:(rank + 1) * per] for k, v in full.items()}
