"""Device selection: ``-1`` is the CPU, ``k`` is ``cuda:k``; fail early and clearly otherwise.
Also the process-wide CPU settings of the scripts: subnormal floats, reuse of freed memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import TYPE_CHECKING

import dgl
import torch

if TYPE_CHECKING:
    from glassgnn.config import TrainConfig

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


def select_device(index: int) -> torch.device:
    """The device for ``--device index``, checked to work with both torch and DGL.

    Args:
        index: -1 for the CPU, k >= 0 for the k-th CUDA GPU.

    Raises:
        DeviceError: CUDA is unavailable to torch, the GPU does not exist, or DGL is a
            CPU-only build (its graphs cannot move to the GPU).
    """
    if index < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise DeviceError(
            f"--device={index} asks for GPU cuda:{index}, but torch {torch.__version__} ({build}) sees no "
            "usable CUDA device. Run on the CPU with --device=-1, or install CUDA builds of torch and DGL "
            "(https://www.dgl.ai/pages/start.html) on a machine with an NVIDIA driver."
        )
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device={index}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    device = torch.device(f"cuda:{index}")
    try:
        dgl.graph(([0], [0])).to(device)
    except dgl.DGLError as err:
        raise DeviceError(
            f"--device={index}: torch sees CUDA but DGL {dgl.__version__} cannot use it ({err}); this is "
            "DGL's CPU-only build. Install a CUDA build of DGL matching torch "
            "(https://www.dgl.ai/pages/start.html) or run with --device=-1."
        ) from None
    return device


def flush_denormals(enabled: bool = True) -> None:
    """Treat subnormal floats (|x| < 1.2e-38 in float32) as zero in CPU arithmetic, or not.

    The mode is a per-thread CPU flag that new threads inherit: call this before the first
    parallel torch operation (before loading data), so that torch's worker threads,
    started then, inherit it. Called later, it reaches the calling thread only. The
    scripts call it first thing.

    Backward passes through saturating activations (softplus, sigmoid) and smooth cutoffs
    produce subnormal gradients, which x86 CPUs process up to ~100x slower than normal
    numbers: with them, SchNet's training step on the CuZr full batch took twice as long.
    Flushing them changes values only below float32's normal range, far inside float
    tolerance. Process-wide (torch.set_flush_denormal); no effect on GPU arithmetic.
    """
    torch.set_flush_denormal(enabled)


def reuse_freed_memory() -> bool:
    """Serve large allocations from the C heap and keep freed memory there for reuse (glibc).

    glibc maps every large block (a [n_edges, width] tensor of a full-batch step) fresh from
    the operating system and unmaps it when freed, so the next step faults all of that
    memory in again; on the CuZr full batch this is about a tenth to a quarter of a
    training step (symgnn 6.98 -> 6.15 s, schnet 5.2 -> 3.9 s). With mmap off and heap
    trimming at its maximum, freed blocks are reused instead. The cost: the process keeps
    its peak and fragmentation raises it over time (symgnn 5.5 GiB -> 6.1 GiB after 3
    epochs and 7.6 GiB after 40; schnet 4.7 -> 6.5 GiB).
    Affects later allocations only; call it before loading data. Returns False, changing
    nothing, where glibc's ``mallopt`` is not available.
    """
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h> parameter numbers
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return mallopt(m_mmap_max, 0) == 1 and mallopt(m_trim_threshold, 2**31 - 1) == 1


def configure_cpu(cfg: TrainConfig) -> None:
    """Apply a training configuration's process-wide CPU settings; call it before loading data.

    Args:
        cfg: the run's configuration: ``flush_denormal`` and ``reuse_freed_memory`` (see
            :func:`flush_denormals` and :func:`reuse_freed_memory`).
    """
    flush_denormals(cfg.flush_denormal)
    if cfg.reuse_freed_memory and not reuse_freed_memory():
        log.warning("reuse_freed_memory needs glibc's mallopt, which this system lacks; ignored")
