"""The end of a run: the validation-selected checkpoint evaluated once on every split, and what is
written from it (results.json last, predictions_{split}.npz, parity plots, learning curves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glassgnn import distributed, outputs, plots, schema
from glassgnn.checkpoint import load_checkpoint
from glassgnn.evaluation import evaluate, headline_of, predict_split
from glassgnn.fileio import write_json
from glassgnn.metrics import METRICS
from glassgnn.task import Task

LOG = outputs.LOGGER


def finish(module, task: Task, cfg, out: Path, loop: dict, n_params, device, info, elapsed) -> dict:
    """Evaluate the selected checkpoint once on every split and write the outputs."""
    module.load_state_dict(load_checkpoint(out / outputs.BEST)["model"])
    final, preds = {}, {}
    for split in schema.SPLITS:
        if task.graphs.get(split):
            preds[split] = predict_split(module, task, split, cfg["batch_size"], device, info)
            final[split] = evaluate(preds[split], task, split)
    results = {
        "model_name": cfg["model_name"],
        "task": task.level,
        "seed": cfg["seed"],
        "selection": {
            "split": "val",
            "metric": cfg["selection_metric"],
            "value": loop["best_value"],
            "rule": "checkpoint chosen on the validation split only; test evaluated once with it",
        },
        "best_epoch": loop["best_epoch"],
        "last_epoch": loop["epoch"],
        "stopped_early": loop["bad_evals"] >= cfg["patience"],
        "stop_reason": loop["stopped"],
        "metrics": final,
        "wall_time_s": elapsed,
        "num_parameters": n_params,
        "world_size": info.world_size,
    }
    if info.is_main:
        LOG.info(
            "selected epoch %d (val %s %.4f)", loop["best_epoch"], cfg["selection_metric"], loop["best_value"]
        )
        for split, result in final.items():
            LOG.info("%s: %s", split, ", ".join(f"{m} {headline_of(result, m):.4f}" for m in METRICS))
        metric = cfg["selection_metric"] if cfg["selection_metric"] != "loss" else "pearson"
        plots.learning_curves(loop["history"], metric, loop["best_epoch"], out / "learning_curves.png")
        if cfg["save_results"]:
            write_predictions(task, preds, out)
        write_json(out / outputs.RESULTS, results)  # last: marks the run as finished
    distributed.barrier(info)
    return results


def write_predictions(task: Task, preds: dict, out: Path) -> None:
    if task.level == "graph":
        write_graph_predictions(task, preds, out)
        return
    for split, pred in preds.items():
        arrays = outputs.prediction_arrays(pred, task.graphs[split], task.columns, task.sources(split))
        arrays["target_names"] = np.array(task.target_names)
        outputs.write_npz(out / f"predictions_{split}.npz", arrays)
        for j, name in enumerate(task.target_names):
            suffix = "" if len(task.target_names) == 1 else f"_{name}"
            mask = arrays["mask"]
            plots.parity(
                arrays["pred"][mask, j],
                arrays["target"][mask, j],
                arrays["type"][mask],
                task.type_names,
                f"{split} (model selected on val)",
                name,
                out / f"parity_{split}{suffix}.png",
            )


def write_graph_predictions(task: Task, preds: dict, out: Path) -> None:
    """One row per graph in ``predictions_{split}.npz``; a parity plot per target over graphs."""
    for split, pred in preds.items():
        arrays = outputs.graph_prediction_arrays(
            np.concatenate(pred), task.graph_targets[split].numpy(), task.graphs[split], task.sources(split)
        )
        arrays["target_names"] = np.array(task.target_names)
        outputs.write_npz(out / f"predictions_{split}.npz", arrays)
        for j, name in enumerate(task.target_names):
            suffix = "" if len(task.target_names) == 1 else f"_{name}"
            plots.parity(
                arrays["pred"][:, j],
                arrays["target"][:, j],
                None,
                None,
                f"{split}, one point per graph (model selected on val)",
                name,
                out / f"parity_{split}{suffix}.png",
            )
