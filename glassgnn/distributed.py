"""Data-parallel training under ``torchrun``: process group, sharding, gathering.

``torchrun --nproc_per_node=N train.py ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
without them everything here degrades to a single process. The backend is gloo on
the CPU and nccl on GPUs. Training graphs are sharded across ranks (each rank takes
every N-th graph of the epoch's shuffled order) and PyTorch DistributedDataParallel
averages the gradients; evaluation predictions are gathered so that every rank
computes the same metrics and takes the same early-stopping decision.

When a process dies, the others fail in their next collective (gloo: the TCP connection
to it is closed) and stop with one line (:func:`lost_peer`); torchrun then ends the run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Rank of this process, number of processes and rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device_index: int) -> DistInfo:
    """Join the process group when launched by torchrun; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if device_index >= 0 and torch.cuda.is_available():
            torch.cuda.set_device(info.local_rank)  # nccl collectives use the current device
        dist.init_process_group(backend="nccl" if device_index >= 0 else "gloo")
    return info


def shutdown(info: DistInfo) -> None:
    """Leave the process group (if joined)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: list, info: DistInfo) -> list:
    """This rank's share of ``items``: every world_size-th item, padded by wrapping around.

    DDP needs the same number of steps on every rank, so each rank gets
    ceil(len / world_size) items (as torch's DistributedSampler does).
    """
    if not info.enabled:
        return list(items)
    if len(items) < info.world_size:
        raise ValueError(f"{len(items)} training graphs cannot be shared by {info.world_size} processes")
    per_rank = -(-len(items) // info.world_size)
    padded = list(items) + list(items)[: per_rank * info.world_size - len(items)]
    return padded[info.rank :: info.world_size]


def gather_objects(obj: Any, info: DistInfo) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for all ranks."""
    if info.enabled:
        dist.barrier()


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """Under torchrun each process drives the GPU of its local rank."""
    if device.type == "cuda" and info.enabled:
        return torch.device(f"cuda:{info.local_rank}")
    return device


# gloo reports a collective whose peer is gone as a plain RuntimeError from its TCP
# transport ("Connection closed by peer", "Read error ... Connection reset by peer");
# nccl and newer torch versions raise DistBackendError.
_GLOO_TRANSPORT = re.compile(r"gloo/transport/")


def lost_peer(err: BaseException, info: DistInfo) -> str | None:
    """One line saying that the run lost a process, when ``err`` is a failed collective; else None.

    Args:
        err: an exception raised during training.
        info: this process's place in the run (single-process runs never lose a peer).
    """
    if not info.enabled or not isinstance(err, RuntimeError):
        return None
    if not (isinstance(err, dist.DistBackendError) or _GLOO_TRANSPORT.search(str(err))):
        return None
    detail = (str(err).strip().splitlines() or [type(err).__name__])[-1]
    return (
        f"process {info.rank} of {info.world_size}: a collective operation failed ({detail}); another "
        "process of the run stopped, was killed or is unreachable, so the whole run stops; continue it "
        "with --resume (same --output_dir) under torchrun"
    )
