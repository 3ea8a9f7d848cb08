"""Fine-tuning: a new run that starts from a finished run's weights (``train.py --init_from RUN``).

The new run is a run like any other (its own seed stream, selection on its validation
split, ``--resume``), except that before its first step the network holds RUN's
validation-selected weights (``best.pt``, read with ``weights_only=True`` by
:func:`glassgnn.run.load_run`). Everything RUN's weights depend on must be the same, and is
checked before anything is written (one line naming RUN and the problem): the model and its
hyperparameters (``in_dim``/``out_dim`` included), the node inputs (``node_fields``,
``type_encoding``, the type map, the descriptor parameters), the baseline, the task and
readout, and the graph parameters a model reads (cutoffs, k-NN, self-loops). What the
weights do not fix comes from the new run: targets are standardised with the **new**
dataset's training-split statistics, and the node fields with the new dataset's statistics,
as for any run. A ``baseline: ridge`` floor comes from RUN too (it is not refitted). A model
fitted in closed form (``ridge``) takes no gradient steps, so there is nothing to start: it is
refused (fit it on the new data, or apply RUN there with ``predict.py``).

The run records ``init_from`` (as given) and ``init_sha256`` (:func:`weights_sha256` of the
loaded weights) in its ``config.yaml``; when ``init_sha256`` is already set (``--config`` of
a fine-tuned run, ``--resume``), RUN's weights must still have it.

``freeze`` trains only the decoder: the parameters under the model's declared
``decoder_prefixes`` (:mod:`models.contract`). The other parameters get
``requires_grad=False`` and stay out of the optimiser, and the modules holding them run in
evaluation mode during training (a forward pre-hook puts them back after ``train()``):
batch norm normalises with, and keeps, its running statistics, dropout is off. So the frozen
part computes exactly what it computed in RUN at inference, and its parameters and buffers
stay bit-identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path

import torch
from torch import nn

from glassgnn import outputs
from glassgnn.config import ConfigError, ResolvedConfig
from glassgnn.manifest import Manifest
from glassgnn.run import Run, load_run
from models.contract import Ability, GlassModel
from models.models import make_config

# Training keys that shape the network or its inputs: RUN's and the new run's must agree.
NETWORK_KEYS = ("node_fields", "type_encoding", "baseline", "task", "readout")
# Graph parameters that decide which neighbours a model reads.
GRAPH_KEYS = ("cutoff", "knn", "pair_cutoffs", "self_loops")


def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict: every entry's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def in_decoder(name: str, prefixes: Iterable[str]) -> bool:
    """Whether the parameter or module ``name`` lies under one of ``prefixes`` (whole path parts:
    ``decoder`` covers ``decoder.0.weight``, not ``decoder_gate``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def start_from_run(resolved: ResolvedConfig, module: GlassModel, manifest: Manifest) -> ResolvedConfig:
    """Load ``resolved.init_from``'s weights into ``module`` and freeze it as asked.

    Args:
        resolved: the new run's resolved configuration (model dimensions filled in).
        module: the new run's network, just built (:func:`glassgnn.training.check_run`).
        manifest: the new dataset's manifest.

    Returns:
        ``resolved`` with ``init_sha256`` set (the same object without ``init_from``).

    Raises:
        ConfigError: one line naming RUN (or the flag) and the problem.
    """
    run_dir = resolved.init_from
    if run_dir is None:
        for key in ("freeze", "init_sha256"):
            if getattr(resolved, key):
                raise ConfigError(f"--{key} needs --init_from RUN (the run whose weights are loaded)")
        return resolved
    where = f"--init_from {run_dir}"
    name = resolved.model_name
    if module.supports(Ability.CLOSED_FORM_FIT):
        raise ConfigError(
            f"{where}: {name} is fitted in closed form, there are no gradient steps to start from its "
            "weights; fit it on the new data without --init_from, or apply the run with predict.py"
        )
    if not (Path(run_dir) / outputs.RESULTS).is_file():
        raise ConfigError(f"{where}: not a finished run ({outputs.RESULTS} is missing)")
    try:
        run = load_run(run_dir)
    except FileNotFoundError as err:
        raise ConfigError(f"{where}: {err}") from None
    _check_same_network(where, run, resolved, manifest)
    try:
        run.check_dataset(manifest, resolved.dataset_dir)
        module.load_state_dict(run.model.state_dict())
    except (ValueError, RuntimeError) as err:
        raise ConfigError(f"{where}: {' '.join(str(err).split())}") from None
    digest = weights_sha256(module.state_dict())
    if resolved.init_sha256 not in (None, digest):
        raise ConfigError(
            f"{where}: its selected weights have sha256 {digest}, not the init_sha256 "
            f"{resolved.init_sha256} this run was configured with (the run changed since, or the "
            f"configuration came from another run: to start from these weights, add --init_sha256 {digest})"
        )
    if resolved.freeze:
        freeze_all_but_decoder(module, where)
    return dataclasses.replace(resolved, init_sha256=digest)


def _check_same_network(where: str, run: Run, new: ResolvedConfig, manifest: Manifest) -> None:
    """RUN's configuration and the new one build the same network on the same kind of inputs."""
    old = dataclasses.replace(run.config, task=run.kind.name)  # runs from before graph tasks: none
    if old.model_name != new.model_name:
        raise ConfigError(f"{where}: the run trained {old.model_name}, not {new.model_name}")
    # complete both sides with the registry defaults: older runs may lack newer hyperparameters
    mine_model = dataclasses.asdict(make_config(new.model_name, new.model))
    theirs_model = dataclasses.asdict(make_config(old.model_name, old.model))
    differ = [
        f"{k} {theirs_model[k]!r} in the run, {value!r} here"
        for k, value in mine_model.items()
        if value != theirs_model[k]
    ]
    if differ:
        raise ConfigError(
            f"{where}: model hyperparameters differ ({'; '.join(differ)}); repeat the run's settings, "
            "e.g. --config RUN/config.yaml with --dataset_dir and --init_from"
        )
    theirs, mine = old.to_dict(), new.to_dict()  # plain values, as config.yaml holds them
    for key in NETWORK_KEYS:
        if key == "readout" and not run.kind.per_graph:
            continue
        if theirs[key] != mine[key]:
            raise ConfigError(f"{where}: {key} {theirs[key]!r} in the run, {mine[key]!r} here")
    for key in GRAPH_KEYS:
        theirs_value, mine_value = run.manifest.graph.get(key), manifest.graph.get(key)
        if theirs_value != mine_value:
            raise ConfigError(
                f"{where}: graphs built with {key} {theirs_value!r} for the run, {mine_value!r} for "
                f"{new.dataset_dir}; rebuild the dataset with the run's graph parameters"
            )


def freeze_all_but_decoder(module: GlassModel, where: str = "--freeze") -> list[str]:
    """Freeze every parameter outside ``module.decoder_prefixes``; keep frozen modules in eval mode.

    Returns:
        The names of the frozen parameters.

    Raises:
        ConfigError: the declared decoder holds no parameter, or all of them.
    """
    prefixes = module.decoder_prefixes
    names = [name for name, _ in module.named_parameters()]
    frozen = [name for name in names if not in_decoder(name, prefixes)]
    if len(frozen) in (0, len(names)):
        what = "every parameter" if not frozen else "no parameter"
        raise ConfigError(f"{where}: the decoder {prefixes} of {type(module).__name__} holds {what}")
    for name, param in module.named_parameters():
        param.requires_grad_(in_decoder(name, prefixes))
    module.register_forward_pre_hook(partial(_frozen_in_eval, names=_frozen_modules(module, prefixes)))
    return frozen


def _frozen_modules(module: nn.Module, prefixes: tuple[str, ...], path: str = "") -> list[str]:
    """The largest submodules that hold no decoder part (their names, from ``module``)."""
    out = []
    for name, child in module.named_children():
        qualified = path + name
        if in_decoder(qualified, prefixes):
            continue
        if any(p.startswith(qualified + ".") for p in prefixes):  # holds part of the decoder
            out += _frozen_modules(child, prefixes, qualified + ".")
        else:
            out.append(qualified)
    return out


def _frozen_in_eval(module: nn.Module, args: tuple, names: list[str]) -> None:
    """Forward pre-hook: the training loop's ``train()`` reached the frozen modules too; put them
    back in evaluation mode (looked up on the module called, so a deep copy, such as the
    weight average of ``ema_decay``, acts on its own modules)."""
    if module.training:
        for name in names:
            module.get_submodule(name).eval()
