"""Optimiser, learning-rate schedule and weight averaging of a training run."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from glassgnn.config import SELECTION_METRICS, ConfigError, TrainConfig


def make_optimizer(model, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, object | None]:
    """Adam (AMSGrad optional) and the configured learning-rate schedule (or None).

    With ``warmup_epochs`` W > 0 the rate rises linearly from lr/(W+1) to lr over W epochs
    before the schedule (a cosine then decays over the remaining ``max_epoch - W`` epochs).

    Args:
        model: the module whose parameters are optimised.
        cfg: the run's configuration (learning rate, schedule and their keys).
    """
    # --freeze: only the decoder takes steps. Otherwise every parameter, trainable or not (the
    # ridge floor of a baseline run), as the optimiser states of earlier checkpoints hold them.
    params = [p for p in model.parameters() if p.requires_grad] if cfg.freeze else model.parameters()
    opt = torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)
    kind, warmup = cfg.scheduler, cfg.warmup_epochs
    if kind == "plateau":
        if warmup:
            raise ConfigError("warmup_epochs cannot be combined with the plateau schedule")
        mode = "max" if SELECTION_METRICS[cfg.selection_metric] else "min"
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=cfg.lr_gamma, patience=cfg.lr_patience, min_lr=cfg.min_lr
        )
    sched = None
    if kind == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step_size, cfg.lr_gamma)
    elif kind == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cosine_epochs(cfg), cfg.min_lr)
    if not warmup:
        return opt, sched
    ramp = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / (warmup + 1), total_iters=warmup)
    if sched is None:
        return opt, ramp
    return opt, torch.optim.lr_scheduler.SequentialLR(opt, [ramp, sched], milestones=[warmup])


def cosine_epochs(cfg: TrainConfig) -> int:
    """Epochs a cosine schedule decays over: those after the warm-up."""
    return max(1, cfg.max_epoch - cfg.warmup_epochs)


def retarget_schedule(sched, cfg: TrainConfig) -> None:
    """After --resume with a larger max_epoch: a cosine decays over the new length from where it is."""
    inner = sched._schedulers if isinstance(sched, torch.optim.lr_scheduler.SequentialLR) else [sched]
    for part in inner:
        if isinstance(part, torch.optim.lr_scheduler.CosineAnnealingLR):
            part.T_max = cosine_epochs(cfg)


def make_ema(module, cfg: TrainConfig):
    """The moving average of ``module``'s weights (and batch-norm statistics), or None when off."""
    if cfg.ema_decay <= 0:
        return None
    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
