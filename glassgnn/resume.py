"""The bookkeeping of a training run that ``--resume`` continues: loop state, stop rules,
checkpoint contents, and the checks that a resumed run keeps its settings.

The loop state (:class:`LoopState`) is saved in ``last.pt`` as a plain dict, with the model,
optimiser, schedule, weight average and every RNG state, so a killed run resumed from it ends
where an uninterrupted one does (tests/test_interruptions.py).
A finished run continues when a budget key (``BUDGET_KEYS``) grew; the rows of each
continuation carry their ``segment`` number in metrics.csv.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from glassgnn import distributed, outputs
from glassgnn.checkpoint import load_checkpoint, rng_state, set_rng_state
from glassgnn.config import BUDGET_KEYS, RUNTIME_KEYS, ConfigError, ResolvedConfig, load_resolved
from glassgnn.distributed import DistInfo
from glassgnn.fileio import OutputExistsError
from glassgnn.optimisation import retarget_schedule
from glassgnn.task import Task

LOG = outputs.LOGGER


def better(value: float, best: float | None, maximise: bool) -> bool:
    if best is None:
        return True
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if maximise else value < best


@dataclass
class LoopState:
    """Bookkeeping of a run; checkpointed, so --resume continues it exactly.

    Attributes:
        epoch: last epoch trained.
        best_epoch: epoch of the best validation value so far (0: none yet).
        best_value: that value (None before the first evaluation).
        bad_evals: evaluations since the last improvement (the ``patience`` counter).
        stopped: why the run stopped (a message), or False while it runs.
        history: one metrics.csv row per evaluation.
        elapsed: wall seconds of training so far, over every segment.
        cpu_elapsed: CPU seconds of training so far, over every segment.
        segment: 1 for the first run, +1 for each continuation with a raised budget.
    """

    epoch: int = 0
    best_epoch: int = 0
    best_value: float | None = None
    bad_evals: int = 0
    stopped: str | bool = False
    history: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    cpu_elapsed: float = 0.0
    segment: int = 1

    def to_dict(self) -> dict:
        """Plain values, so a checkpoint holding them loads with ``weights_only=True``.

        Shallow (not ``dataclasses.asdict``): it is saved at every evaluation, and a deep copy
        of the growing history each time would cost time quadratic in the run's length.
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, saved: dict) -> LoopState:
        """The state a checkpoint saved; keys it lacks (runs older than the key) take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


def stop_reason(loop: LoopState, cfg: ResolvedConfig, epoch: int, elapsed: float) -> str | bool:
    """Why training stops after this evaluation (a truthy message), or False.

    ``elapsed`` is the wall time of training; the CPU time is ``loop.cpu_elapsed``.
    """
    if loop.bad_evals >= cfg.patience:
        return f"early stop, {loop.bad_evals} evaluations without validation improvement"
    if epoch == cfg.max_epoch:
        return "max_epoch reached"
    if 0 < cfg.max_time <= elapsed:
        return f"max_time {cfg.max_time:g} s reached"
    if 0 < cfg.max_cpu_time <= loop.cpu_elapsed:
        return f"max_cpu_time {cfg.max_cpu_time:g} s reached"
    return False


def check_resume(out: Path, config: ResolvedConfig) -> None:
    """A resumed run keeps its settings; only runtime keys and larger budgets may differ."""
    # A training key the saved file lacks takes its built-in default, as when the run started:
    # keys are added with defaults that keep the earlier behaviour, so runs made before a key
    # existed (e.g. ``freeze``) can still be continued. Model hyperparameters compare as written.
    saved = load_resolved(out / outputs.CONFIG).to_dict()
    resolved = config.to_dict()
    ignore = {*RUNTIME_KEYS, *BUDGET_KEYS, "num_exp"}
    differ = sorted(
        k for k in set(saved) | set(resolved) if k not in ignore and saved.get(k) != resolved.get(k)
    )
    if differ:
        raise ConfigError(
            f"--resume: {', '.join(differ)} differs from {out / outputs.CONFIG}; a resumed run keeps its "
            f"settings (only {', '.join(RUNTIME_KEYS)} may change, and {', '.join(BUDGET_KEYS)} may grow)"
        )
    for key in BUDGET_KEYS:
        old, new = saved.get(key), resolved.get(key)
        unlimited_when_zero = key in ("max_time", "max_cpu_time")
        shrinks = new != 0 and (old == 0 or new < old) if unlimited_when_zero else new < old
        if old is not None and new != old and shrinks:
            raise ConfigError(f"--resume: {key} {new} is smaller than the run's {old}; budgets may only grow")


def stops_at_once(run_dir: Path, cfg: ResolvedConfig) -> str | bool:
    """Why the run in ``run_dir`` would stop at once under ``cfg``'s budgets (a truthy message),
    or False when ``--resume`` with ``cfg`` has epochs to train (an unfinished run, or a finished
    one whose budget was raised)."""
    return stays_stopped(LoopState.from_dict(load_checkpoint(run_dir / outputs.LAST)["loop"]), cfg)


def stays_stopped(loop: LoopState, cfg: ResolvedConfig) -> str | bool:
    """Why a finished run's loop state would stop again at once under ``cfg`` (truthy), else False."""
    return loop.stopped and stop_reason(loop, cfg, loop.epoch, loop.elapsed)


def checkpoint_state(
    module, opt, sched, loop: LoopState, task: Task, cfg: ResolvedConfig, info: DistInfo, ema=None
) -> dict:
    """What last.pt holds (best.pt: the same with the evaluated weights as ``model``); plain
    values, so both load with ``weights_only=True``."""
    return {
        "model": module.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else None,
        "rng": distributed.gather_objects(rng_state(), info),
        "loop": loop.to_dict(),
        "normalisation": task.normalisation(),
        "config": cfg.to_dict(),  # plain values: checkpoints load with weights_only
    }


def restore(out: Path, module, opt, sched, cfg: ResolvedConfig, info: DistInfo, ema=None) -> LoopState:
    """Load last.pt into the model, optimiser, schedule and RNGs; return the loop state.

    A finished run continues when its budget (``max_epoch``, ``max_time``, ``patience``)
    was raised: the same seed stream goes on from the last epoch, and metrics.csv
    numbers the rows of each continuation in its ``segment`` column.
    """
    state = load_checkpoint(out / outputs.LAST)  # CPU: RNG states must stay CPU tensors
    module.load_state_dict(state["model"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
        retarget_schedule(sched, cfg)
    set_rng_state(state["rng"][min(info.rank, len(state["rng"]) - 1)])
    loop = LoopState.from_dict(state["loop"])
    if reason := stays_stopped(loop, cfg):
        raise OutputExistsError(
            f"{out} holds a finished run; nothing to resume ({reason}): raise --max_epoch, "
            "--max_time, --max_cpu_time or --patience to continue it, or --overwrite to start again"
        )
    if loop.stopped:  # a finished run whose budget was raised
        LOG.info("continuing the finished run (%s) from epoch %d", loop.stopped, loop.epoch)
        if info.is_main and (out / outputs.RESULTS).exists():  # unfinished again until this segment ends
            os.replace(out / outputs.RESULTS, out / outputs.segment_results(loop.segment))
        loop.stopped, loop.segment = False, loop.segment + 1
    LOG.info("resumed from %s at epoch %d", out / outputs.LAST, loop.epoch)
    return loop
