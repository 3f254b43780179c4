"""Atomic file writes: a reader (or a kill) never sees half a file.

Every file the library rewrites goes through here: the data goes to a temporary file in the
target's folder, is flushed and fsynced, then renamed over the target (atomic on POSIX and
Windows), and the folder is fsynced so the rename survives a power cut. A process killed
mid-write leaves the previous file whole and, at worst, a ``.<name>.<pid>.tmp`` file that the
next write to the same target removes (:func:`remove_stale`).

Example::

    atomic_write("runs/a/metrics.jsonl", text)
    with atomic_writer("runs/a/last.pt") as f:   # a binary file object
        torch.save(payload, f)
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Iterator


def _tmp_name(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A file object whose content replaces ``path`` only when the ``with`` block ends cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = _tmp_name(path, os.getpid())
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # the block raised: the target keeps its old content
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Replace ``path``'s content by ``data`` atomically; returns the path."""
    with atomic_writer(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return Path(path)


def remove_stale(path: str | Path) -> list[Path]:
    """Remove temporary files that killed writers of ``path`` left behind (their process is gone)."""
    path = Path(path)
    gone = []
    if not path.parent.is_dir():
        return gone
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2: -len(".tmp")]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            tmp.unlink()
            gone.append(tmp)
        except FileNotFoundError:  # another process cleaned it first
            pass
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:  # platforms without signal 0: keep the file rather than guess
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. folders on filesystems without fsync support
        pass
    finally:
        os.close(fd)
