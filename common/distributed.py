"""Data-parallel runs under torchrun: which process this is, and rank 0 as the only writer of results."""
from __future__ import annotations

import os

from common.errors import UserError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0 writes run records, CSV rows, predictions, weights and the summary; the other ranks only train."""
    return rank() == 0


def per_device_batch(global_batch: int, key: str = "train.batch_size") -> int:
    """The config's batch is the global batch: each of N processes takes 1/N of it, so a run on N GPUs takes the
    same optimizer steps on the same batches as on one (16 on 4 GPUs: 4 reviews per GPU per step)."""
    n = world_size()
    if global_batch % n:
        raise UserError(f"{key}: {global_batch} does not divide over {n} processes (NPROC={n}); the global batch "
                        f"must stay the config's so results compare with one GPU: use NPROC that divides it")
    return global_batch // n


def gather(value) -> list:
    """Every rank's value, in rank order (one process: [value])."""
    import torch.distributed as dist

    if world_size() == 1 or not (dist.is_available() and dist.is_initialized()):
        return [value]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def say(*args, **kw) -> None:
    """print, from rank 0 only: one voice under torchrun (the other ranks train silently)."""
    if is_main():
        print(*args, **kw)
