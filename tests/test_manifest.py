"""The manifest file: older files load, unknown keys survive a copy, bad files fail with one line."""

from __future__ import annotations

import json

import pytest

from glassgnn.manifest import Manifest, ManifestError, Normalisation
from tests.conftest import REPO

#: A node-task manifest as construct_graph.py wrote it before fields were standardised.
OLD = {
    "task": "node",
    "type_map": {"1": 0, "2": 1},
    "num_types": 2,
    "target_names": ["y"],
    "normalisation": {"mean": [0.5], "std": [2.0]},
    "graph_target_names": [],
    "graph_normalisation": {"mean": [], "std": []},
    "extra_fields": {"pot": 1},
    "units": {"length": "A"},
    "graph": {"cutoff": 3.0, "descriptors": None},
    "splits": {"train": {"graphs": [{"source": "a", "frame": 0}]}},
    "inputs": [],
    "versions": {"python": "3.11"},
}


def test_an_older_manifest_loads_with_empty_new_fields(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(OLD))
    manifest = Manifest.load(path)
    assert manifest.num_types == 2 and manifest.normalisation == Normalisation([0.5], [2.0])
    assert manifest.field_normalisation == {} and manifest.descriptor_names == []
    assert {key: value for key, value in manifest.to_dict().items() if key in OLD} == OLD


def test_the_bundled_deepmind_run_reads_as_a_node_task():
    manifest = Manifest.load(REPO / "datasets" / "deepmind" / "t044_s09" / "manifest.json")
    assert manifest.task == "node" and manifest.target_names == ["propensity_0"]
    assert manifest.normalisation == Normalisation([0.0], [1.0]) and manifest.type_map == {"0": 0, "1": 1}


def test_unknown_keys_are_written_back(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps({**OLD, "written_by": "a later version"}))
    manifest = Manifest.load(tmp_path / "in.json")
    assert manifest.unknown == {"written_by": "a later version"}
    manifest.save(tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text())["written_by"] == "a later version"
    assert Manifest.load(tmp_path / "out.json") == manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type_map": None}, "lacks type_map"),
        ({"num_types": 3}, "num_types 3 but type_map has 2 types"),
        ({"task": "edge"}, "task must be one of node, graph, got 'edge'"),
        ({"normalisation": {"mean": [0.5]}}, "normalisation must hold exactly mean and std"),
    ],
)
def test_a_bad_manifest_fails_naming_the_file(tmp_path, change, message):
    data = {key: value for key, value in {**OLD, **change}.items() if value is not None}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message) as err:
        Manifest.load(path)
    assert str(path) in str(err.value)


def test_a_truncated_manifest_fails_naming_the_file(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(OLD)[:40])
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(path)
