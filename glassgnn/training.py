"""The training loop: masked MSE (plain or per-snapshot centred, :mod:`glassgnn.losses`) on
standardised targets, selection on validation only.

One run: Adam (optionally AMSGrad, weight decay, gradient clipping, a learning-rate
schedule after a linear warm-up) on mini-batches of graphs shuffled every epoch; every
``eval_interval`` epochs, loss and metrics on val and on the training graphs (all, or a
fixed sample: ``train_eval_graphs``), of the weights or of their moving average
(``ema_decay``); early stopping after ``patience`` evaluations without validation
improvement, or a budget (``max_epoch``, ``max_time``, ``max_cpu_time``) that
``--resume`` may raise to continue a finished run. A model fitted in closed form
(``ridge``) takes one fit instead; ``baseline: ridge`` fits that floor first and trains
the network on top of it (:mod:`models.baseline`). The test split is evaluated once, with
the validation-selected checkpoint, after training. Shuffling and augmentation use a
generator seeded by (seed, epoch) and all RNG states are checkpointed, so ``--resume``
continues a killed run to the same result as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import dgl
import torch
import tqdm
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from glassgnn import distributed, outputs, schema
from glassgnn.augment import augment_graph
from glassgnn.checkpoint import save_checkpoint, seed_everything
from glassgnn.closed_form import fit_closed_form
from glassgnn.config import (
    SELECTION_METRICS,
    ConfigError,
    ResolvedConfig,
    dump,
    model_hparams,
    readout_config,
)
from glassgnn.devices import select_device
from glassgnn.distributed import DistInfo
from glassgnn.evaluation import metrics_row, selection_value
from glassgnn.fileio import write_text
from glassgnn.final_evaluation import finish
from glassgnn.fine_tune import start_from_run
from glassgnn.losses import centred_mse, masked_mse
from glassgnn.manifest import Manifest
from glassgnn.optimisation import make_ema, make_optimizer
from glassgnn.resume import LoopState, better, check_resume, checkpoint_state, restore, stop_reason
from glassgnn.run import build_network
from glassgnn.task import Task
from models.contract import Ability
from models.models import get_entry

LOG = outputs.LOGGER


def _collate(graphs: list[dgl.DGLGraph], ids: list[int]) -> tuple[dgl.DGLGraph, list[int]]:
    return dgl.batch([graphs[i] for i in ids]), ids


def train_epoch(
    model, optimizer, task: Task, cfg: ResolvedConfig, epoch: int, device, info: DistInfo, ema=None
) -> float:
    """One pass over this rank's shard of the shuffled training graphs; returns the mean batch loss.

    Args:
        cfg: the run's configuration (``seed``, ``batch_size``, ``num_workers``, ``augment``,
            ``loss``, ``grad_clip``).
        ema: an :class:`torch.optim.swa_utils.AveragedModel` updated after every step (or None).
    """
    model.train()
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    graphs = task.graphs["train"]
    mine = distributed.shard(torch.randperm(len(graphs), generator=generator).tolist(), info)
    size = cfg.batch_size
    batches = [mine[i : i + size] for i in range(0, len(mine), size)]
    loader = DataLoader(
        batches, batch_size=None, collate_fn=partial(_collate, graphs), num_workers=cfg.num_workers
    )
    total = 0.0
    for batch, ids in loader:
        batch = augment_graph(batch.to(device), cfg.augment, generator)
        pred = model(graph=batch, feat=task.features(batch))
        target, mask = task.batch_targets(batch, "train", ids)
        if cfg.loss == "centred_mse":
            loss = centred_mse(pred, target, mask, batch.batch_num_nodes())
        else:
            loss = masked_mse(pred, target, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model.module if isinstance(model, DistributedDataParallel) else model)
        total += float(loss)
    losses = distributed.gather_objects((total, len(batches)), info)
    return sum(t for t, _ in losses) / max(1, sum(n for _, n in losses))


def _check_fields(cfg: ResolvedConfig) -> None:
    """Node inputs a model declares it needs (``required_fields``) must be among ``node_fields``."""
    needed = get_entry(cfg.model_name).cls.required_fields
    missing = [name for name in needed if name not in cfg.node_fields]
    if missing:
        raise ConfigError(
            f"{cfg.model_name} reads the node field(s) {missing}: train with --node_fields "
            f"{' '.join(needed)} on a dataset built with construct_graph.py --descriptors"
        )


def fit(
    cfg: ResolvedConfig,
    graphs: dict[str, list[dgl.DGLGraph]],
    manifest: Manifest,
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
            from ``cfg.dataset_dir``, see :class:`glassgnn.task.Task`).

    The task (``cfg.task``, default the manifest's) decides between per-particle
    targets and per-snapshot ones; a graph run's model is built by
    :func:`glassgnn.run.build_network` (the ``readout`` configuration, or cgcnn's own pooling).
    """
    info = info or DistInfo()
    out = Path(output_dir)
    device = distributed.local_device(select_device(cfg.device), info)
    task, resolved, module = check_run(cfg, graphs, manifest, graph_targets)
    old = None
    if info.is_main:
        old = outputs.prepare_output_dir(out, resume, overwrite)
        if resume:
            check_resume(out, resolved)
            write_text(out / outputs.CONFIG, dump(resolved))  # the budget may have grown
        else:
            write_text(out / outputs.CONFIG, dump(resolved))
            manifest.save(out / schema.MANIFEST)
    distributed.barrier(info)
    log_file = out / outputs.TRAIN_LOG if info.is_main else None
    handlers = outputs.setup_logging(log_file, cfg.console_log and info.is_main, cfg.log_level)
    try:
        results = _loop(resolved, module, task, out, resume, device, info, on_epoch_end)
    finally:
        outputs.close_logging(handlers)
    if info.is_main:
        outputs.discard_old(old)
    return results


def check_run(
    cfg: ResolvedConfig, graphs: dict, manifest: Manifest, graph_targets: dict | None = None
) -> tuple[Task, ResolvedConfig, torch.nn.Module]:
    """What :func:`fit` checks before writing anything: the node fields the model needs, the
    task, the resolved configuration (model dimensions from the data) and the network, built
    right after seeding; a hyperparameter the model cannot be built with (e.g. a negative
    width) is a :class:`ConfigError` naming the model."""
    _check_fields(cfg)
    task = Task(graphs, manifest, cfg, graph_targets)
    if cfg.baseline != "none" and _closed_form(cfg.model_name):
        raise ConfigError(f"{cfg.model_name} is fitted in closed form: baseline must be none")
    if cfg.input_dropout and cfg.baseline == "none":
        raise ConfigError("input_dropout acts on the network part of baseline ridge: set --baseline ridge")
    if task.kind.per_graph and cfg.loss == "centred_mse":
        raise ConfigError("loss centred_mse centres per snapshot: per-particle targets only")
    if task.kind.per_graph and (cfg.baseline != "none" or _closed_form(cfg.model_name)):
        raise ConfigError(f"{cfg.model_name} with baseline {cfg.baseline}: per-particle targets only")
    resolved = replace(
        cfg,
        num_exp=1,
        task=task.kind.name,
        readout=readout_config(cfg) if task.kind.per_graph else {},
        model=model_hparams(cfg, task.in_dim, task.out_dim, task.kind),
    )
    seed_everything(cfg.seed)
    try:
        module = build_network(resolved)
    except (ValueError, TypeError, RuntimeError, AssertionError, KeyError) as exc:
        raise ConfigError(
            f"model {resolved.model_name} cannot be built with {dict(resolved.model)} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return task, start_from_run(resolved, module, manifest), module  # --init_from, --freeze


def _closed_form(model_name: str) -> bool:
    return Ability.CLOSED_FORM_FIT in get_entry(model_name).cls.abilities


def _fit_closed_form(module, task: Task, cfg: ResolvedConfig, out: Path, device, info: DistInfo) -> dict:
    """A closed-form model (``ridge``): one fit, one history row per candidate setting."""
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = fit_closed_form(module, task, cfg, device, info)
    metric = cfg.selection_metric
    loop = LoopState(epoch=len(rows), stopped="closed-form fit")
    for epoch, row in enumerate(rows, start=1):  # the rule of the gradient loop picks the model's choice
        if better(selection_value(row, metric), loop.best_value, SELECTION_METRICS[metric]):
            loop.best_epoch, loop.best_value = epoch, selection_value(row, metric)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    loop.history = [{"epoch": i + 1, **row, "time_s": elapsed, "cpu_s": cpu} for i, row in enumerate(rows)]
    LOG.info(
        "%s: %s selected on val (%s %.4f)", cfg.model_name, rows[loop.best_epoch - 1], metric, loop.best_value
    )
    state = {
        "model": module.state_dict(),
        "loop": loop.to_dict(),
        "normalisation": task.normalisation(),
        "config": cfg.to_dict(),
    }
    if info.is_main:
        save_checkpoint(out / outputs.BEST, state)
        save_checkpoint(out / outputs.LAST, state)
        outputs.write_metrics_csv(out / outputs.METRICS, loop.history)
    return finish(module, task, cfg, out, loop, device, info, elapsed)


def _train_eval_split(task: Task, cfg: ResolvedConfig) -> tuple[str, int]:
    """The split whose metrics are logged as ``train_*``: all training graphs, or a fixed sample."""
    graphs = task.graphs["train"]
    k = cfg.train_eval_graphs
    if k == 0 or k >= len(graphs):
        return "train", len(graphs)
    generator = torch.Generator().manual_seed(cfg.seed)
    ids = sorted(torch.randperm(len(graphs), generator=generator)[:k].tolist())
    task.add_subset("train_sample", "train", ids)
    return "train_sample", k


@dataclass
class _Training:
    """What one gradient-trained run carries from epoch to epoch."""

    cfg: ResolvedConfig
    task: Task
    out: Path
    device: torch.device
    info: DistInfo
    module: torch.nn.Module  # the network (what is saved)
    model: torch.nn.Module  # the module, or its DDP wrapper (what takes steps)
    opt: torch.optim.Optimizer
    sched: object | None
    ema: object | None  # AveragedModel of the module, or None
    loop: LoopState  # checkpointed bookkeeping
    train_split: str  # "train" or the sample of training graphs evaluated
    n_train_eval: int
    wall_start: float  # clock readings at which elapsed and cpu_elapsed were zero
    cpu_start: float

    def evaluate(self, epoch: int, epoch_loss: float) -> tuple[dict, torch.nn.Module]:
        """Metrics row of this evaluation, and the module evaluated (the average when kept)."""
        cfg, task = self.cfg, self.task
        row = {"epoch": epoch, "lr": self.opt.param_groups[0]["lr"], "epoch_loss": epoch_loss}
        evaluated = self.module if self.ema is None else self.ema.module
        splits = [(self.train_split, "train"), ("val", "val")]
        row.update(metrics_row(evaluated, task, splits, cfg.batch_size, self.device, self.info))
        self.loop.elapsed = time.perf_counter() - self.wall_start
        self.loop.cpu_elapsed = time.process_time() - self.cpu_start
        row.update(
            time_s=self.loop.elapsed,
            cpu_s=self.loop.cpu_elapsed,
            train_eval_graphs=self.n_train_eval,
            segment=self.loop.segment,
        )
        return row, evaluated

    def record(self, epoch: int, row: dict, evaluated: torch.nn.Module) -> bool:
        """Select on validation, decide whether to stop, write the checkpoints and metrics.csv;
        returns whether this evaluation is the best so far."""
        cfg, loop = self.cfg, self.loop
        metric = cfg.selection_metric
        value = selection_value(row, metric)
        loop.history.append(row)
        if self.sched is not None and cfg.scheduler == "plateau":
            self.sched.step(value)
        improved = better(value, loop.best_value, SELECTION_METRICS[metric])
        if improved:
            loop.best_epoch, loop.best_value, loop.bad_evals = epoch, value, 0
        else:
            loop.bad_evals += 1
        loop.stopped = stop_reason(loop, cfg, epoch, loop.elapsed)
        state = checkpoint_state(self.module, self.opt, self.sched, loop, self.task, cfg, self.info, self.ema)
        if self.info.is_main:
            if improved:  # best.pt's "model" holds the weights that were evaluated
                save_checkpoint(self.out / outputs.BEST, {**state, "model": evaluated.state_dict()})
            save_checkpoint(self.out / outputs.LAST, state)
            outputs.write_metrics_csv(self.out / outputs.METRICS, loop.history)
        LOG.info(
            "epoch %d loss %.4g | train %s %.4f | val loss %.4g %s %.4f%s",
            epoch,
            row["epoch_loss"],
            metric,
            row[f"train_{metric}"],
            row["val_loss"],
            metric,
            row[f"val_{metric}"],
            " *" if improved else "",
        )
        return improved


def _start(
    cfg: ResolvedConfig, task: Task, out: Path, resume: bool, device, info: DistInfo, module
) -> _Training:
    """Optimiser, schedule, average and bookkeeping of a new or resumed run (baseline fitted)."""
    wall_zero, cpu_zero = time.perf_counter(), time.process_time()  # a baseline fit counts
    opt, sched = make_optimizer(module, cfg)
    ema = make_ema(module, cfg)
    if resume:
        loop = restore(out, module, opt, sched, cfg, info, ema)
    else:
        loop = LoopState()
        if cfg.baseline == "ridge" and cfg.init_from is None:  # a fine-tuned run keeps its floor
            fit_closed_form(module.ridge, task, cfg, device, info)
            LOG.info("baseline: ridge with alpha %g (chosen on val)", float(module.ridge.alpha))
    train_split, n_train_eval = _train_eval_split(task, cfg)
    n_params = sum(p.numel() for p in module.parameters())
    LOG.info(
        "model %s: %d parameters on %s, %d process(es)", cfg.model_name, n_params, device, info.world_size
    )
    model = module
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(module, device_ids=ids)
    wall_start, cpu_start = wall_zero - loop.elapsed, cpu_zero - loop.cpu_elapsed
    return _Training(
        cfg,
        task,
        out,
        device,
        info,
        module,
        model,
        opt,
        sched,
        ema,
        loop,
        train_split,
        n_train_eval,
        wall_start,
        cpu_start,
    )


def _loop(
    cfg: ResolvedConfig, module, task: Task, out: Path, resume: bool, device, info: DistInfo, on_epoch_end
) -> dict:
    """Train ``module`` (built right after seeding, :func:`check_run`); evaluate it once at the end."""
    module = module.to(device)
    if _closed_form(cfg.model_name):
        return _fit_closed_form(module, task, cfg, out, device, info)
    run = _start(cfg, task, out, resume, device, info, module)
    loop = run.loop
    first = cfg.max_epoch + 1 if loop.stopped else loop.epoch + 1
    bar = tqdm.tqdm(
        range(first, cfg.max_epoch + 1),
        initial=loop.epoch,
        total=cfg.max_epoch,
        desc=cfg.model_name,
        disable=not info.is_main,
    )
    for epoch in bar:
        epoch_loss = train_epoch(run.model, run.opt, task, cfg, epoch, device, info, run.ema)
        LOG.debug("epoch %d: mean batch loss %.5g, lr %.3g", epoch, epoch_loss, run.opt.param_groups[0]["lr"])
        if run.sched is not None and cfg.scheduler != "plateau":
            run.sched.step()
        loop.epoch = epoch
        if epoch % cfg.eval_interval == 0 or epoch == cfg.max_epoch:
            run.record(epoch, *run.evaluate(epoch, epoch_loss))
            metric = cfg.selection_metric
            bar.set_postfix({f"best val_{metric}": f"{loop.best_value:.4f}", "at": loop.best_epoch})
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if loop.stopped:
            LOG.info("stopped at epoch %d: %s", epoch, loop.stopped)
            break
    bar.close()
    if module.supports(Ability.TRAINING_CACHE):
        module.release_cache()  # training is over: the final evaluation needs none of it
    distributed.barrier(info)
    return finish(module, task, cfg, out, loop, device, info, time.perf_counter() - run.wall_start)
