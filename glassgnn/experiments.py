"""Repeated runs (``--num_exp N``: seeds seed..seed+N-1) and their mean ± std summary.

The summary has the form of the tables of the field (e.g. Li et al., ICML 2024,
Table 1: test Pearson 0.7859 ± 0.0056 over repeated seeds): every test metric,
per target and particle type, as mean ± sample standard deviation.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import dgl

from glassgnn import outputs, schema
from glassgnn.config import ResolvedConfig, dump
from glassgnn.distributed import DistInfo, barrier
from glassgnn.fileio import OutputExistsError, write_json, write_text
from glassgnn.manifest import Manifest
from glassgnn.metrics import METRICS, summarise
from glassgnn.readers import ReaderError
from glassgnn.resume import check_resume, stops_at_once
from glassgnn.task_kind import task_kind
from glassgnn.training import check_run, fit

SUMMARY = "summary.json"


def run_experiments(
    cfg: ResolvedConfig,
    graphs: dict[str, list[dgl.DGLGraph]],
    manifest: Manifest,
    output_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    info: DistInfo | None = None,
) -> dict:
    """One run in ``output_dir`` (num_exp 1) or runs ``output_dir/seed_<s>`` plus a summary.

    Returns the results of the single run, or the summary of the repeated ones.

    Args:
        cfg: the resolved configuration (``num_exp`` runs from ``seed`` on).
    """
    info = info or DistInfo()
    if cfg.num_exp == 1:
        return fit(cfg, graphs, manifest, output_dir, resume=resume, overwrite=overwrite, info=info)
    out = Path(output_dir)
    check_run(cfg, graphs, manifest)  # a bad setting fails before any folder is made
    if info.is_main:
        if (out / SUMMARY).exists() and not (overwrite or resume):
            raise OutputExistsError(
                f"{out} holds finished experiments; pass --overwrite to replace them, or --resume with a "
                "larger budget to continue them"
            )
        if resume and (out / outputs.CONFIG).exists():
            check_resume(out, cfg)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / outputs.CONFIG, dump(cfg))
    barrier(info)
    runs = []
    for seed in range(cfg.seed, cfg.seed + cfg.num_exp):
        run_dir = out / f"seed_{seed}"
        finished = (run_dir / outputs.RESULTS).exists()
        if resume and finished and stops_at_once(run_dir, replace(cfg, seed=seed)):
            runs.append(json.loads((run_dir / outputs.RESULTS).read_text()))
            continue
        again = resume and (run_dir / outputs.LAST).exists()
        runs.append(fit(replace(cfg, seed=seed), graphs, manifest, run_dir, again, overwrite, info))
    summary = summarise_runs(runs)
    if info.is_main:
        write_text(out / "summary.md", summary_table(summary))
        write_json(out / SUMMARY, summary)
    barrier(info)
    return summary


def summarise_runs(runs: list[dict]) -> dict:
    """Mean ± std over runs of every final metric: ``{split: {target: {group: {metric: {...}}}}}``."""
    summary: dict = {"seeds": [r["seed"] for r in runs], "best_epochs": [r["best_epoch"] for r in runs]}
    summary["task"] = task_kind(runs[0].get("task")).name  # results written before graph tasks: node
    metrics: dict = {}
    for split in schema.SPLITS:
        if split not in runs[0]["metrics"]:
            continue
        first = runs[0]["metrics"][split]
        metrics[split] = {"loss": summarise([r["metrics"][split]["loss"] for r in runs])}
        for target, groups in first.items():
            if target == "loss":
                continue
            metrics[split][target] = {
                group: {m: summarise([r["metrics"][split][target][group][m] for r in runs]) for m in METRICS}
                for group in groups
            }
    summary["metrics"] = metrics
    return summary


def summary_table(summary: dict, split: str = "test") -> str:
    """Markdown table of one split's metrics as mean ± std."""
    split = split if split in summary["metrics"] else "val"
    over = "snapshots" if task_kind(summary.get("task")).per_graph else "particles"
    lines = [
        f"# {split} metrics over seeds {summary['seeds']} (mean ± sample std)",
        "",
        f"| target | {over} | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for target, groups in summary["metrics"][split].items():
        if target == "loss":
            continue
        for group, values in groups.items():
            cells = [f"{values[m]['mean']:.4f} ± {values[m]['std']:.4f}" for m in METRICS]
            lines.append(f"| {target} | {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_dataset(dataset_dir: str | Path) -> tuple[dict[str, list[dgl.DGLGraph]], Manifest]:
    """Graphs of every split and the manifest of a directory written by construct_graph.py."""
    from glassgnn.dataset import load_manifest, load_split

    path = Path(dataset_dir)
    if not (path / schema.MANIFEST).is_file():
        raise FileNotFoundError(
            f"{path}: not a dataset directory (no {schema.MANIFEST}); build one with construct_graph.py"
        )
    graphs = {}
    for split in schema.SPLITS:
        if (path / schema.split_file(split)).is_file():
            graphs[split] = load_split(path, split)
        elif split != "test":
            raise FileNotFoundError(f"{path}: {schema.split_file(split)} is missing")
        if split != "test" and not graphs[split]:
            raise ReaderError(
                path / schema.split_file(split),
                f"holds no graph: training needs {split} graphs (construct_graph.py "
                + ("--train FILES)" if split == "train" else "--val FILES or --val_fraction F)"),
            )
    return graphs, load_manifest(path)
