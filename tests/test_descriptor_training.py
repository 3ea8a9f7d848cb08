"""Descriptors through the pipeline: construct_graph.py --descriptors, the ridge floor in closed
form, descriptor inputs to a graph network (with the ridge baseline), the training recipe
(warm-up, a sampled train evaluation) and continuing a finished run with a larger budget."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

import construct_graph
import predict
import train
from glassgnn import schema
from glassgnn.dataset import build_graphs, load_manifest, load_split
from glassgnn.descriptors import DescriptorParams, compute_descriptors
from glassgnn.experiments import load_dataset
from glassgnn.graph import build_graph
from glassgnn.run import load_run
from glassgnn.training import fit
from models.baseline import GATE_SCALE
from models.ridge import NormalEquations

BOX = 7.0
# Small cells need explicit lengths: the defaults (3 mean spacings) exceed half of a 7-unit box.
PARAMS = [
    "shell_start=0.6",
    "shell_stop=2.2",
    "shell_step=0.2",
    "shell_width=0.2",
    "q_l=[4,6]",
    "q_cutoff=1.4",
    "coarse_radii=[1.4,2.2]",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _write_config(path, seed: int, n_atoms: int = 160):
    """Random binary configuration; target = neighbours within 1.1 + 0.5 type + noise."""
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, BOX, (n_atoms, 3))
    types = (rng.random(n_atoms) < 0.3).astype(np.int64)
    coordination = build_graph(positions, types, np.full(3, BOX), 1.1).in_degrees().numpy()
    target = coordination + 0.5 * types + 0.1 * rng.standard_normal(n_atoms)
    np.savez(path, positions=positions, types=types + 1, box=np.full(3, BOX), y=target)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("desc")
    files = [_write_config(root / f"c{i}.npz", i) for i in range(8)]
    out = root / "ds"
    construct_graph.main(
        ["--train", *map(str, files[:4]), "--val", *map(str, files[4:6]), "--test", *map(str, files[6:])]
        + ["--target", "y", "--cutoff", "1.5", "--descriptors", "--descriptor_param", *PARAMS]
        + ["--output_dir", str(out)]
    )
    return out, files


@pytest.mark.parametrize("one_hot", [False, True], ids=["full_rank", "one_hot_columns"])
def test_ridge_solution_equals_numpy_least_squares(one_hot):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 7)), rng.standard_normal((200, 2))
    if one_hot:  # two columns summing to one, as a one-hot type does: centred X is rank deficient
        x[:, 0] = rng.integers(0, 2, 200)
        x[:, 1] = 1.0 - x[:, 0]
    equations = NormalEquations(7, 2)
    equations.add(torch.from_numpy(x[:120]), torch.from_numpy(y[:120]))
    equations.add(torch.from_numpy(x[120:]), torch.from_numpy(y[120:]))
    for alpha, (weight, bias) in zip([0.0, 3.0], equations.solve([0.0, 3.0]), strict=True):
        # ridge with an unpenalised intercept: centre, then least squares on [X; sqrt(alpha) I]
        xc, yc = x - x.mean(0), y - y.mean(0)
        a = np.vstack([xc, np.sqrt(alpha) * np.eye(7)])
        b = np.vstack([yc, np.zeros((7, 2))])
        expected = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(weight.numpy(), expected, atol=1e-10)
        np.testing.assert_allclose(bias.numpy(), y.mean(0) - x.mean(0) @ expected, atol=1e-10)


def test_descriptors_are_stored_recorded_and_rebuilt_identically(dataset):
    out, files = dataset
    manifest = load_manifest(out)
    params = DescriptorParams.from_dict(manifest.graph["descriptors"])
    assert params.coarse_radii == (1.4, 2.2) and params.q_l == (4, 6)
    width = manifest.extra_fields[schema.DESCRIPTORS]
    assert len(manifest.descriptor_names) == width
    assert len(manifest.field_normalisation[schema.DESCRIPTORS].mean) == width
    stored = load_split(out, "test")[0].ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS]
    data = np.load(files[6])
    expected = compute_descriptors(data["positions"], data["types"] - 1, data["box"], 2, params)
    np.testing.assert_allclose(stored.numpy(), expected.astype(np.float32))
    # predict.py's path: the manifest's graph parameters on the same file
    rebuilt = build_graphs([files[6]], manifest.graph, manifest.type_map)[0]
    assert torch.equal(rebuilt.ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS], stored)


def test_ridge_selects_on_validation_and_predict_rebuilds_its_inputs(dataset, tmp_path):
    out, files = dataset
    run = tmp_path / "ridge"
    results = train.main(["--model_name", "ridge", "--dataset_dir", str(out), "--output_dir", str(run)])
    rows = [json.loads(json.dumps(r)) for r in _rows(run / "metrics.csv")]
    best = max(rows, key=lambda r: r["val_pearson"])
    assert results["best_epoch"] == int(best["epoch"])
    assert results["selection"]["split"] == "val"
    assert results["metrics"]["val"]["y"]["all"]["pearson"] > 0.8  # the target is structural
    loaded = load_run(run)
    prediction = predict.main(
        ["--run_dir", str(run), "--input", str(files[6]), "--output", str(tmp_path / "p.npz")]
    )
    assert prediction is not None
    arrays = np.load(tmp_path / "p.npz")
    graph = load_split(out, "test")[0]
    np.testing.assert_allclose(arrays["pred"], loaded.predict(graph).numpy(), rtol=1e-5, atol=1e-6)


def test_descriptor_models_refuse_a_dataset_without_descriptors(tmp_path, capsys):
    files = [_write_config(tmp_path / f"c{i}.npz", i, 60) for i in range(2)]
    out = tmp_path / "plain"
    construct_graph.main(
        ["--train", str(files[0]), "--val", str(files[1]), "--target", "y"]
        + ["--cutoff", "1.5", "--output_dir", str(out)]
    )
    capsys.readouterr()
    for model in ("ridge", "glassmlp"):
        with pytest.raises(SystemExit):
            train.main(
                ["--model_name", model, "--dataset_dir", str(out), "--output_dir", str(tmp_path / model)]
            )
        err = capsys.readouterr().err
        assert "construct_graph.py --descriptors" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / model).exists()


def _rows(path):
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, map(float, line.split(",")), strict=True)) for line in lines[1:]]


def _cfg(out, **kw):
    from glassgnn.config import resolve

    base = {
        "model_name": "schnet",
        "dataset_dir": str(out),
        "node_fields": ["descriptors"],
        "save_results": False,
        "batch_size": 2,
    }
    cfg = resolve({**base, **kw}, None)
    return replace(cfg, model={"hidden_dim": 8, "num_filters": 8, "num_interactions": 2, "cutoff": 1.5})


@pytest.mark.parametrize("input_dropout", [0.0, 0.3])
def test_gnn_with_descriptors_starts_at_the_ridge_floor_and_resumes_exactly(dataset, tmp_path, input_dropout):
    out, _ = dataset
    data = load_dataset(out)
    cfg = _cfg(
        out,
        baseline="ridge",
        max_epoch=6,
        eval_interval=2,
        learning_rate=3e-3,
        ema_decay=0.8,
        input_dropout=input_dropout,
    )
    ridge_cfg = replace(cfg, model_name="ridge", model={}, baseline="none", input_dropout=0.0)
    ridge = fit(ridge_cfg, *data, tmp_path / "ridge")
    full = fit(cfg, *data, tmp_path / "full")
    start = load_run(tmp_path / "full")
    assert start.model.ridge.alpha == load_run(tmp_path / "ridge").model.alpha  # same fit, same choice
    assert (
        full["metrics"]["val"]["y"]["all"]["pearson"] >= ridge["metrics"]["val"]["y"]["all"]["pearson"] - 0.02
    )

    def interrupt(epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, *data, tmp_path / "cut", on_epoch_end=interrupt)
    resumed = fit(cfg, *data, tmp_path / "cut", resume=True)
    assert resumed["metrics"] == full["metrics"]
    # the moving average is what was evaluated, selected and saved as best.pt's weights
    for name in ("best.pt", "last.pt"):
        state = torch.load(tmp_path / "full" / name)
        averaged = {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
        same = [torch.equal(state["model"][k], v) for k, v in averaged.items()]
        assert all(same) if name == "best.pt" else not all(same)  # last.pt keeps the raw weights


def test_input_dropout_reaches_only_the_network_part_and_only_in_training(dataset, tmp_path):
    out, _ = dataset
    data = load_dataset(out)
    with pytest.raises(Exception, match="input_dropout acts on the network part"):
        fit(_cfg(out, max_epoch=1, input_dropout=0.3), *data, tmp_path / "plain")
    assert not (tmp_path / "plain").exists()  # refused before anything is written
    fit(_cfg(out, baseline="ridge", max_epoch=2, input_dropout=0.5), *data, tmp_path / "run")
    run = load_run(tmp_path / "run")
    model, graph = run.model, data[0]["val"][0]
    feat = run.features(graph)
    seen = []
    model.network.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["feat"]), with_kwargs=True
    )
    with torch.no_grad():
        model.eval()
        evaluated = model(graph, feat)
        model.train()
        trained = model(graph, feat)
    assert torch.equal(seen[0], feat)  # evaluation: every input
    dropped = seen[1] == 0
    assert 0.4 < dropped[feat != 0].float().mean() < 0.6  # training: about half of them, rescaled
    assert torch.allclose(seen[1][~dropped], 2 * feat[~dropped])
    ridge_part = model.ridge(graph, feat)
    gate = model.gate * GATE_SCALE
    assert torch.allclose(evaluated, ridge_part + gate * model.network(graph=graph, feat=feat))
    assert not torch.allclose(trained, evaluated)


def test_finished_run_continues_with_a_larger_budget_as_if_never_stopped(dataset, tmp_path):
    out, _ = dataset
    data = load_dataset(out)
    long = fit(_cfg(out, max_epoch=6, eval_interval=2), *data, tmp_path / "long")
    fit(_cfg(out, max_epoch=4, eval_interval=2), *data, tmp_path / "short")
    # a run written before a key existed: the missing key takes its built-in default, which
    # keeps the old behaviour, so the run continues; one whose default differs is refused
    config = tmp_path / "short" / "config.yaml"
    written = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({k: v for k, v in written.items() if k not in ("freeze", "init_from")}))
    ema = _cfg(out, max_epoch=6, eval_interval=2, ema_decay=0.5)
    config.write_text(
        yaml.safe_dump({k: v for k, v in yaml.safe_load(config.read_text()).items() if k != "ema_decay"})
    )
    with pytest.raises(Exception, match="ema_decay differs"):
        fit(ema, *data, tmp_path / "short", resume=True)
    with pytest.raises(Exception, match="nothing to resume"):
        fit(_cfg(out, max_epoch=4, eval_interval=2), *data, tmp_path / "short", resume=True)
    first = json.loads((tmp_path / "short" / "results.json").read_text())

    def interrupt(epoch):
        if epoch == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a continuation stopped half-way is not a finished run
        fit(
            _cfg(out, max_epoch=6, eval_interval=2),
            *data,
            tmp_path / "short",
            resume=True,
            on_epoch_end=interrupt,
        )
    assert not (tmp_path / "short" / "results.json").exists()
    assert json.loads((tmp_path / "short" / "results.segment1.json").read_text()) == first
    more = fit(_cfg(out, max_epoch=6, eval_interval=2), *data, tmp_path / "short", resume=True)
    assert more["metrics"] == long["metrics"]
    rows = _rows(tmp_path / "short" / "metrics.csv")
    assert [r["segment"] for r in rows] == [1, 1, 2]
    for key, value in torch.load(tmp_path / "long" / "last.pt")["model"].items():
        assert torch.equal(value, torch.load(tmp_path / "short" / "last.pt")["model"][key])
    with pytest.raises(Exception, match="budgets may only grow"):
        fit(_cfg(out, max_epoch=3, eval_interval=2), *data, tmp_path / "short", resume=True)


def test_warmup_then_cosine_and_a_sampled_train_evaluation(dataset, tmp_path):
    out, _ = dataset
    data = load_dataset(out)
    cfg = _cfg(
        out,
        model_name="glassmlp",
        max_epoch=8,
        warmup_epochs=3,
        scheduler="cosine",
        learning_rate=1e-2,
        train_eval_graphs=1,
    )
    fit(replace(cfg, model={}), *data, tmp_path / "run")
    rows = _rows(tmp_path / "run" / "metrics.csv")
    lr = [r["lr"] for r in rows]  # after each epoch's schedule step: epochs 1..8
    assert lr[:3] == pytest.approx([1e-2 * (k + 1) / 4 + 0 for k in range(1, 4)][:3], rel=1e-6)
    assert lr[2] == pytest.approx(1e-2)
    cosine = [1e-2 * 0.5 * (1 + np.cos(np.pi * k / 5)) for k in range(1, 6)]
    assert lr[3:] == pytest.approx(cosine, rel=1e-6, abs=1e-12)
    assert all(r["train_eval_graphs"] == 1 for r in rows)


def test_explain_refuses_a_dataset_built_with_other_descriptors(dataset, tmp_path, capsys):
    out, files = dataset
    run = tmp_path / "ridge"
    train.main(["--model_name", "ridge", "--dataset_dir", str(out), "--output_dir", str(run)])
    other = tmp_path / "other"
    params = [p if not p.startswith("coarse_radii") else "coarse_radii=[1.4]" for p in PARAMS]
    construct_graph.main(
        ["--train", *map(str, files[:2]), "--val", str(files[4]), "--test", str(files[6]), "--target", "y"]
        + ["--cutoff", "1.5", "--descriptors", "--descriptor_param", *params, "--output_dir", str(other)]
    )
    capsys.readouterr()
    import explain

    with pytest.raises(SystemExit):
        explain.main(
            ["--run_dir", str(run), "--dataset_dir", str(other), "--nodes", "0"]
            + ["--output_dir", str(tmp_path / "ex")]
        )
    assert "descriptors built with" in capsys.readouterr().err
    assert not (tmp_path / "ex").exists()
    # a run recorded before the later descriptor keys existed accepts its own dataset
    loaded = load_run(run)
    for key in ("fields", "inherent", "learned_fields", "learned_step", "learned_weights"):
        del loaded.manifest.graph["descriptors"][key]
    loaded.check_dataset(load_manifest(out), str(out))
    with pytest.raises(ValueError, match="descriptors built with"):
        loaded.check_dataset(load_manifest(other), str(other))


def test_file_fields_as_descriptors_through_construct_and_predict(tmp_path, capsys):
    """--descriptor_param fields=[...]: the file's per-atom values become descriptor columns;
    predict.py rebuilds them from new files, and a file without the field is refused in one line
    naming it, before anything is written."""
    files = []
    for i in range(3):
        data = dict(np.load(_write_config(tmp_path / f"c{i}.npz", i, 60)))
        data["pot"] = np.random.default_rng(i).standard_normal(60)
        np.savez(tmp_path / f"c{i}.npz", **data)
        files.append(tmp_path / f"c{i}.npz")
    common = ["--target", "y", "--cutoff", "1.5", "--descriptors", "--descriptor_param", *PARAMS]
    out = tmp_path / "ds"
    construct_graph.main(
        ["--train", str(files[0]), "--val", str(files[1]), *common, "fields=[pot]", "--output_dir", str(out)]
    )
    manifest = load_manifest(out)
    assert manifest.graph["descriptors"]["fields"] == ["pot"]
    column = manifest.descriptor_names.index("pot")
    stored = load_split(out, "val")[0].ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS]
    np.testing.assert_allclose(stored[:, column].numpy(), np.load(files[1])["pot"].astype(np.float32))
    rebuilt = build_graphs([files[1]], manifest.graph, manifest.type_map)[0]
    assert torch.equal(rebuilt.ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS], stored)
    capsys.readouterr()
    refused = tmp_path / "refused"
    with pytest.raises(SystemExit) as exit_:
        construct_graph.main(
            ["--train", str(files[0]), "--val", str(files[2])]
            + [*common, "fields=[pot,stress]", "--output_dir", str(refused)]
        )
    err = str(exit_.value.code).strip()
    assert "c0.npz" in err and "'stress'" in err and len(err.splitlines()) == 1
    assert not refused.exists()
    with pytest.raises(SystemExit) as exit_:  # the target as an input would leak it
        construct_graph.main(
            ["--train", str(files[0]), "--val", str(files[2])]
            + [*common, "fields=[pot,y]", "--output_dir", str(refused)]
        )
    assert "the target 'y' cannot be a descriptor field" in str(exit_.value.code)
    assert not refused.exists()
