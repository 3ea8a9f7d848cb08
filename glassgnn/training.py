"""The training loop: masked MSE on standardised targets, selection on validation only.

One run: Adam (optionally AMSGrad, weight decay, gradient clipping, a learning-rate
schedule) on mini-batches of graphs shuffled every epoch; every ``eval_interval``
epochs, loss and metrics on train and val; early stopping after ``patience``
evaluations without validation improvement. The test split is evaluated once, with
the validation-selected checkpoint, after training. Shuffling and augmentation use a
generator seeded by (seed, epoch) and all RNG states are checkpointed, so ``--resume``
continues a killed run to the same result as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import dgl
import numpy as np
import torch
import tqdm
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from glassgnn import distributed, outputs, plots, schema
from glassgnn.augment import augment_graph
from glassgnn.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from glassgnn.config import (
    RUNTIME_KEYS,
    SELECTION_METRICS,
    ConfigError,
    dump,
    model_hparams,
    readout_config,
)
from glassgnn.devices import select_device
from glassgnn.distributed import DistInfo
from glassgnn.evaluation import evaluate, headline_of, predict_split
from glassgnn.fileio import write_json, write_text
from glassgnn.metrics import METRICS
from glassgnn.run import build_network
from glassgnn.task import Task

LOG = outputs.LOGGER


def _collate(graphs: list[dgl.DGLGraph], ids: list[int]) -> tuple[dgl.DGLGraph, list[int]]:
    return dgl.batch([graphs[i] for i in ids]), ids


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if not bool(mask.any()):
        return pred.sum() * 0.0  # keeps the autograd graph (DDP needs a backward on every rank)
    return ((pred - target)[mask] ** 2).mean()


def train_epoch(model, optimizer, task: Task, cfg: dict, epoch: int, device, info: DistInfo) -> float:
    """One pass over this rank's shard of the shuffled training graphs; returns the mean batch loss."""
    model.train()
    generator = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + epoch)
    graphs = task.graphs["train"]
    mine = distributed.shard(torch.randperm(len(graphs), generator=generator).tolist(), info)
    size = cfg["batch_size"]
    batches = [mine[i : i + size] for i in range(0, len(mine), size)]
    loader = DataLoader(
        batches, batch_size=None, collate_fn=partial(_collate, graphs), num_workers=cfg["num_workers"]
    )
    total = 0.0
    for batch, ids in loader:
        batch = augment_graph(batch.to(device), cfg["augment"], generator)
        pred = model(graph=batch, feat=task.features(batch))
        loss = _masked_mse(pred, *task.batch_targets(batch, "train", ids))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        optimizer.step()
        total += float(loss)
    losses = distributed.gather_objects((total, len(batches)), info)
    return sum(t for t, _ in losses) / max(1, sum(n for _, n in losses))


def _better(value: float, best: float | None, maximise: bool) -> bool:
    if best is None:
        return True
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if maximise else value < best


def _stop_reason(loop: dict, cfg: dict, epoch: int, elapsed: float) -> str | bool:
    """Why training stops after this evaluation (a truthy message), or False."""
    if loop["bad_evals"] >= cfg["patience"]:
        return f"early stop, {loop['bad_evals']} evaluations without validation improvement"
    if epoch == cfg["max_epoch"]:
        return "max_epoch reached"
    if 0 < cfg["max_time"] <= elapsed:
        return f"max_time {cfg['max_time']:g} s reached"
    return False


def make_optimizer(model, cfg: dict) -> tuple[torch.optim.Optimizer, object | None]:
    """Adam (AMSGrad optional) and the configured learning-rate schedule (or None)."""
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"], amsgrad=cfg["amsgrad"]
    )
    kind = cfg["scheduler"]
    if kind == "step":
        return opt, torch.optim.lr_scheduler.StepLR(opt, cfg["lr_step_size"], cfg["lr_gamma"])
    if kind == "plateau":
        mode = "max" if SELECTION_METRICS[cfg["selection_metric"]] else "min"
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=cfg["lr_gamma"], patience=cfg["lr_patience"], min_lr=cfg["min_lr"]
        )
    if kind == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["max_epoch"], cfg["min_lr"])
    return opt, None


def _check_resume(out: Path, resolved: dict) -> None:
    saved = yaml.safe_load((out / outputs.CONFIG).read_text())
    ignore = {*RUNTIME_KEYS, "num_exp"}
    differ = sorted(
        k for k in set(saved) | set(resolved) if k not in ignore and saved.get(k) != resolved.get(k)
    )
    if differ:
        raise ConfigError(
            f"--resume: {', '.join(differ)} differs from {out / outputs.CONFIG}; a resumed run keeps its "
            f"settings (only {', '.join(RUNTIME_KEYS)} may change)"
        )


def fit(
    cfg: dict,
    graphs: dict[str, list[dgl.DGLGraph]],
    manifest: dict,
    output_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    info: DistInfo | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    graph_targets: dict | None = None,
) -> dict:
    """Train one model and write its run directory; returns the results (also in results.json).

    Args:
        cfg: resolved configuration (:func:`glassgnn.config.resolve`).
        graphs: ``{"train": [...], "val": [...], "test": [...]}`` graphs of the dataset.
        manifest: the dataset manifest (target names, normalisation, type map).
        output_dir: the run directory.
        resume: continue the unfinished run in ``output_dir``.
        overwrite: replace a run already in ``output_dir``.
        info: process group of a torchrun launch (default: single process).
        on_epoch_end: called with the epoch number after each epoch's bookkeeping
            (tests use it to interrupt a run).
        graph_targets: graph task: ``{split: [G, k]}`` per-snapshot targets (default: read
            from ``cfg["dataset_dir"]``, see :class:`glassgnn.task.Task`).

    The task (``cfg["task"]``, default the manifest's) decides between per-particle
    targets and per-snapshot ones; a graph run's model is built by
    :func:`glassgnn.run.build_network` (the ``readout`` configuration, or cgcnn's own pooling).
    """
    info = info or DistInfo()
    out = Path(output_dir)
    device = distributed.local_device(select_device(cfg["device"]), info)
    task, resolved, module = check_run(cfg, graphs, manifest, graph_targets)
    old = None
    if info.is_main:
        old = outputs.prepare_output_dir(out, resume, overwrite)
        if resume:
            _check_resume(out, resolved)
        else:
            write_text(out / outputs.CONFIG, dump(resolved))
            write_json(out / schema.MANIFEST, manifest)
    distributed.barrier(info)
    log_file = out / "train.log" if info.is_main else None
    handlers = outputs.setup_logging(log_file, cfg["console_log"] and info.is_main, cfg["log_level"])
    try:
        results = _loop(resolved, module, task, out, resume, device, info, on_epoch_end)
    finally:
        outputs.close_logging(handlers)
    if info.is_main:
        outputs.discard_old(old)
    return results


def _state(module, opt, sched, loop: dict, task: Task, cfg: dict, info: DistInfo) -> dict:
    return {
        "model": module.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else None,
        "rng": distributed.gather_objects(rng_state(), info),
        "loop": dict(loop),
        "normalisation": task.normalisation(),
        "config": cfg,
    }


def check_run(
    cfg: dict, graphs: dict, manifest: dict, graph_targets: dict | None = None
) -> tuple[Task, dict, torch.nn.Module]:
    """What :func:`fit` checks before writing anything: the task, the resolved
    configuration (model dimensions from the data) and the network, built right after
    seeding; a hyperparameter the model cannot be built with (e.g. a negative width) is a
    :class:`ConfigError` naming the model."""
    task = Task(graphs, manifest, cfg, graph_targets)
    resolved = {
        **cfg,
        "num_exp": 1,
        "task": task.level,
        "readout": readout_config(cfg) if task.level == "graph" else {},
        "model": model_hparams(cfg, task.in_dim, task.out_dim, task.level),
    }
    seed_everything(cfg["seed"])
    try:
        module = build_network(resolved)
    except (ValueError, TypeError, RuntimeError, AssertionError, KeyError) as exc:
        raise ConfigError(
            f"model {resolved['model_name']} cannot be built with {resolved['model']} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return task, resolved, module


def _loop(cfg, module, task: Task, out: Path, resume: bool, device, info: DistInfo, on_epoch_end) -> dict:
    """Train ``module`` (built right after seeding, :func:`check_run`); evaluate it once at the end."""
    module = module.to(device)
    opt, sched = make_optimizer(module, cfg)
    metric = cfg["selection_metric"]
    maximise = SELECTION_METRICS[metric]
    loop = {"epoch": 0, "best_epoch": 0, "best_value": None, "bad_evals": 0, "stopped": False}
    loop |= {"history": [], "elapsed": 0.0}
    if resume:
        state = load_checkpoint(out / outputs.LAST)  # CPU: RNG states must stay CPU tensors
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"][min(info.rank, len(state["rng"]) - 1)])
        loop = state["loop"]
        LOG.info("resumed from %s at epoch %d", out / outputs.LAST, loop["epoch"])
    n_params = sum(p.numel() for p in module.parameters())
    LOG.info(
        "model %s: %d parameters on %s, %d process(es)", cfg["model_name"], n_params, device, info.world_size
    )
    model = module
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(module, device_ids=ids)
    start = time.perf_counter() - loop["elapsed"]
    first = cfg["max_epoch"] + 1 if loop["stopped"] else loop["epoch"] + 1
    bar = tqdm.tqdm(
        range(first, cfg["max_epoch"] + 1),
        initial=loop["epoch"],
        total=cfg["max_epoch"],
        desc=cfg["model_name"],
        disable=not info.is_main,
    )
    for epoch in bar:
        epoch_loss = train_epoch(model, opt, task, cfg, epoch, device, info)
        LOG.debug("epoch %d: mean batch loss %.5g, lr %.3g", epoch, epoch_loss, opt.param_groups[0]["lr"])
        if sched is not None and cfg["scheduler"] != "plateau":
            sched.step()
        loop["epoch"] = epoch
        if epoch % cfg["eval_interval"] == 0 or epoch == cfg["max_epoch"]:
            row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "epoch_loss": epoch_loss}
            for s in ("train", "val"):
                result = evaluate(predict_split(module, task, s, cfg["batch_size"], device, info), task, s)
                row[f"{s}_loss"] = result["loss"]
                row.update({f"{s}_{m}": headline_of(result, m) for m in METRICS})
            value = row[f"val_{metric}"] if metric != "loss" else row["val_loss"]
            row["time_s"] = time.perf_counter() - start
            loop["history"].append(row)
            if sched is not None and cfg["scheduler"] == "plateau":
                sched.step(value)
            improved = _better(value, loop["best_value"], maximise)
            if improved:
                loop.update(best_epoch=epoch, best_value=value, bad_evals=0)
            else:
                loop["bad_evals"] += 1
            loop["stopped"] = _stop_reason(loop, cfg, epoch, time.perf_counter() - start)
            loop["elapsed"] = time.perf_counter() - start
            state = _state(module, opt, sched, loop, task, cfg, info)
            if info.is_main:
                if improved:
                    save_checkpoint(out / outputs.BEST, state)
                save_checkpoint(out / outputs.LAST, state)
                outputs.write_metrics_csv(out / "metrics.csv", loop["history"])
            LOG.info(
                "epoch %d loss %.4g | train %s %.4f | val loss %.4g %s %.4f%s",
                epoch,
                epoch_loss,
                metric,
                row[f"train_{metric}"],
                row["val_loss"],
                metric,
                row[f"val_{metric}"],
                " *" if improved else "",
            )
            bar.set_postfix({f"val_{metric}": f"{value:.4f}", "best": loop["best_epoch"]})
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if loop["stopped"]:
            LOG.info("stopped at epoch %d: %s", epoch, loop["stopped"])
            break
    bar.close()
    distributed.barrier(info)
    return _finish(module, task, cfg, out, loop, n_params, device, info, time.perf_counter() - start)


def _finish(module, task: Task, cfg, out: Path, loop: dict, n_params, device, info, elapsed) -> dict:
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
            _write_predictions(task, preds, out)
        write_json(out / outputs.RESULTS, results)  # last: marks the run as finished
    distributed.barrier(info)
    return results


def _write_predictions(task: Task, preds: dict, out: Path) -> None:
    if task.level == "graph":
        _write_graph_predictions(task, preds, out)
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


def _write_graph_predictions(task: Task, preds: dict, out: Path) -> None:
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
