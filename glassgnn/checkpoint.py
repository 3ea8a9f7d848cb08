"""Checkpoints that resume exactly: weights, optimiser, scheduler, loop state and every RNG state."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from glassgnn.fileio import atomic_path

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """State of the Python, numpy, torch CPU and (if present) CUDA random generators."""
    # The legacy global numpy generator is saved because library code may draw from it.
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` (plus the format version) temp-then-rename."""
    with atomic_path(path) as tmp:
        torch.save({"format_version": FORMAT_VERSION, **state}, tmp)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint; tensors are mapped to ``device``.

    RNG states hold numpy arrays and Python tuples, so ``weights_only`` cannot be used:
    load checkpoints from trusted runs only.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return torch.load(path, map_location=device)
