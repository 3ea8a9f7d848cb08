"""Checkpoints that resume exactly: weights, optimiser, scheduler, loop state and every RNG state.

A checkpoint holds only tensors and plain Python data (dicts, lists, tuples, str,
numbers, None), so it is read with ``torch.load(..., weights_only=True)``: loading a
``best.pt`` from elsewhere cannot run code. Checkpoints of format 1 (before this rule)
kept numpy RNG states; ``python -m glassgnn.checkpoint RUN_DIR`` converts a trusted run.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glassgnn import outputs
from glassgnn.fileio import atomic_path

FORMAT_VERSION = 2
#: Entries that are torch state dicts already (tensors and numbers only).
TORCH_STATE_KEYS = ("model", "optimizer")


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message names the file and the problem."""


def _plain(obj: Any) -> Any:
    """``obj`` with numpy arrays as tensors, numpy scalars as Python numbers, paths as str."""
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(value) for value in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def rng_state() -> dict[str, Any]:
    """State of the Python, numpy, torch CPU and (if present) CUDA random generators."""
    # The legacy global numpy generator is saved because library code may draw from it.
    state = {
        "python": random.getstate(),
        "numpy": _plain(np.random.get_state(legacy=False)),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    key = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` (plus the format version) temp-then-rename, as plain data.

    The model and optimiser state dicts are saved as they are (tensors, numbers and an
    ``OrderedDict`` whose ``_metadata`` ``load_state_dict`` reads); the rest is made plain.
    """
    kept = {key: state[key] for key in TORCH_STATE_KEYS if key in state}
    plain = _plain({key: value for key, value in state.items() if key not in kept})
    with atomic_path(path) as tmp:
        torch.save({"format_version": FORMAT_VERSION, **plain, **kept}, tmp)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; tensors are mapped to ``device``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: one line naming the file: truncated or corrupt, or holding
            objects other than tensors and plain data (refused unrun).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({exc})") from None
        found = str(exc).rpartition("error: ")[2].strip()
        raise CheckpointError(
            f"{path}: refused to load ({found}): a checkpoint may hold only tensors and plain data; "
            f"if it is a glassgnn run of yours from before checkpoint format {FORMAT_VERSION}, "
            f"convert it once with: python -m glassgnn.checkpoint {Path(path).parent}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({detail})") from None


def convert_run(run_dir: str | os.PathLike) -> list[Path]:
    """Rewrite the format-1 checkpoints (best.pt, last.pt) of a TRUSTED run as plain data.

    This unpickles them in full (it would run code a crafted file holds): only for runs
    you made. Returns the files converted.
    """
    converted = []
    for path in (Path(run_dir) / outputs.BEST, Path(run_dir) / outputs.LAST):
        if not path.is_file():
            continue
        state = torch.load(path, map_location="cpu", weights_only=False)
        for rng in state.get("rng", []):
            if isinstance(rng["numpy"], tuple):  # format 1: np.random.get_state(legacy=True)
                generator, key, pos, has_gauss, gauss = rng["numpy"]
                rng["numpy"] = {
                    "bit_generator": generator,
                    "state": {"key": key, "pos": pos},
                    "has_gauss": has_gauss,
                    "gauss": gauss,
                }
        state.pop("format_version", None)
        save_checkpoint(path, state)
        converted.append(path)
    return converted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert a trusted run's format-1 checkpoints to format 2.")
    parser.add_argument("run_dir", nargs="+", help="run directories written by train.py (trusted)")
    for run_dir in parser.parse_args(argv).run_dir:
        for path in convert_run(run_dir):
            print(f"converted {path}")


if __name__ == "__main__":
    main()
