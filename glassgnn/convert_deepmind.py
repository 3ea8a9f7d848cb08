"""Convert a DeepMind glassy-dynamics checkpoint into a glassgnn run directory.

DeepMind released the graph network of Bapst et al., "Unveiling the predictive
power of static structure in glassy systems", Nature Physics 16, 448-454 (2020)
(google-deepmind/deepmind-research, ``glassy_dynamics/``, Apache-2.0) with
TensorFlow 1 checkpoints trained at several temperatures and time scales. All of
them share the variable names read here. The run directory written by
:func:`convert` is used by ``predict.py`` and ``explain.py`` like any trained run.

Usage::

    python -m glassgnn.convert_deepmind CHECKPOINT_PREFIX --output_dir RUN_DIR [--overwrite]

TensorFlow is not needed: :func:`glassgnn.tf_checkpoint.read_checkpoint` reads
TensorFlow's tensor-bundle format (``PREFIX.index`` + ``PREFIX.data-*``) directly.
What the converted bundled run gives on DeepMind's data: :mod:`glassgnn.deepmind_demo`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch

from glassgnn import outputs, schema
from glassgnn.config import ResolvedConfig, defaults, model_hparams, yaml_text
from glassgnn.fileio import atomic_directory, sha256, write_text
from glassgnn.manifest import Manifest, Normalisation
from glassgnn.task_kind import NODE
from glassgnn.tf_checkpoint import CheckpointError, read_checkpoint
from models.models import build_model

# TensorFlow variable scope -> (module of models.bapst.Bapst, number of linear layers).
DEEPMIND_BLOCKS = {
    "Graph/graph_independent/edge_model": ("edge_encoder", 2),
    "Graph/graph_independent/node_model": ("node_encoder", 2),
    "Graph/graph_network/edge_block": ("edge_update", 2),
    "Graph/graph_network/node_block": ("node_update", 2),
    "Graph/graph_independent_1/node_model": ("decoder", 3),
}

# The released model (read off DeepMind's saved graph), see models/bapst.py.
DEEPMIND_MODEL = {"preset": "deepmind", "in_dim": 1, "out_dim": 1}
DEEPMIND_GRAPH = {
    "format": "bapst",
    "cutoff": 2.0,
    "knn": None,
    "pair_cutoffs": None,
    "self_loops": True,
    "target": "propensity",
    "time_index": None,  # set per checkpoint, see infer_time_index
    "mask_types": ["0"],  # DeepMind's losses and correlations use type A only
}


def deepmind_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map DeepMind's variables onto the state dict of ``models.bapst.Bapst`` (preset deepmind).

    Sonnet's ``Linear`` stores ``w`` as [in, out]; torch's ``nn.Linear.weight`` is
    [out, in]. Layer K of an MLP is entry ``2 K`` of our ``nn.Sequential`` (the
    ReLUs sit in between).

    Raises:
        CheckpointError: a variable is missing or its shape does not match the model.
    """
    expected = build_model("bapst", DEEPMIND_MODEL).state_dict()
    state = {}
    for scope, (module, n_layers) in DEEPMIND_BLOCKS.items():
        for k in range(n_layers):
            for tf_name, ours, transpose in (("w", "weight", True), ("b", "bias", False)):
                name = f"{scope}/mlp/linear_{k}/{tf_name}"
                key = f"{module}.{2 * k}.{ours}"
                if name not in variables:
                    raise CheckpointError(f"missing variable {name}")
                value = torch.from_numpy(variables[name].T.copy() if transpose else variables[name])
                if value.shape != expected[key].shape:
                    raise CheckpointError(
                        f"variable {name} has shape {tuple(variables[name].shape)}; the released model "
                        f"needs {tuple(expected[key].T.shape if transpose else expected[key].shape)}"
                    )
                state[key] = value
    return state


def deepmind_variable_names() -> list[str]:
    """Names of the checkpoint variables the model needs (Adam slots are not)."""
    return [
        f"{scope}/mlp/linear_{k}/{v}"
        for scope, (_, n_layers) in DEEPMIND_BLOCKS.items()
        for k in range(n_layers)
        for v in ("w", "b")
    ]


def infer_time_index(prefix: str | Path) -> int:
    """Propensity time index a published checkpoint predicts, from its name.

    The published checkpoints are ``tTTT_sXX.ckpt``: ``s01`` ... ``s09`` are trained
    on the time at which the self-intermediate scattering function reaches 0.1 ...
    0.9, ``salpha`` on 1/e. In the data files ``is_values`` is (0.9, 0.8, ..., 0.1,
    1/e), so ``s0k`` is time index ``9 - k`` and ``salpha`` index 9 (``t044_s09``
    -> 0, which its measured correlations confirm: 0.93 at index 0, 0.39 at index 1).

    Raises:
        CheckpointError: the name does not follow that pattern.
    """
    match = re.fullmatch(r"t\d+_s(0[1-9]|alpha)\.ckpt", Path(prefix).name)
    if match is None:
        raise CheckpointError(
            f"cannot infer the time index from the name {Path(prefix).name!r} "
            "(expected tTTT_s0K.ckpt or tTTT_salpha.ckpt); pass --time_index"
        )
    return 9 if match.group(1) == "alpha" else 9 - int(match.group(1)[1])


def convert(
    prefix: str | Path, output_dir: str | Path, overwrite: bool = False, time_index: int | None = None
) -> Path:
    """Write a run directory holding a DeepMind checkpoint as a ``bapst`` (preset deepmind) run.

    Args:
        prefix: checkpoint prefix, e.g. ``.../t044_s09.ckpt``.
        output_dir: run directory to create (refused if it exists, unless ``overwrite``).
        overwrite: replace an existing ``output_dir``.
        time_index: propensity time index (0-9) the checkpoint predicts; inferred from
            the name by :func:`infer_time_index` when ``None``.

    Returns:
        The run directory: ``config.yaml``, ``manifest.json``, ``best.pt`` (key ``model``),
        ``README.md`` (source and licence).
    """
    prefix = Path(prefix)
    state = deepmind_state_dict(read_checkpoint(prefix, deepmind_variable_names()))
    if time_index is None:
        time_index = infer_time_index(prefix)
    if not 0 <= time_index <= 9:
        raise CheckpointError(f"time_index must be in 0..9, got {time_index}")
    with atomic_directory(output_dir, overwrite=overwrite) as tmp:
        torch.save({"model": state, "source": f"DeepMind checkpoint {prefix.name}"}, tmp / outputs.BEST)
        # Only the keys of the run-directory contract and DeepMind's training settings:
        # load_run fills the other training keys from the current defaults, so the
        # bundled run stays readable when training keys are added or renamed.
        training = {
            "model_name": "bapst",
            **{key: defaults()[key] for key in ("dataset_dir", "seed", "node_fields")},
            "type_encoding": "scalar",
            # How DeepMind trained it (train.py of glassy_dynamics): Adam 1e-4, gradient norm
            # clipped at 1, random axis permutations and reflections; kept for fine-tuning.
            "learning_rate": 1e-4,
            "grad_clip": 1.0,
            "augment": "cubic",
        }
        preset = ResolvedConfig(model_name="bapst", model={"preset": "deepmind"})
        # The network's hyperparameters; "fast" (how it is computed, not what) keeps its default.
        hparams = {key: value for key, value in model_hparams(preset, 1, 1, NODE).items() if key != "fast"}
        write_text(tmp / outputs.CONFIG, yaml_text(training, hparams))
        _manifest(prefix, time_index).save(tmp / schema.MANIFEST)
        write_text(tmp / "README.md", _note(prefix, time_index))
    return Path(output_dir)


def _manifest(prefix: Path, time_index: int) -> Manifest:
    inputs = [
        {"path": str(p.name), "sha256": sha256(p)}
        for p in sorted(prefix.parent.glob(f"{prefix.name}.*"))
        if p.suffix != ".meta" and p.is_file()
    ]
    return Manifest(
        type_map={"0": 0, "1": 1},
        target_names=[f"propensity_{time_index}"],
        normalisation=Normalisation(mean=[0.0], std=[1.0]),  # the network predicts original units
        units={"length": "LJ sigma", "propensity": "LJ sigma"},
        graph={**DEEPMIND_GRAPH, "time_index": time_index},
        inputs=inputs,
        versions={"torch": torch.__version__},
    )


def _note(prefix: Path, time_index: int) -> str:
    return f"""# DeepMind glassy-dynamics checkpoint `{prefix.name}`, converted

Source: google-deepmind/deepmind-research, `glassy_dynamics/` (Bapst et al.,
"Unveiling the predictive power of static structure in glassy systems",
Nature Physics 16, 448-454, 2020). Licensed under the Apache License 2.0
(https://www.apache.org/licenses/LICENSE-2.0); copyright DeepMind Technologies
Limited. Converted to PyTorch by `python -m glassgnn.convert_deepmind` (weights
only, values unchanged; Sonnet's [in, out] matrices transposed to torch's [out, in]).

Model: `bapst` with `preset: deepmind` (sequential graph_nets update, 7 steps,
latent 64, particle type as one float). Graph: cutoff 2.0 (minimum image),
self-pairs included. Output: the propensity at time index {time_index} of the data
files (mean |r_i(t) - r_i(0)| over isoconfigurational trajectories), in LJ length
units, no normalisation.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m glassgnn.convert_deepmind",
        description="Convert a DeepMind glassy-dynamics TensorFlow checkpoint into a glassgnn run directory.",
    )
    parser.add_argument("prefix", help="checkpoint prefix, e.g. checkpoints/t044_s09.ckpt")
    parser.add_argument("--output_dir", required=True, help="run directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument(
        "--time_index",
        type=int,
        default=None,
        help="propensity time index (0-9) the checkpoint predicts (default: from its name, s09 -> 0)",
    )
    args = parser.parse_args(argv)
    try:
        run_dir = convert(args.prefix, args.output_dir, overwrite=args.overwrite, time_index=args.time_index)
    except (CheckpointError, FileExistsError) as err:
        sys.exit(f"error: {err}")
    print(f"wrote {run_dir}")


if __name__ == "__main__":
    main()
