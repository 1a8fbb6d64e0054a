"""Data parallelism for `torchrun` / `accelerate launch`: every rank runs the same suite in
lockstep; LLM training splits each global batch across ranks and averages gradients; scoring
splits rows across ranks and gathers them back (each row exactly once); only rank 0 takes run
locks and writes records.

Gradients are all-reduced by hand rather than through ``DistributedDataParallel`` because a
method's forward is not one ``nn.Module.__call__`` (soft tokens, layer hooks, several trained
modules per stage); averaging after ``backward`` is what DDP computes, without the bucketing.
Outside a launcher (no ``WORLD_SIZE`` > 1) every function here is a no-op for one process.
"""
from __future__ import annotations

import datetime
import os
import sys
from typing import Any, Sequence

import numpy as np


def _dist():
    """``torch.distributed`` while a launcher's process group is up, else None. Never imports
    torch: a group exists only once something imported ``torch.distributed`` (``setup`` does), so
    a single process, and a core install without torch, goes through here torch-free."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def setup(device: str) -> str:
    """Join the process group a launcher describes (gloo on CPU, NCCL on CUDA) and return this
    rank's device; a single process gets ``device`` back unchanged."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        from bench.errors import BenchError

        raise BenchError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} (a torchrun / accelerate launch) needs torch, "
                         "which is not installed", "pip install -c constraints.txt -e '.[llm]'") from None

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        # ranks wait at a barrier while rank 0 alone runs a non-LLM baseline (minutes to hours)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                                timeout=datetime.timedelta(hours=12))
    return device


def rank() -> int:
    d = _dist()
    return d.get_rank() if d else 0


def world_size() -> int:
    d = _dist()
    return d.get_world_size() if d else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    d = _dist()
    if d:
        d.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    d = _dist()
    if not d:
        return obj
    box = [obj]
    d.broadcast_object_list(box, src=0)
    return box[0]


def shard(indices: np.ndarray) -> np.ndarray:
    """This rank's share of ``indices`` (strided, so shares differ in size by at most one)."""
    return indices[rank()::world_size()]


def mean_scalar(value: float) -> float:
    """The mean of a per-rank float over ranks (the same number on every rank)."""
    d = _dist()
    if not d:
        return value
    import torch

    t = torch.tensor([value], dtype=torch.float64)
    d.all_reduce(t)
    return float(t.item()) / d.get_world_size()


def average_gradients(params: Sequence[Any]) -> None:
    """Replace each gradient by its mean over ranks (a rank without one contributes zeros)."""
    d = _dist()
    if not d:
        return
    import torch

    n = d.get_world_size()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        d.all_reduce(p.grad)
        p.grad.div_(n)


def gather_rows(n_rows: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Assemble a full ``n_rows`` array from each rank's (row indices, values); every row must come
    from exactly one rank."""
    d = _dist()
    out = np.full(n_rows, np.nan, dtype=np.float64)
    parts = [(rows, values)]
    if d:
        parts = [None] * d.get_world_size()
        d.all_gather_object(parts, (np.asarray(rows), np.asarray(values, dtype=np.float64)))
    seen = np.zeros(n_rows, dtype=np.int64)
    for r, v in parts:
        out[r] = v
        np.add.at(seen, r, 1)
    if not (seen == 1).all():
        raise RuntimeError(f"gathered scores cover {int((seen > 0).sum())}/{n_rows} rows, "
                           f"{int((seen > 1).sum())} more than once")
    return out


def on_main(fn: Any) -> Any:
    """Run ``fn()`` on rank 0 only (e.g. fill a shared cache) while the other ranks wait; an
    error there is raised on every rank, so no rank waits forever."""
    if world_size() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as e:  # re-raised below after every rank has heard of it
            error = e
    message = broadcast(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if message is not None:
        raise RuntimeError(f"rank 0 failed: {message}")
    return result


def teardown() -> None:
    d = _dist()
    if d:
        d.destroy_process_group()
