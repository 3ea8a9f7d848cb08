"""Convert a DeepMind glassy-dynamics checkpoint into a glassgnn run directory.

DeepMind released the graph network of Bapst et al., "Unveiling the predictive
power of static structure in glassy systems", Nature Physics 16, 448-454 (2020)
(google-deepmind/deepmind-research, ``glassy_dynamics/``, Apache-2.0) with
TensorFlow 1 checkpoints trained at several temperatures and time scales. All of
them share the variable names read here. The run directory written by
:func:`convert` is used by ``predict.py`` and ``explain.py`` like any trained run.

Usage::

    python -m glassgnn.convert_deepmind CHECKPOINT_PREFIX --output_dir RUN_DIR [--overwrite]

TensorFlow is not needed: :func:`read_checkpoint` reads TensorFlow's
tensor-bundle format (``PREFIX.index`` + ``PREFIX.data-*``) directly.
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from glassgnn import schema
from glassgnn.config import defaults, dump, model_hparams
from glassgnn.fileio import atomic_directory, sha256, write_json, write_text
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

_BUNDLE_DTYPE_FLOAT = 1  # tensorflow DataType DT_FLOAT
_TABLE_MAGIC = 0xDB4775248B80FB57  # leveldb table footer magic


class CheckpointError(ValueError):
    """The checkpoint is missing, malformed, or not a DeepMind glassy-dynamics model."""


# ---------------------------------------------------------------------------
# TensorFlow tensor bundle reader. Hand-written so that converting needs no
# TensorFlow (a >500 MB wheel): the .index file is a leveldb table whose keys are
# variable names and whose values are BundleEntryProto messages pointing into the
# .data shards. Only uncompressed tables (what TensorFlow writes) and float32
# tensors are supported.
# ---------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a serialised protobuf message (varint, fixed, bytes)."""
    fields, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _block(data: bytes, handle: bytes, path: Path) -> bytes:
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(data):
        raise CheckpointError(f"{path}: block beyond the end of the file (truncated?)")
    if data[offset + size] != 0:
        raise CheckpointError(f"{path}: compressed table blocks are not supported")
    return data[offset : offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of a leveldb block (keys are prefix-compressed)."""
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * num_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _crc32c(data: bytes) -> int:
    table = _crc32c_table()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


def _unmask_crc(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def read_checkpoint(prefix: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read float32 variables of a TensorFlow checkpoint without TensorFlow.

    Args:
        prefix: checkpoint prefix (``PREFIX.index`` and ``PREFIX.data-*`` must exist).
        names: variables to read; all float32 variables if ``None``.

    Returns:
        Variable name -> array of the stored shape (float32). Each tensor's CRC32C
        is checked against the index.

    Raises:
        CheckpointError: missing files, a malformed index, or an unsupported entry.
    """
    prefix = Path(prefix)
    index_path = Path(f"{prefix}.index")
    if not index_path.is_file():
        raise CheckpointError(f"{index_path} not found: {prefix} is not a TensorFlow checkpoint prefix")
    index = index_path.read_bytes()
    if len(index) < 48 or struct.unpack_from("<Q", index, len(index) - 8)[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{index_path} is not a TensorFlow checkpoint index (bad table footer)")
    footer = index[-48:]
    _, pos = _varint(footer, 0)  # metaindex handle (unused)
    _, pos = _varint(footer, pos)
    index_block = _block(index, footer[pos:], index_path)

    entries: dict[str, list] = {}
    num_shards = 1
    for _, handle in _block_entries(index_block):
        for key, value in _block_entries(_block(index, handle, index_path)):
            fields = _proto_fields(value)
            if key == b"":  # BundleHeaderProto
                header = dict(fields)
                num_shards = header.get(1, 1)
                if header.get(2, 0) != 0:
                    raise CheckpointError(f"{index_path}: big-endian checkpoints are not supported")
                continue
            entries[key.decode()] = fields

    wanted = sorted(entries) if names is None else names
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise CheckpointError(f"{prefix}: missing variable(s) {', '.join(missing)}")
    shards: dict[int, bytes] = {}
    out = {}
    for name in wanted:
        entry = {1: 0, 3: 0, 4: 0, 5: 0, 6: None, 7: None}
        shape = []
        for number, value in entries[name]:
            if number == 2:
                shape = [dict(_proto_fields(dim)).get(1, 0) for n, dim in _proto_fields(value) if n == 2]
            else:
                entry[number] = value
        if entry[1] != _BUNDLE_DTYPE_FLOAT:
            if names is None:
                continue
            raise CheckpointError(f"{prefix}: variable {name} is not float32 (TF dtype {entry[1]})")
        if entry[7] is not None:
            raise CheckpointError(f"{prefix}: variable {name} is partitioned (sliced); not supported")
        shard_id, offset, size = entry[3], entry[4], entry[5]
        if shard_id not in shards:
            data_path = Path(f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}")
            if not data_path.is_file():
                raise CheckpointError(f"{data_path} not found (checkpoint data shard)")
            shards[shard_id] = data_path.read_bytes()
        raw = shards[shard_id][offset : offset + size]
        if len(raw) != size or size != 4 * int(np.prod(shape)):
            raise CheckpointError(f"{prefix}: variable {name} has {len(raw)} bytes for shape {shape}")
        if entry[6] is not None and _unmask_crc(entry[6]) != _crc32c(raw):
            raise CheckpointError(f"{prefix}: checksum mismatch in variable {name} (corrupt data file?)")
        out[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    return out


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------


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
        torch.save({"model": state, "source": f"DeepMind checkpoint {prefix.name}"}, tmp / "best.pt")
        # Only the keys of the run-directory contract and DeepMind's training settings:
        # load_run fills the other training keys from the current defaults, so the
        # bundled run stays readable when training keys are added or renamed.
        config = {
            "model_name": "bapst",
            **{key: defaults()[key] for key in ("dataset_dir", "seed", "node_fields")},
            "type_encoding": "scalar",
            # How DeepMind trained it (train.py of glassy_dynamics): Adam 1e-4, gradient norm
            # clipped at 1, random axis permutations and reflections; kept for fine-tuning.
            "learning_rate": 1e-4,
            "grad_clip": 1.0,
            "augment": "cubic",
            # The network's hyperparameters; "fast" (how it is computed, not what) keeps its default.
            "model": {
                key: value
                for key, value in model_hparams(
                    {"model_name": "bapst", "model": {"preset": "deepmind"}}, 1, 1
                ).items()
                if key != "fast"
            },
        }
        write_text(tmp / "config.yaml", dump(config))
        write_json(tmp / schema.MANIFEST, _manifest(prefix, time_index))
        write_text(tmp / "README.md", _note(prefix, time_index))
    return Path(output_dir)


def _manifest(prefix: Path, time_index: int) -> dict:
    inputs = [
        {"path": str(p.name), "sha256": sha256(p)}
        for p in sorted(prefix.parent.glob(f"{prefix.name}.*"))
        if p.suffix != ".meta" and p.is_file()
    ]
    return {
        "type_map": {"0": 0, "1": 1},
        "num_types": 2,
        "target_names": [f"propensity_{time_index}"],
        "normalisation": {"mean": [0.0], "std": [1.0]},
        "extra_fields": {},
        "units": {"length": "LJ sigma", "propensity": "LJ sigma"},
        "graph": {**DEEPMIND_GRAPH, "time_index": time_index},
        "splits": {},
        "inputs": inputs,
        "versions": {"torch": torch.__version__},
    }


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


# ---------------------------------------------------------------------------
# The pretrained model at work
# ---------------------------------------------------------------------------

BUNDLED_RUN = Path(__file__).resolve().parents[1] / "datasets" / "deepmind" / "t044_s09"
BUNDLED_CONFIGURATION = BUNDLED_RUN.parent / "test_large.pickle"


def evaluate_pretrained(run_dir: str | Path = BUNDLED_RUN, path: str | Path = BUNDLED_CONFIGURATION) -> dict:
    """Predict a DeepMind data file with a converted run; correlate with every time index.

    Args:
        run_dir: converted run directory (default: the bundled T = 0.44 checkpoint).
        path: a file of the DeepMind data set (default: the bundled 4096-particle one).

    Returns:
        ``{"predictions": [n_atoms] float32, "time_index": the index the run was
        trained on, "pearson_type_a": [one Pearson r per time index of the file]
        over type-A particles, "seconds": wall time of graph build plus forward}``.
    """
    import time

    from glassgnn.dataset import build_graphs
    from glassgnn.readers import read_snapshots
    from glassgnn.run import load_run

    run = load_run(run_dir)
    start = time.perf_counter()
    graph = build_graphs([path], run.manifest["graph"], type_map=run.manifest["type_map"])[0]
    pred = run.predict(graph)[:, 0].cpu().numpy()
    seconds = time.perf_counter() - start
    (snapshot,) = read_snapshots(path, "bapst")
    type_a = graph.ndata[schema.TYPE].cpu().numpy() == run.manifest["type_map"]["0"]
    targets = snapshot.fields["propensity"][type_a]  # [n_A, n_times]
    pearson = [float(np.corrcoef(pred[type_a], column)[0, 1]) for column in targets.T]
    return {
        "predictions": pred,
        "time_index": run.manifest["graph"]["time_index"],
        "pearson_type_a": pearson,
        "seconds": seconds,
    }


def print_pretrained_summary(
    run_dir: str | Path = BUNDLED_RUN, path: str | Path = BUNDLED_CONFIGURATION
) -> None:
    """One line for ``make demo``: the pretrained DeepMind model's Pearson on a configuration."""
    result = evaluate_pretrained(run_dir, path)
    t = result["time_index"]
    print(
        f"pretrained DeepMind model {Path(run_dir).name} on {Path(path).name}: Pearson "
        f"{result['pearson_type_a'][t]:.4f} (type A, propensity at time index {t}), "
        f"{len(result['predictions'])} particles in {result['seconds']:.2f} s"
    )


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
