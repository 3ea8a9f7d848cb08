"""Fine-tuning (train.py --init_from RUN [--freeze]): the run starts from exactly RUN's selected
weights, --freeze trains only the declared decoder, mismatches are refused before anything is
written, and resume and selection behave as for any run."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch
import yaml

import train
from glassgnn import outputs, schema, training
from glassgnn.checkpoint import load_checkpoint
from glassgnn.config import ConfigError, resolve
from glassgnn.experiments import load_dataset
from glassgnn.fine_tune import freeze_all_but_decoder, in_decoder, start_from_run, weights_sha256
from models.baseline import RidgeBaseline
from models.contract import Ability
from models.models import build_model, get_entry, model_names
from models.readout import build_graph_level_model
from tests.conftest import REPO
from tests.model_testing import SMALL, small_model, synthetic
from tests.synthetic import synthetic_graph, synthetic_manifest, write_dataset

pytestmark = pytest.mark.usefixtures("small_models_eager_one_thread")

GRADIENT_MODELS = [n for n in model_names() if Ability.CLOSED_FORM_FIT not in get_entry(n).cls.abilities]


def _decoder_parameters(model) -> tuple[list[str], list[str]]:
    names = [name for name, _ in model.named_parameters()]
    return [n for n in names if in_decoder(n, model.decoder_prefixes)], names


WRAPPED = {
    "baseline": lambda: RidgeBaseline(small_model("mlp", 3, out_dim=1), 3, 1),
    "attention readout": lambda: build_graph_level_model(
        "mlp", {"in_dim": 3}, {"op": "attention", "hidden_dim": 4}
    ),
    "graph readout": lambda: build_graph_level_model(
        "schnet", {**SMALL["schnet"], "in_dim": 3}, {"hidden_dim": 4}
    ),
}


@pytest.mark.parametrize("name", [*model_names(), *WRAPPED])
def test_every_declared_decoder_prefix_names_parameters_and_the_decoder_is_not_everything(name):
    model = WRAPPED[name]() if name in WRAPPED else small_model(name, 3, out_dim=1)
    decoder, names = _decoder_parameters(model)
    for prefix in model.decoder_prefixes:
        assert any(in_decoder(n, [prefix]) for n in names), f"{name}: {prefix} names no parameter"
    if name in model_names() and model.supports(Ability.CLOSED_FORM_FIT):
        assert decoder == names  # ridge: its one layer; --init_from refuses it
    else:
        assert 0 < len(decoder) < len(names)


def _documented_decoders() -> dict[str, list[str]]:
    """The table of docs/training.md: model -> decoder prefixes (with the default hyperparameters)."""
    text = (REPO / "docs" / "training.md").read_text().split("## Fine-tuning", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", text, flags=re.MULTILINE)
    return {model: re.findall(r"`([\w.]+)`", cell) for model, cell in rows}


def test_docs_and_help_name_every_model_s_declared_decoder():
    documented = _documented_decoders()
    help_text = " ".join(train.build_parser().format_help().split())
    for name in model_names():
        declared = list(build_model(name, {"in_dim": 3}).decoder_prefixes)
        assert documented[name] == declared, name
        assert name in help_text.split("--freeze", 1)[1]


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_freezing_keeps_every_other_parameter_and_buffer_bit_identical(name):
    """Two Adam steps in training mode: the decoder moves; every other parameter and buffer
    (batch-norm statistics of cgcnn and symgnn included) stays bit-identical, and the frozen
    modules ran in evaluation mode (symgnn's dropout and fast path follow their own modules)."""
    graph, feat = synthetic(seed=2)
    torch.manual_seed(0)
    model = small_model(name, 3, out_dim=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = freeze_all_but_decoder(model)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(2):
        optimiser.zero_grad()
        model(graph=graph, feat=feat).square().mean().backward()
        optimiser.step()
    decoder, _ = _decoder_parameters(model)
    for key, value in model.state_dict().items():
        if in_decoder(key, model.decoder_prefixes):
            continue
        assert torch.equal(value, before[key]), f"{name}: {key} changed"
    assert all(not model.get_parameter(n).requires_grad for n in frozen)
    assert any(not torch.equal(model.state_dict()[n], before[n]) for n in decoder)
    prefixes = model.decoder_prefixes
    for module_name, module in model.named_modules():
        holds_decoder = not module_name or in_decoder(module_name, prefixes)
        holds_decoder = holds_decoder or any(p.startswith(module_name + ".") for p in prefixes)
        assert module.training == holds_decoder, f"{name}: {module_name or 'the model'}"


# --- the training loop -------------------------------------------------------------------------


def _cfg(**kw) -> dict:
    base = {"model_name": "mlp", "dataset_dir": "unused", "node_fields": ["cn"], "save_results": False}
    return resolve({**base, "max_epoch": 6, "eval_interval": 2, "learning_rate": 3e-3, **kw}, None)


def _new_temperature() -> dict:
    """Other configurations with other targets (so other normalisation statistics)."""
    graphs = {
        split: [synthetic_graph(100 + 10 * i + j) for j in range(n)]
        for i, (split, n) in enumerate((("train", 2), ("val", 2), ("test", 2)))
    }
    for gs in graphs.values():
        for g in gs:
            g.ndata[schema.TARGET] = 2.0 * g.ndata[schema.TARGET] + 1.0
    return graphs


@pytest.fixture(scope="module")
def source(data, tmp_path_factory):
    """A finished mlp run and one with the ridge baseline, on the conftest data."""
    root = tmp_path_factory.mktemp("source")
    training.fit(_cfg(), *data, root / "mlp")
    training.fit(_cfg(baseline="ridge"), *data, root / "mlp_ridge")
    new = _new_temperature()
    return root, (new, synthetic_manifest(new))


def _first_step_state(monkeypatch) -> dict:
    """The module's state dict when the training loop takes its first step."""
    seen: dict = {}
    real = training.train_epoch

    def spy(model, *args, **kwargs):
        if not seen:
            seen.update({k: v.clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", spy)
    return seen


@pytest.mark.parametrize("run", ["mlp", "mlp_ridge"])
def test_the_run_starts_from_exactly_the_given_weights_with_the_new_normalisation(
    source, run, tmp_path, monkeypatch
):
    root, (graphs, manifest) = source
    loaded = load_checkpoint(root / run / outputs.BEST)["model"]
    first = _first_step_state(monkeypatch)
    baseline = "ridge" if run == "mlp_ridge" else "none"
    training.fit(_cfg(init_from=str(root / run), baseline=baseline), graphs, manifest, tmp_path / "ft")
    assert first.keys() == loaded.keys()
    for key, value in loaded.items():  # the ridge floor of a baseline run too: it is not refitted
        assert torch.equal(first[key], value), key
    config = yaml.safe_load((tmp_path / "ft" / outputs.CONFIG).read_text())
    assert config["init_from"] == str(root / run)
    assert config["init_sha256"] == weights_sha256(loaded)
    norm = load_checkpoint(tmp_path / "ft" / outputs.LAST)["normalisation"]
    assert norm["mean"] == pytest.approx(manifest.normalisation.mean)  # the new training split's
    assert norm["mean"] != pytest.approx(load_checkpoint(root / run / outputs.LAST)["normalisation"]["mean"])


def test_freeze_trains_only_the_decoder_and_resume_equals_the_uninterrupted_run(source, tmp_path):
    root, (graphs, manifest) = source
    cfg = _cfg(init_from=str(root / "mlp"), freeze=True, ema_decay=0.5)
    full = training.fit(cfg, graphs, manifest, tmp_path / "full")
    loaded = load_checkpoint(root / "mlp" / outputs.BEST)["model"]
    last = load_checkpoint(tmp_path / "full" / outputs.LAST)
    best = load_checkpoint(tmp_path / "full" / outputs.BEST)["model"]
    for key, value in loaded.items():
        frozen = not key.startswith("net.4.")  # mlp's decoder: the output layer
        for state in (last["model"], best):
            assert torch.equal(state[key], value) == frozen, key
    assert len(last["optimizer"]["param_groups"][0]["params"]) == 2  # the decoder's weight and bias

    def interrupt(epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.fit(cfg, graphs, manifest, tmp_path / "cut", on_epoch_end=interrupt)
    resumed = training.fit(cfg, graphs, manifest, tmp_path / "cut", resume=True)
    assert resumed["metrics"] == full["metrics"] and resumed["best_epoch"] == full["best_epoch"]
    for key, value in last["model"].items():
        assert torch.equal(load_checkpoint(tmp_path / "cut" / outputs.LAST)["model"][key], value)


def _val_curve(run_dir) -> list[str]:
    """The val_pearson column of metrics.csv."""
    lines = (run_dir / outputs.METRICS).read_text().splitlines()
    column = lines[0].split(",").index("val_pearson")
    return [line.split(",")[column] for line in lines[1:]]


def test_selection_stays_on_validation(source, tmp_path):
    root, (graphs, manifest) = source
    cfg = _cfg(init_from=str(root / "mlp"))
    a = training.fit(cfg, graphs, manifest, tmp_path / "a")
    scrambled = [g.clone() for g in graphs["test"]]
    for g in scrambled:
        g.ndata[schema.TARGET] = torch.randn_like(g.ndata[schema.TARGET])
    b = training.fit(cfg, {**graphs, "test": scrambled}, manifest, tmp_path / "b")
    assert a["best_epoch"] == b["best_epoch"] and a["selection"]["split"] == "val"
    assert _val_curve(tmp_path / "a") == _val_curve(tmp_path / "b")
    assert a["metrics"]["val"] == b["metrics"]["val"] and a["metrics"]["test"] != b["metrics"]["test"]


def test_symgnn_frozen_through_the_training_loop_keeps_its_batch_norm_statistics(data, tmp_path):
    cfg = _cfg(model_name="symgnn", max_epoch=1, batch_size=8)
    training.fit(replace(cfg, model=SMALL["symgnn"]), *data, tmp_path / "src")
    tuned = replace(cfg, max_epoch=2, init_from=str(tmp_path / "src"), freeze=True, model=SMALL["symgnn"])
    training.fit(tuned, *data, tmp_path / "ft")
    before = load_checkpoint(tmp_path / "src" / outputs.BEST)["model"]
    after = load_checkpoint(tmp_path / "ft" / outputs.LAST)["model"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    assert "node_encoder.1.running_mean" in before  # the statistics compared include batch norm's


# --- refusals, before anything is written ------------------------------------------------------


@pytest.fixture(scope="module")
def on_disk(data, tmp_path_factory):
    """The conftest data and a finished mlp run on disk, for the command line."""
    root = tmp_path_factory.mktemp("disk")
    dataset = write_dataset(root / "ds", data[0])
    flags = ["--model_name=mlp", f"--dataset_dir={dataset}", "--node_fields", "cn", "--max_epoch=2"]
    train.main([*flags, f"--output_dir={root / 'run'}", "--no-save_results"])
    unfinished = root / "unfinished"
    unfinished.mkdir()
    (unfinished / outputs.CONFIG).write_text((root / "run" / outputs.CONFIG).read_text())
    return root, flags


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--init_from=RUN", "--model_name=gcn"], "RUN: the run trained mlp, not gcn"),
        (["--init_from=RUN", "--model_config_path=WIDE"], r"RUN: model hyperparameters differ \(hidden_dims"),
        (
            ["--init_from=RUN", "--node_fields"],
            "RUN: model hyperparameters differ .*in_dim 3 in the run, 2 here",
        ),
        (["--init_from=RUN", "--type_encoding=scalar"], "RUN: model hyperparameters differ .*in_dim"),
        (["--init_from=RUN", "--baseline=ridge"], "RUN: baseline 'none' in the run, 'ridge' here"),
        (
            ["--init_from=RUN", "--init_sha256=abc"],
            "RUN: its selected weights have sha256 .* not the init_sha256 abc",
        ),
        (["--init_from=UNFINISHED"], "UNFINISHED: not a finished run"),
        (["--init_from=NOWHERE"], "NOWHERE: not a finished run"),
        (["--freeze"], "--freeze needs --init_from"),
    ],
)
def test_mismatches_are_refused_in_one_line_before_the_output_folder_exists(
    on_disk, tmp_path, capsys, flags, message
):
    root, base = on_disk
    (tmp_path / "wide.yaml").write_text("mlp:\n  hidden_dims: [8]\n")
    paths = {
        "RUN": root / "run",
        "UNFINISHED": root / "unfinished",
        "NOWHERE": root / "nowhere",
        "WIDE": tmp_path / "wide.yaml",
    }
    for key, path in paths.items():
        flags = [f.replace(key, str(path)) for f in flags]
        message = message.replace(key, re.escape(str(path)))
    with pytest.raises(SystemExit) as exc:
        train.main([*base, *flags, f"--output_dir={tmp_path / 'out'}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_the_cli_fine_tunes_and_repeats_from_its_config(on_disk, tmp_path):
    root, base = on_disk
    first = train.main([*base, f"--init_from={root / 'run'}", "--freeze", f"--output_dir={tmp_path / 'a'}"])
    again = train.main(["--config", str(tmp_path / "a" / outputs.CONFIG), f"--output_dir={tmp_path / 'b'}"])
    assert again["metrics"] == first["metrics"]
    assert json.loads((tmp_path / "b" / outputs.RESULTS).read_text())["selection"]["split"] == "val"
    with pytest.raises(ConfigError, match="needs --init_from"):
        training.check_run(_cfg(init_sha256="abc"), *load_dataset(root / "ds"))


def test_a_closed_form_model_is_refused(on_disk):
    root, _ = on_disk
    graphs, manifest = load_dataset(root / "ds")
    cfg = replace(_cfg(model_name="ridge", init_from=str(root / "run")), model={"in_dim": 3, "out_dim": 1})
    with pytest.raises(
        ConfigError, match=r"run: ridge is fitted in closed form, there are no gradient steps"
    ):
        start_from_run(cfg, build_model("ridge", cfg.model), manifest)
