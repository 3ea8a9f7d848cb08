"""Apply a trained run to new snapshots, with exactly the graph parameters of its dataset.

Graphs are rebuilt by :func:`glassgnn.dataset.build_graphs` from the run's copy of the
dataset manifest (cutoff, k-NN, self-loops, per-pair cutoffs, mask, type mapping), so
a model never sees a graph built differently from those it was trained on. Inputs
with a particle type outside the run's type map are refused.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field

import numpy as np
import tqdm

from glassgnn import schema
from glassgnn.dataset import build_graphs
from glassgnn.metrics import grouped_metrics
from glassgnn.run import Run, type_names

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Per-atom predictions of every frame of every input, concatenated.

    Attributes:
        arrays: ``pred`` [N, k] (original units), ``atom`` [N] index within its frame,
            ``type`` [N] type index, ``type_label`` [N] original label, ``source`` [N]
            input file, ``frame`` [N] frame within the file, ``target_names`` [k];
            with targets also ``target`` [N, k] and ``mask`` [N].
        metrics: as in train.py's results.json (per target and type), or None without targets.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict | None = None


def graph_params(run: Run, format: str | None = None, time_index: int | None = None) -> dict:
    """The dataset's graph parameters, with the input format and time index optionally replaced."""
    params = dict(run.manifest["graph"])
    if format is not None:
        params["format"] = format
    if time_index is not None:
        params["time_index"] = time_index
    return params


def predict_files(run: Run, paths: list[str], params: dict, progress: bool = True) -> Predictions:
    """Predict every frame of ``paths`` (read file by file, predicted frame by frame).

    Metrics are computed when every frame carries the run's target columns.
    """
    labels = type_names(run.manifest)
    parts: dict[str, list] = {k: [] for k in ("pred", "target", "mask", "atom", "type", "source", "frame")}
    with_targets = True
    bar = tqdm.tqdm(desc="frames", unit="frame", disable=not progress)
    for path in paths:
        for frame, graph in enumerate(build_graphs([path], params, type_map=run.manifest["type_map"])):
            n = graph.num_nodes()
            parts["pred"].append(run.predict(graph).cpu().numpy())
            y = graph.ndata[schema.TARGET]
            if y.shape[1] == len(run.manifest["target_names"]):
                parts["target"].append(run.targets(graph).numpy())
            else:
                with_targets = False
            parts["mask"].append(graph.ndata[schema.MASK].numpy())
            parts["atom"].append(np.arange(n))
            parts["type"].append(graph.ndata[schema.TYPE].numpy())
            parts["source"].append(np.full(n, str(path)))
            parts["frame"].append(np.full(n, frame))
            bar.update()
    bar.close()
    if not parts["pred"]:
        raise ValueError("the inputs hold no frame to predict")
    arrays = {k: np.concatenate(v) for k, v in parts.items() if v and (k != "target" or with_targets)}
    arrays["type_label"] = np.array([labels[t] for t in arrays["type"]])
    arrays["target_names"] = np.array(run.target_names)
    out = Predictions(arrays)
    if with_targets:
        out.metrics = grouped_metrics(
            arrays["pred"], arrays["target"], arrays["type"], arrays["mask"], run.target_names, labels
        )
    else:
        arrays.pop("mask")
        log.info("inputs carry no (or other) target columns: no metrics")
    return out


def csv_text(arrays: dict[str, np.ndarray]) -> str:
    """One row per atom: source, frame, atom, type label, predictions (and targets)."""
    names = [str(n) for n in arrays["target_names"]]
    header = ["source", "frame", "atom", "type", *[f"pred_{n}" for n in names]]
    has_target = "target" in arrays
    if has_target:
        header += [f"target_{n}" for n in names] + ["mask"]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for i in range(len(arrays["atom"])):
        row = [arrays["source"][i], int(arrays["frame"][i]), int(arrays["atom"][i]), arrays["type_label"][i]]
        row += [f"{v:.7g}" for v in arrays["pred"][i]]
        if has_target:
            row += [f"{v:.7g}" for v in arrays["target"][i]] + [int(arrays["mask"][i])]
        writer.writerow(row)
    return buf.getvalue()
