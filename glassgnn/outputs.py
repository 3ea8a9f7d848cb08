"""The run directory of ``train.py``: its life cycle, log, metrics table and final results.

A run directory is *finished* when ``results.json`` exists (it is written last).
An unfinished one holds ``last.pt`` and can be continued with ``--resume``.
Every file is written temp-then-rename (:mod:`glassgnn.fileio`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np
import tqdm

from glassgnn import schema
from glassgnn.fileio import OutputExistsError, atomic_path, empty_trash, old_path, remove_tree, write_text

# The files of a run directory (its copy of the dataset manifest is schema.MANIFEST).
CONFIG = "config.yaml"  # the resolved configuration (glassgnn.config)
BEST = "best.pt"  # key "model": the weights selected on validation
LAST = "last.pt"  # everything --resume needs
RESULTS = "results.json"  # written last: the run is finished
TRAIN_LOG = "train.log"
METRICS = "metrics.csv"  # one row per evaluation
LEARNING_CURVES = "learning_curves.png"


def segment_results(segment: int) -> str:
    """Where a finished run's results.json goes when a larger budget continues it (segment 1, 2, ...)."""
    return f"results.segment{segment}.json"


def predictions_file(split: str) -> str:
    """``predictions_{split}.npz``: the selected model's predictions on ``split``."""
    return f"predictions_{split}.npz"


LOGGER = logging.getLogger("glassgnn.train")


def prepare_output_dir(path: str | os.PathLike, resume: bool, overwrite: bool) -> Path | None:
    """Make ``path`` ready for a fresh run or a resumed one, refusing to clobber finished work.

    With ``overwrite`` the previous run is moved to the hidden ``.NAME.old`` and kept there
    until the new run finishes (:func:`discard_old`). Whatever the interruptions, the last
    finished run survives: an interrupted ``--overwrite`` followed by another one drops
    the unfinished attempt, not ``.NAME.old``; a ``--resume`` of the attempt that then
    finishes discards ``.NAME.old``.

    Args:
        path: the run directory.
        resume: continue the run in ``path`` from its last.pt (a finished one only when its
            budget was raised: :func:`glassgnn.training.fit` checks that).
        overwrite: start again even if ``path`` holds a run.

    Returns:
        The directory holding the run to discard once this one finished, else ``None``.
    """
    path = Path(path)
    old = old_path(path)
    empty_trash(path)
    if resume:  # a finished run continues only with a larger budget (glassgnn.training checks)
        if not (path / LAST).is_file() or not (path / CONFIG).is_file():
            raise FileNotFoundError(f"{path}: no unfinished run to resume ({LAST} or {CONFIG} missing)")
        return old if old.exists() else None
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            state = (
                "a finished run" if (path / RESULTS).exists() else "an unfinished run (--resume continues it)"
            )
            raise OutputExistsError(f"{path} holds {state}; pass --overwrite to replace it")
        if old.exists() and not (path / RESULTS).exists():
            remove_tree(path)  # an unfinished attempt of an earlier --overwrite; old is the run to keep
        else:
            remove_tree(old)  # superseded by the finished run in path
            os.replace(path, old)
    elif old.exists() and not overwrite:
        raise OutputExistsError(
            f"{old} holds the run an interrupted --overwrite of {path} moved aside; pass --overwrite "
            f"to replace it, or move it back to {path}"
        )
    path.mkdir(parents=True, exist_ok=True)
    return old if old.exists() else None


def discard_old(old: Path | None) -> None:
    """Delete the previous run moved aside by :func:`prepare_output_dir`."""
    if old is not None:
        remove_tree(old)


class _TqdmHandler(logging.StreamHandler):
    """Console log lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.tqdm.write(self.format(record))


def setup_logging(path: Path | None, console: bool, level: int) -> list[logging.Handler]:
    """Log to ``path`` (appending, so a resumed run keeps its history) and optionally the console.

    Returns the handlers, to be removed with :func:`close_logging`.
    """
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = []
    if path is not None:
        handlers.append(logging.FileHandler(path, mode="a"))
    if console:
        handlers.append(_TqdmHandler())
    for handler in handlers:
        handler.setFormatter(fmt)
        LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False
    return handlers


def close_logging(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        LOGGER.removeHandler(handler)
        handler.close()


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    """One row per evaluation (the whole table is rewritten, atomically)."""
    if not history:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buf.getvalue())


def read_metrics_csv(path: Path) -> list[dict[str, str]]:
    """The rows :func:`write_metrics_csv` wrote, as strings keyed by column."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def prediction_arrays(
    preds: list[np.ndarray], graphs: list, columns: list[int], sources: list[dict]
) -> dict[str, np.ndarray]:
    """Per-atom arrays of one split for ``predictions_{split}.npz``.

    Args:
        preds: per graph [n_i, k] predictions in original units.
        graphs: the split's graphs.
        columns: learned target columns.
        sources: per graph ``{"source", "frame"}`` from the manifest (may be empty).
    """
    true = [g.ndata[schema.TARGET][:, columns].numpy() for g in graphs]
    sizes = [len(p) for p in preds]
    return {
        "pred": np.concatenate(preds),
        "target": np.concatenate(true),
        "mask": np.concatenate([g.ndata[schema.MASK].numpy() for g in graphs]),
        "type": np.concatenate([g.ndata[schema.TYPE].numpy() for g in graphs]),
        "graph": np.repeat(np.arange(len(graphs)), sizes),
        "atom": np.concatenate([np.arange(n) for n in sizes]),
        "graph_source": np.array([str(s.get("source", "")) for s in sources] or [""] * len(graphs)),
        "graph_frame": np.array([int(s.get("frame", -1)) for s in sources] or [-1] * len(graphs)),
    }


def graph_prediction_arrays(
    pred: np.ndarray, true: np.ndarray, graphs: list, sources: list[dict]
) -> dict[str, np.ndarray]:
    """Per-graph arrays of one split for ``predictions_{split}.npz`` of a graph task.

    Args:
        pred, true: [n_graphs, k] predictions and per-snapshot targets in original units.
        graphs: the split's graphs.
        sources: per graph ``{"source", "frame"}`` from the manifest (may be empty).
    """
    return {
        "pred": np.asarray(pred),
        "target": np.asarray(true),
        "graph": np.arange(len(graphs)),
        "num_nodes": np.array([g.num_nodes() for g in graphs], dtype=np.int64),
        "graph_source": np.array([str(s.get("source", "")) for s in sources] or [""] * len(graphs)),
        "graph_frame": np.array([int(s.get("frame", -1)) for s in sources] or [-1] * len(graphs)),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` temp-then-rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
