"""The end of a run: the validation-selected checkpoint evaluated once on every split, and what is
written from it (results.json last, predictions_{split}.npz, parity plots, learning curves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glassgnn import distributed, outputs, plots, schema
from glassgnn.checkpoint import load_checkpoint
from glassgnn.config import ResolvedConfig
from glassgnn.evaluation import evaluate, headline_of, predict_split
from glassgnn.fileio import write_json
from glassgnn.metrics import METRICS
from glassgnn.resume import LoopState
from glassgnn.task import Task

LOG = outputs.LOGGER


def finish(
    module, task: Task, cfg: ResolvedConfig, out: Path, loop: LoopState, device, info, elapsed
) -> dict:
    """Evaluate the selected checkpoint once on every split and write the outputs.

    Args:
        cfg: the run's configuration (``batch_size``, ``selection_metric``, ``patience``,
            ``save_results``, ``model_name``, ``seed``).
        loop: the training loop's bookkeeping (best epoch and value, history, stop reason).
    """
    module.load_state_dict(load_checkpoint(out / outputs.BEST)["model"])
    final, preds = {}, {}
    for split in schema.SPLITS:
        if task.graphs.get(split):
            preds[split] = predict_split(module, task, split, cfg.batch_size, device, info)
            final[split] = evaluate(preds[split], task, split)
    results = {
        "model_name": cfg.model_name,
        "task": task.kind.name,
        "seed": cfg.seed,
        "selection": {
            "split": "val",
            "metric": cfg.selection_metric,
            "value": loop.best_value,
            "rule": "checkpoint chosen on the validation split only; test evaluated once with it",
        },
        "best_epoch": loop.best_epoch,
        "last_epoch": loop.epoch,
        "stopped_early": loop.bad_evals >= cfg.patience,
        "stop_reason": loop.stopped,
        "metrics": final,
        "wall_time_s": elapsed,
        "num_parameters": sum(p.numel() for p in module.parameters()),
        "world_size": info.world_size,
    }
    if info.is_main:
        LOG.info("selected epoch %d (val %s %.4f)", loop.best_epoch, cfg.selection_metric, loop.best_value)
        for split, result in final.items():
            LOG.info("%s: %s", split, ", ".join(f"{m} {headline_of(result, m):.4f}" for m in METRICS))
        metric = cfg.selection_metric if cfg.selection_metric != "loss" else "pearson"
        plots.learning_curves(loop.history, metric, loop.best_epoch, out / outputs.LEARNING_CURVES)
        if cfg.save_results:
            write_predictions(task, preds, out)
        write_json(out / outputs.RESULTS, results)  # last: marks the run as finished
    distributed.barrier(info)
    return results


def write_predictions(task: Task, preds: dict, out: Path) -> None:
    """``predictions_{split}.npz`` (one row per particle, or per graph for a graph task) and a
    parity plot per target (over the masked particles coloured by type, or over graphs)."""
    for split, pred in preds.items():
        arrays = task.kind.prediction_arrays(task, split, pred)
        arrays["target_names"] = np.array(task.target_names)
        outputs.write_npz(out / outputs.predictions_file(split), arrays)
        rows, types = task.kind.parity_points(arrays)
        for j, name in enumerate(task.target_names):
            suffix = "" if len(task.target_names) == 1 else f"_{name}"
            plots.parity(
                arrays["pred"][rows, j],
                arrays["target"][rows, j],
                types,
                None if types is None else task.type_names,
                task.kind.parity_title.format(split=split),
                name,
                out / f"parity_{split}{suffix}.png",
            )
