"""Device selection: ``-1`` is the CPU, ``k`` is ``cuda:k``; fail early and clearly otherwise."""

from __future__ import annotations

import dgl
import torch


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
