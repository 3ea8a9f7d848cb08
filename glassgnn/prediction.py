"""Apply a trained run to new snapshots, with exactly the graph parameters of its dataset.

Graphs are rebuilt by :func:`glassgnn.dataset.build_records` from the run's copy of
the dataset manifest (cutoff, k-NN, self-loops, per-pair cutoffs, mask, type mapping),
so a model never sees a graph built differently from those it was trained on. Inputs
with a particle type outside the run's type map are refused. Files are read one at a
time and their frames predicted one by one, so a long trajectory needs the memory of
one file's graphs, not of all of them.

Node runs give one row per particle; graph runs (``run.kind.per_graph``) one row per
snapshot. Targets found in the inputs are named as the inputs name them: a bapst
file read at ``time_index`` 9 gives ``propensity_9`` even if the run learned
``propensity_0``, and the metrics say so.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import tqdm

from glassgnn.dataset import check_params
from glassgnn.dataset.build import build_records, finish_graphs, graph_labels
from glassgnn.metrics import graph_metrics, grouped_metrics
from glassgnn.run import Run, type_names
from glassgnn.task_kind import GRAPH, NODE
from models.compile import should_compile
from models.contract import Ability

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Predictions of every frame of every input, concatenated.

    Attributes:
        arrays: node runs: ``pred`` [N, k] (original units), ``atom`` [N] index within
            its frame, ``type`` [N] type index, ``type_label`` [N] original label,
            ``source`` [N] input file, ``frame`` [N] frame within the file; graph runs:
            ``pred`` [G, k], ``source`` [G], ``frame`` [G], ``num_atoms`` [G]. Always
            ``pred_names`` [k] (what the run learned) and ``target_names`` [k] (the
            input columns compared with, which name the time index actually read); with
            targets also ``target`` ([N, k] and ``mask`` [N], or [G, k]).
        metrics: as in train.py's results.json, keyed by the input's target names, or
            None without targets.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict | None = None


def graph_params(run: Run, format: str | None = None, time_index: int | None = None) -> dict:
    """The dataset's graph parameters, with the input format and time index optionally replaced.

    The dataset's time index (a bapst option) is dropped for inputs of another named format.
    """
    params = dict(run.manifest.graph)
    if format is not None:
        params["format"] = format
        if format not in ("auto", "bapst"):
            params["time_index"] = None
    if time_index is not None:
        params["time_index"] = time_index
    return params


def predict_files(
    run: Run, paths: list[str], params: dict, progress: bool = True, compile: str = "never"
) -> Predictions:
    """Predict every frame of ``paths`` (read file by file, predicted frame by frame).

    Args:
        run: the loaded run.
        paths: input files (each may hold several frames).
        params: graph parameters (:func:`graph_params`).
        progress: show a tqdm bar over frames.
        compile: ``auto``, ``always`` or ``never``: run the model compiled by
            ``torch.compile`` where it has a compiled path (``bapst``); ``auto``
            compiles for jobs of at least :data:`models.compile.AUTO_MIN_FRAMES` frames,
            counted from the first file.

    Metrics are computed when every frame carries the run's target columns.
    """
    params = check_params(params)
    frames: list[dict] = []
    bar = tqdm.tqdm(desc="frames", unit="frame", disable=not progress)
    for i, path in enumerate(paths):
        records = build_records([str(path)], params, require_target=False)
        if i == 0:
            _maybe_compile(run, compile, len(records) * len(paths))
        labels = graph_labels([record for _, record in records], params)
        finish_graphs(records, run.manifest.type_map, params)
        for j, (graph, record) in enumerate(records):
            pred = run.predict(graph).cpu().numpy()
            frames.append({"record": record, "pred": pred, **run.kind.frame_row(run, graph, labels, j)})
            bar.update()
        del records  # the next file's graphs replace this one's
    bar.close()
    if not frames:
        raise ValueError("the inputs hold no frame to predict")
    return _ROWS[run.kind](run, frames)


def _maybe_compile(run: Run, mode: str, n_frames: int) -> None:
    """Switch the run's model to its compiled path when ``mode`` asks for it (and it declares one)."""
    wanted = should_compile(mode, n_frames)
    if wanted and run.model.supports(Ability.COMPILED):
        log.info("compiling the model for %d frames (torch.compile; the first frame is slow)", n_frames)
        run.model.use_compiled(True)
    elif wanted and mode == "always":
        log.warning("--compile always: %s has no compiled path; running eagerly", run.config.model_name)


def _target_names(run: Run, frames: list[dict]) -> list[str] | None:
    """Names of the input columns compared with the predictions, or None if any frame lacks them."""
    if any("target" not in frame for frame in frames):
        return None
    return run.kind.input_target_names(run, [frame["record"] for frame in frames])


def _node_rows(run: Run, frames: list[dict]) -> Predictions:
    labels = type_names(run.manifest)
    arrays = {
        "pred": np.concatenate([f["pred"] for f in frames]),
        "atom": np.concatenate([np.arange(len(f["pred"])) for f in frames]),
        "type": np.concatenate([f["type"] for f in frames]),
        "source": np.concatenate([np.full(len(f["pred"]), str(f["record"]["source"])) for f in frames]),
        "frame": np.concatenate([np.full(len(f["pred"]), f["record"]["frame"]) for f in frames]),
    }
    arrays["type_label"] = np.array([labels[t] for t in arrays["type"]])
    arrays["pred_names"] = np.array(run.target_names)
    names = _target_names(run, frames)
    arrays["target_names"] = np.array(names if names is not None else run.target_names)
    out = Predictions(arrays)
    if names is None:
        _warn_no_target(run, next(f["record"] for f in frames if "target" not in f))
        return out
    arrays["target"] = np.concatenate([f["target"] for f in frames])
    arrays["mask"] = np.concatenate([f["mask"] for f in frames])
    _note_renamed(run, names)
    out.metrics = grouped_metrics(
        arrays["pred"], arrays["target"], arrays["type"], arrays["mask"], names, labels
    )
    return out


def _graph_rows(run: Run, frames: list[dict]) -> Predictions:
    arrays = {
        "pred": np.concatenate([f["pred"] for f in frames]),
        "source": np.array([str(f["record"]["source"]) for f in frames]),
        "frame": np.array([f["record"]["frame"] for f in frames]),
        "num_atoms": np.array([f["record"]["num_nodes"] for f in frames]),
        "pred_names": np.array(run.target_names),
    }
    names = _target_names(run, frames)
    arrays["target_names"] = np.array(names if names is not None else run.target_names)
    out = Predictions(arrays)
    if names is not None:
        target = np.concatenate([f["target"] for f in frames])
        if np.isnan(target).any():  # some snapshot lacks the value: no metrics, no partial column
            record = frames[int(np.flatnonzero(np.isnan(target).any(axis=1))[0])]["record"]
            log.warning(
                "no metrics: %s frame %d has no value for the graph target(s) %s",
                record["source"],
                record["frame"],
                ", ".join(names),
            )
            return out
        arrays["target"] = target
        out.metrics = graph_metrics(arrays["pred"], target, names)
    return out


def _warn_no_target(run: Run, record: dict) -> None:
    """Say which target a frame lacks, so a user sees why predict.py computed no metrics."""
    field = run.manifest.graph.get("target")
    where = f"{record['source']} frame {record['frame']}"
    if record["target"] == field and field is not None:
        problem = (
            f"its {field!r} columns {record['target_names']} are not the run's {run.manifest.target_names}"
        )
    else:
        fields = sorted(record["extra_fields"]) + ([record["target"]] if record["target"] else [])
        problem = f"it has no field {field!r} (its fields: {', '.join(fields) or 'none'})"
    log.warning("no metrics: the run learned %s, but in %s %s", ", ".join(run.target_names), where, problem)


#: Per task kind: the frames' rows gathered into :class:`Predictions`.
_ROWS = {NODE: _node_rows, GRAPH: _graph_rows}


def _note_renamed(run: Run, names: list[str]) -> None:
    if names != list(run.target_names):
        log.warning(
            "comparing the run's %s predictions with the inputs' %s (another time index or target)",
            ", ".join(run.target_names),
            ", ".join(names),
        )


def csv_text(arrays: dict[str, np.ndarray]) -> str:
    """One row per atom (node runs: source, frame, atom, type label) or per snapshot (graph
    runs: source, frame, number of atoms), then predictions (and targets)."""
    preds = [f"pred_{n}" for n in arrays["pred_names"]]
    per_graph = "atom" not in arrays
    header = ["source", "frame", *(["num_atoms"] if per_graph else ["atom", "type"]), *preds]
    has_target = "target" in arrays
    if has_target:
        header += [f"target_{n}" for n in arrays["target_names"]] + ([] if per_graph else ["mask"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for i in range(len(arrays["pred"])):
        row = [arrays["source"][i], int(arrays["frame"][i])]
        if per_graph:
            row.append(int(arrays["num_atoms"][i]))
        else:
            row += [int(arrays["atom"][i]), arrays["type_label"][i]]
        row += [f"{v:.7g}" for v in arrays["pred"][i]]
        if has_target:
            row += [f"{v:.7g}" for v in arrays["target"][i]]
            row += [] if per_graph else [int(arrays["mask"][i])]
        writer.writerow(row)
    return buf.getvalue()


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch (None: torch's default)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
