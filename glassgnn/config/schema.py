"""The training keys of a run, their defaults and help: :class:`TrainConfig`, :class:`ResolvedConfig`.

Each key is a frozen dataclass field whose metadata holds its help text and its bounds
(``choices``, ``minimum``, ``below``); :mod:`glassgnn.config.checks` validates against
them and :mod:`glassgnn.config.cli` makes one flag of each.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from glassgnn.losses import LOSSES
from glassgnn.manifest import TASKS
from models.readout import READOUT_OPS, ReadoutConfig

SCHEDULERS = ("none", "step", "plateau", "cosine")
AUGMENTS = ("none", "cubic", "rotation")
TYPE_ENCODINGS = ("onehot", "scalar")
BASELINES = ("none", "ridge")
# Selection metrics and whether larger is better.
SELECTION_METRICS = {
    "pearson": True,
    "spearman": True,
    "r2": True,
    "mae": False,
    "rmse": False,
    "loss": False,
}
# Keys that change how a run is executed but never its numbers; they may differ on --resume.
RUNTIME_KEYS = (
    "device",
    "num_workers",
    "console_log",
    "log_level",
    "save_results",
    "flush_denormal",
    "reuse_freed_memory",
)
SET_FROM_DATA = ("in_dim", "out_dim")
# Keys that bound a run's length: --resume may raise them to continue a finished run.
BUDGET_KEYS = ("max_epoch", "max_time", "max_cpu_time", "patience")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """Training keys with their built-in defaults (the lowest precedence level).

    Frozen, containers included (``node_fields`` a tuple, ``readout`` a read-only mapping):
    no module can change a run's settings behind another's back.
    """

    model_name: str | None = _f(None, "registered model to train (required)")
    recipe: str | None = _f(
        None,
        "a named set of training keys from the `recipes` section of train.conf.yaml, applied after "
        "`global` and before the model's section (e.g. cpu: descriptors, ridge baseline, warm-up)",
    )
    dataset_dir: str | None = _f(None, "directory written by construct_graph.py (required)")
    seed: int = _f(0, "random seed (weights, shuffling, augmentation)")
    device: int = _f(-1, "-1 for CPU, k for cuda:k (under torchrun: the local rank's GPU)")
    batch_size: int = _f(1, "graphs per optimisation step (>= split size: full batch)", minimum=1)
    max_epoch: int = _f(1000, "maximum number of epochs", minimum=1)
    eval_interval: int = _f(1, "evaluate train/val metrics every this many epochs", minimum=1)
    patience: int = _f(100, "stop after this many evaluations without validation improvement", minimum=1)
    max_time: float = _f(
        0.0, "stop after this many seconds of training, at an evaluation (0: no limit)", minimum=0.0
    )
    max_cpu_time: float = _f(
        0.0,
        "stop after this many seconds of this process's CPU time, at an evaluation (0: no limit); "
        "the budget of bench/bench_accuracy.py, which does not depend on other jobs' load",
        minimum=0.0,
    )
    learning_rate: float = _f(1e-3, "Adam learning rate", minimum=0.0)
    weight_decay: float = _f(0.0, "Adam weight decay (L2)", minimum=0.0)
    amsgrad: bool = _f(False, "use the AMSGrad variant of Adam")
    grad_clip: float = _f(0.0, "clip the gradient norm to this value (0: off)", minimum=0.0)
    scheduler: str = _f("none", "learning-rate schedule", choices=SCHEDULERS)
    lr_step_size: int = _f(100, "step schedule: epochs between decays", minimum=1)
    lr_gamma: float = _f(0.5, "step/plateau schedule: decay factor", minimum=0.0)
    lr_patience: int = _f(10, "plateau schedule: evaluations without improvement before decay", minimum=0)
    min_lr: float = _f(0.0, "plateau/cosine schedule: lowest learning rate", minimum=0.0)
    warmup_epochs: int = _f(
        0,
        "raise the learning rate linearly from 1/(warmup_epochs+1) of it over this many epochs "
        "(none/step/cosine schedules; the cosine decays over the epochs after it)",
        minimum=0,
    )
    ema_decay: float = _f(
        0.0,
        "evaluate, select and save an exponential moving average of the weights, updated after every "
        "step with this decay (e.g. 0.99; 0: off): steadier validation curves from small batches",
        minimum=0.0,
        below=1.0,
    )
    train_eval_graphs: int = _f(
        0,
        "evaluate train metrics on this many training graphs (a fixed sample drawn with the seed; "
        "0: all): evaluation costs less, selection is on val anyway",
        minimum=0,
    )
    baseline: str = _f(
        "none",
        "ridge: start from the descriptor floor -- the model's output is added to a ridge fit "
        "on the node inputs (closed form, strength chosen on val) through a gate that starts at 0",
        choices=BASELINES,
    )
    input_dropout: float = _f(
        0.0,
        "baseline ridge: drop each node input of the network part with this probability during "
        "training (the ridge part reads them all): regularises a network reading descriptors",
        minimum=0.0,
        below=1.0,
    )
    loss: str = _f(
        "mse",
        "training loss on the standardised targets: mse, or centred_mse (per-particle task: the "
        "MSE after removing each snapshot's mean error, blind to snapshot-wide shifts as "
        "within-snapshot Pearson is; glassgnn/losses.py)",
        choices=LOSSES,
    )
    selection_metric: str = _f("pearson", "validation metric for selection", choices=tuple(SELECTION_METRICS))
    task: str | None = _f(
        None,
        "node: per-particle targets; graph: per-snapshot targets (graph labels); "
        "default (None): the dataset manifest's task",
        choices=TASKS,
    )
    target: str | None = _f(
        None,
        "target column to learn (a name of manifest target_names, or graph_target_names for "
        "task graph; default all)",
    )
    readout: Mapping[str, Any] = _f(
        {},
        "task graph: how a per-particle model gives one value per graph, keys op "
        f"({'|'.join(READOUT_OPS)}), hidden_dim, head_dims, use_mask (models.readout.ReadoutConfig); "
        "merged key by key: built-in < global < model section < --readout KEY=VALUE ...",
    )
    init_from: str | None = _f(
        None,
        "fine-tune: a finished run directory whose validation-selected weights this run starts from "
        "(same model, hyperparameters, node inputs and graph parameters, checked before anything is "
        "written); targets are standardised with this dataset's training split, as in any run "
        "(glassgnn.fine_tune)",
    )
    init_sha256: str | None = _f(
        None,
        "sha256 of the weights --init_from loads: recorded by the run in config.yaml; when set "
        "(--config or --resume of a fine-tuned run) the run's weights must still have it",
    )
    freeze: bool = _f(
        False,
        "with --init_from: train only the decoder (the model's decoder_prefixes: bapst, egnn, gcn, "
        "gcn_edge, symgnn: decoder; schnet, se3: output; mgcn, mpnn: readout; cgcnn: head, and pool "
        "when it pools; mlp, glassmlp: the last layer of net; with baseline ridge also its gate, in a "
        "graph task also readout and head); the rest keeps the loaded weights, is left out of the "
        "optimiser and runs in evaluation mode (batch norm on its running statistics, no dropout)",
    )
    augment: str = _f("none", "random rotations of disp during training", choices=AUGMENTS)
    type_encoding: str = _f("onehot", "particle type input", choices=TYPE_ENCODINGS)
    node_fields: tuple[str, ...] = _f((), "extra per-atom input fields (names of manifest extra_fields)")
    num_exp: int = _f(1, "repeat with seeds seed..seed+N-1 and summarise test metrics", minimum=1)
    num_workers: int = _f(0, "data-loader worker processes", minimum=0)
    flush_denormal: bool = _f(
        True, "CPU: subnormal floats (|x| < 1.2e-38) as zero; up to 2x faster training steps (schnet)"
    )
    reuse_freed_memory: bool = _f(
        False, "keep freed memory for reuse (glibc): faster full-batch steps, higher peak memory"
    )
    save_results: bool = _f(True, "write predictions_{split}.npz and parity plots")
    console_log: bool = _f(False, "also log to the console")
    log_level: int = _f(20, "logging level (10 debug, 20 info, 30 warning)")

    def __post_init__(self) -> None:
        # Validated YAML gives lists and dicts: store immutable copies.
        object.__setattr__(self, "node_fields", tuple(self.node_fields))
        object.__setattr__(self, "readout", MappingProxyType(dict(self.readout)))

    def to_dict(self) -> dict[str, Any]:
        """Every key in field order with plain values (lists, dicts), as ``config.yaml`` holds them."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True)
class ResolvedConfig(TrainConfig):
    """The configuration of one run: every training key, and the model's hyperparameters.

    Built by :func:`resolve` and :func:`load_resolved` only after validation; never changed
    afterwards (``dataclasses.replace`` makes a new one).

    Attributes:
        model: hyperparameters of ``model_name`` (read-only); after
            :func:`glassgnn.training.check_run`, complete with ``in_dim``/``out_dim``.
    """

    model: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "model", MappingProxyType(dict(self.model)))


TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
TRAIN_TYPES = typing.get_type_hints(TrainConfig)


def defaults() -> dict:
    """Built-in default of every training key (plain values)."""
    return TrainConfig().to_dict()


def readout_config(config: TrainConfig) -> dict:
    """Every field of the run's readout: :class:`ReadoutConfig` defaults updated with ``readout``.

    Args:
        config: the run's configuration.
    """
    return dataclasses.asdict(ReadoutConfig(**config.readout))
