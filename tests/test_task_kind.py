"""Task kinds: named as manifests and configurations name them; one place for the learned targets."""

from __future__ import annotations

import pytest
import torch

from glassgnn.config import ConfigError
from glassgnn.manifest import TASKS, Manifest, Normalisation
from glassgnn.task_kind import GRAPH, KINDS, NODE, task_kind

MANIFEST = Manifest(
    type_map={"1": 0},
    graph={},
    target_names=["a", "b"],
    normalisation=Normalisation([1.0, 2.0], [3.0, 4.0]),
    graph_target_names=["energy"],
    graph_normalisation=Normalisation([-5.0], [0.5]),
)


def test_kinds_are_the_manifest_tasks_and_none_is_node():
    assert tuple(KINDS) == TASKS and task_kind(None) is NODE and task_kind("graph") is GRAPH
    with pytest.raises(ConfigError, match="task must be one of node, graph, got 'edge'"):
        task_kind("edge")


def test_learned_targets_by_name_or_all_with_their_normalisation():
    one = NODE.learned(MANIFEST, "b")
    assert one.columns == [1] and one.names == ["b"]
    assert torch.equal(one.mean, torch.tensor([2.0])) and torch.equal(one.std, torch.tensor([4.0]))
    every = GRAPH.learned(MANIFEST, None)
    assert every.columns == [0] and every.names == ["energy"] and every.std.tolist() == [0.5]
    with pytest.raises(ConfigError, match="'energy' is not in the dataset's target_names"):
        NODE.learned(MANIFEST, "energy")


def test_a_dataset_without_targets_of_the_kind_is_refused():
    node_only = Manifest(
        type_map={"1": 0}, graph={}, target_names=["a"], normalisation=Normalisation([0.0], [1.0])
    )
    with pytest.raises(ConfigError, match="no graph targets"):
        GRAPH.check(node_only)
    with pytest.raises(ConfigError, match="use --task graph"):
        NODE.check(Manifest(type_map={"1": 0}, graph={}, task="graph", graph_target_names=["e"]))
