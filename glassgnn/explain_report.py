"""What explain.py writes from its results: summary.json, explanations.npz, particles.csv,
timing.json and the figures, for per-particle results (:func:`write_outputs`) and for a
whole graph (:func:`write_graph_outputs`). The tier statistics of cycle participation
(:func:`participation_statistics`) are the same for both: pooled over the explained
particles, or over the one graph.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import dgl
import numpy as np

from glassgnn import explain_plots, schema, topology
from glassgnn.explain_pipeline import ExplainOptions, GraphResult, ParticleResult
from glassgnn.explain_subgraph import bonds
from glassgnn.fileio import atomic_path, write_json, write_text
from glassgnn.task_kind import GRAPH

PARTICIPATION = (("cycle_count", "edge_cycles"), ("cycle_persistence", "edge_cycle_persistence"))


def pooled_bonds(
    results: list[ParticleResult] | list[GraphResult], key: str = "edge_cycles"
) -> tuple[dict, np.ndarray, np.ndarray]:
    """{tier: participation of the tier's bonds}, importance and participation of all bonds, pooled."""
    tier_values = {name: [np.zeros(0)] for name in topology.TIERS}
    all_imp, all_part = [np.zeros(0)], [np.zeros(0)]
    for r in results:
        bond_imp, part = r.bond_values(key)
        for name, idx in r.tiers.items():
            tier_values[name].append(part[idx])
        all_imp.append(bond_imp)
        all_part.append(part)
    return (
        {k: np.concatenate(v) for k, v in tier_values.items()},
        np.concatenate(all_imp),
        np.concatenate(all_part),
    )


def participation_statistics(results: list[ParticleResult] | list[GraphResult]) -> dict:
    """Tier statistics of cycle participation (count and summed persistence), pooled over results."""
    return {name: topology.tier_statistics(*pooled_bonds(results, key)) for name, key in PARTICIPATION}


def summary(results: list[ParticleResult], options: ExplainOptions, extra: dict) -> dict:
    """The content of summary.json: parameters, tier statistics, fidelity."""
    fid = {}
    for key in ("plus", "minus", "random"):
        values = np.array([r.fidelity[key] for r in results])
        fid[key] = {"mean": float(values.mean()), "std": float(values.std())} if len(values) else None
    return {
        "parameters": {**asdict(options), **extra},
        "num_particles": len(results),
        # alpha where the neighbourhood fits one unwrapped copy, else the periodic rips.
        "complex_by_particle": {str(r.explanation.node): r.complex for r in results},
        "participation": participation_statistics(results),
        "fidelity": fid,
        # How far the explained (subgraph) prediction is from the full-graph one: ~1e-6
        # (float32) when the model is local to L hops, larger when it is not.
        "subgraph_vs_full_prediction_max_abs_diff": max(
            (float(np.abs(r.subgraph_prediction - r.prediction).max()) for r in results), default=0.0
        ),
        "subgraph_mean_size": {
            "nodes": float(np.mean([len(r.explanation.nodes) for r in results])),
            "edges": float(np.mean([len(r.explanation.src) for r in results])),
        },
    }


def graph_summary(result: GraphResult, options: ExplainOptions, extra: dict) -> dict:
    """summary.json of a graph-level explanation: tier statistics over all bonds of the graph."""
    return {
        "task": GRAPH.name,
        "parameters": {**asdict(options), **extra},
        "prediction": result.prediction.tolist(),
        "target": [None if np.isnan(t) else float(t) for t in result.target],
        "participation": participation_statistics([result]),
        "fidelity": {key: result.fidelity[key] for key in ("plus", "minus", "random", "k")},
        "graph_size": {
            "nodes": result.num_nodes,
            "edges": len(result.src),
            "bonds": int(len(bonds(result.src, result.dst, result.explanation.importance)[1])),
        },
        "h1_cycles": len(result.cycles),
    }


def write_outputs(
    directory: Path,
    results: list[ParticleResult],
    summary_: dict,
    graph: dgl.DGLGraph,
    options: ExplainOptions,
) -> None:
    """summary.json, explanations.npz, particles.csv, timing.json and the figures, into ``directory``."""
    write_json(directory / "summary.json", summary_)
    seconds, explainer = np.mean([r.seconds for r in results]), np.mean([r.explain_seconds for r in results])
    timing = {
        "seconds_per_particle": float(seconds),
        "explainer_seconds_per_particle": float(explainer),
        "fidelity_and_topology_seconds_per_particle": float(seconds - explainer),
        "particles": len(results),
    }
    write_json(directory / "timing.json", timing)
    types = graph.ndata[schema.TYPE].cpu().numpy()
    exps = [r.explanation for r in results]
    node_offsets = np.cumsum([0] + [len(e.nodes) for e in exps])
    edge_offsets = np.cumsum([0] + [len(e.src) for e in exps])
    cat = np.concatenate
    arrays = {
        "node": np.array([e.node for e in exps], dtype=np.int64),
        "prediction": np.array([r.prediction for r in results]),
        "target": np.array([r.target for r in results]),
        "feat_importance": np.array([e.feat_importance for e in exps]),
        "fidelity_plus": np.array([r.fidelity["plus"] for r in results]),
        "fidelity_minus": np.array([r.fidelity["minus"] for r in results]),
        "fidelity_random": np.array([r.fidelity["random"] for r in results]),
        "node_offsets": node_offsets,
        "subgraph_nodes": cat([e.nodes for e in exps]),
        "edge_offsets": edge_offsets,
        "edge_ids": cat([e.edge_ids for e in exps]),
        "edge_src": cat([e.nodes[e.src] for e in exps]),
        "edge_dst": cat([e.nodes[e.dst] for e in exps]),
        "importance": cat([e.importance for e in exps]),
        "edge_cycles": cat([r.edge_cycles for r in results]),
        "edge_cycle_persistence": cat([r.edge_cycle_persistence for r in results]),
    }
    with atomic_path(directory / "explanations.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    rows = [
        "node,type,target,prediction,subgraph_nodes,subgraph_edges,h1_cycles,"
        "fidelity_plus,fidelity_minus,fidelity_random,top_k_mean_cycles,bottom_k_mean_cycles,complex"
    ]
    for r in results:
        e = r.explanation
        _, part = r.bond_values()
        top, bottom = (part[r.tiers[t]].mean() if len(r.tiers[t]) else np.nan for t in ("top", "bottom"))
        rows.append(
            f"{e.node},{types[e.node]},{r.target[0]:.6g},{r.prediction[0]:.6g},{len(e.nodes)},{len(e.src)},"
            f"{len(r.cycles)},{r.fidelity['plus']:.6g},{r.fidelity['minus']:.6g},{r.fidelity['random']:.6g},"
            f"{top:.4g},{bottom:.4g},{r.complex}"
        )
    write_text(directory / "particles.csv", "\n".join(rows) + "\n")
    _figures(directory, results, summary_, graph, options)


def write_graph_outputs(
    directory: Path, result: GraphResult, summary_: dict, options: ExplainOptions
) -> None:
    """summary.json, explanations.npz, timing.json and the figures of a graph-level explanation."""
    write_json(directory / "summary.json", summary_)
    write_json(directory / "timing.json", {"seconds_per_graph": result.seconds, "graphs": 1})
    e = result.explanation
    arrays = {
        "prediction": result.prediction,
        "target": result.target,
        "feat_importance": e.feat_importance,
        "edge_src": result.src,
        "edge_dst": result.dst,
        "importance": e.importance,
        "edge_cycles": result.edge_cycles,
        "edge_cycle_persistence": result.edge_cycle_persistence,
    }
    with atomic_path(directory / "explanations.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    explain_plots.persistence_figure(
        result.diagrams,
        f"{options.complex}, graph {options.graph_index}",
        directory / "persistence_graph.png",
    )
    _tier_figures(directory, [result], summary_, options)


def _figures(directory: Path, results, summary_: dict, graph: dgl.DGLGraph, options: ExplainOptions) -> None:
    first = results[0]
    e = first.explanation
    explain_plots.persistence_figure(
        first.diagrams, f"{first.complex}, particle {e.node}", directory / "persistence_particle.png"
    )
    _tier_figures(directory, results, summary_, options)
    pairs, bond_imp, _ = bonds(e.src, e.dst, e.importance)
    # A wrapped neighbourhood has bonds through a box face, which would cross the figure.
    drawn = np.linalg.norm(first.positions[pairs[:, 0]] - first.positions[pairs[:, 1]], axis=1)
    near = drawn <= float(graph.edata[schema.DIST].max()) + 1e-3
    pairs, bond_imp = pairs[near], bond_imp[near]
    types = graph.ndata[schema.TYPE].cpu().numpy()[e.nodes]
    explain_plots.neighbourhood_figure(
        first.positions, types, pairs, bond_imp, e.center, options.top_k, directory / "neighbourhood_3d.png"
    )


def _tier_figures(directory: Path, results, summary_: dict, options: ExplainOptions) -> None:
    """Participation by tier and importance against participation, over all results' bonds."""
    tier_values, all_imp, all_part = pooled_bonds(results)
    explain_plots.tier_histogram(tier_values, directory / "participation_by_tier.png", options.top_k)
    rho = summary_["participation"]["cycle_count"]["spearman_importance_participation"]["rho"]
    explain_plots.importance_scatter(all_imp, all_part, rho, directory / "importance_vs_participation.png")
