"""Configuration: precedence, validation messages, round trip of the resolved file."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest
import yaml

from glassgnn.config import ConfigError, defaults, dump, load_resolved, model_hparams, readout_config, resolve
from glassgnn.task_kind import GRAPH, NODE
from tests.conftest import REPO


def _conf(tmp_path, data) -> str:
    path = tmp_path / "train.conf.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_precedence_defaults_global_model_section_flags(tmp_path):
    path = _conf(
        tmp_path,
        {
            "global": {"learning_rate": 0.01, "patience": 7, "max_epoch": 50},
            "mlp": {"patience": 9, "hidden_dims": [8]},
        },
    )
    cfg = resolve({"model_name": "mlp", "dataset_dir": "d", "max_epoch": 3}, path)
    assert cfg.eval_interval == defaults()["eval_interval"]  # built-in default
    assert cfg.learning_rate == 0.01  # global
    assert cfg.patience == 9  # model section beats global
    assert cfg.max_epoch == 3  # given flag beats global
    assert cfg.model == {"hidden_dims": [8]}


def test_yaml_float_written_without_dot_is_a_float(tmp_path):
    path = _conf(tmp_path, {"global": {"learning_rate": "1e-4"}})
    assert resolve({"model_name": "mlp", "dataset_dir": "d"}, path).learning_rate == 1e-4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"global": {"learnig_rate": 0.1}}, "unknown key 'learnig_rate'"),
        ({"global": {"patience": "many"}}, "patience must be of type int"),
        ({"global": {"scheduler": "linear"}}, "scheduler must be one of none, step, plateau, cosine"),
        ({"global": {"batch_size": 0}}, "batch_size must be >= 1"),
        ({"global": {"ema_decay": 1.0}}, "ema_decay must be < 1.0"),
        ({"global": {"input_dropout": 1.0}}, "input_dropout must be < 1.0"),
        ({"mlp": {"hidden_dim": 3}}, "unknown key 'hidden_dim' for model 'mlp'.*hidden_dims"),
        ({"mlp": {"hidden_dims": "64"}}, "hidden_dims must be of type list\\[int\\]"),
        ({"mlp": {"in_dim": 3}}, "in_dim is set from the dataset"),
        ({"mlpp": {"hidden_dims": [3]}}, "section 'mlpp' is neither 'global' nor a registered model"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        resolve({"model_name": "mlp", "dataset_dir": "d"}, _conf(tmp_path, data))


def test_missing_and_unknown_model_name():
    with pytest.raises(ConfigError, match="--model_name is required; known models: .*mlp"):
        resolve({"dataset_dir": "d"}, None)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        resolve({"model_name": "nope", "dataset_dir": "d"}, None)
    with pytest.raises(ConfigError, match="dataset_dir is required"):
        resolve({"model_name": "mlp"}, None)


def test_resolved_file_round_trips_and_repeats_the_run(tmp_path):
    cfg = resolve({"model_name": "mlp", "dataset_dir": "d", "seed": 3}, None)
    full = replace(cfg, model=model_hparams(cfg, in_dim=2, out_dim=1, kind=NODE))
    (tmp_path / "config.yaml").write_text(dump(full))
    again = resolve({}, None, config=str(tmp_path / "config.yaml"))
    assert again == full
    assert again.model["in_dim"] == 2
    with pytest.raises(ConfigError, match="in_dim=2 in the configuration but the data gives 5"):
        model_hparams(again, in_dim=5, out_dim=1, kind=NODE)
    flags = resolve({"seed": 4}, None, config=str(tmp_path / "config.yaml"))
    assert flags.seed == 4  # flags still override


def test_resolved_file_layout_and_errors(tmp_path):
    cfg = resolve({"model_name": "mlp", "dataset_dir": "d"}, None)
    text = dump(replace(cfg, model=model_hparams(cfg, 2, 1, NODE)))
    data = yaml.safe_load(text)
    for key in ("model_name", "dataset_dir", "seed", "type_encoding", "node_fields"):
        assert key in data
    assert data["model"]["out_dim"] == 1
    (tmp_path / "bad.yaml").write_text(text.replace("seed: 0", "seed: zero"))
    with pytest.raises(ConfigError, match="seed must be of type int"):
        load_resolved(tmp_path / "bad.yaml")


# config.yaml of a graph run as train.py wrote it before the configuration was typed (plus the
# fine-tuning keys init_from, init_sha256 and freeze, added since).
WRITTEN = """\
model_name: mlp
recipe: null
dataset_dir: runs/ds
seed: 3
device: -1
batch_size: 1
max_epoch: 1000
eval_interval: 1
patience: 100
max_time: 0.0
max_cpu_time: 0.0
learning_rate: 0.001
weight_decay: 0.0
amsgrad: false
grad_clip: 0.0
scheduler: none
lr_step_size: 100
lr_gamma: 0.5
lr_patience: 10
min_lr: 0.0
warmup_epochs: 0
ema_decay: 0.0
train_eval_graphs: 0
baseline: none
input_dropout: 0.0
loss: mse
selection_metric: pearson
task: graph
target: null
readout:
  op: sum
  hidden_dim: 0
  head_dims: []
  use_mask: false
init_from: null
init_sha256: null
freeze: false
augment: none
type_encoding: onehot
node_fields: [cn]
num_exp: 1
num_workers: 0
flush_denormal: true
reuse_freed_memory: false
save_results: true
console_log: false
log_level: 20
model:
  in_dim: 3
  out_dim: 1
  hidden_dims: [64, 64]
"""

# ... and one written before recipes, budgets in CPU time, graph tasks and readouts existed.
WRITTEN_EARLIER = """\
model_name: mlp
dataset_dir: runs/ds
seed: 3
batch_size: 6
max_epoch: 200
learning_rate: 0.0001
type_encoding: onehot
node_fields: [cn]
model:
  in_dim: 3
  out_dim: 1
  hidden_dims: [16]
"""


def test_resolved_config_is_frozen():
    cfg = resolve({"model_name": "mlp", "dataset_dir": "d", "node_fields": ["cn"]}, None)
    with pytest.raises(FrozenInstanceError):
        cfg.learning_rate = 1.0
    with pytest.raises(TypeError):
        cfg.model["hidden_dims"] = [4]
    with pytest.raises(TypeError):
        cfg.readout["op"] = "sum"
    with pytest.raises(AttributeError):
        cfg.node_fields.append("descriptors")
    raised = replace(cfg, max_epoch=5000)  # how a resumed run raises its budget: a new object
    assert raised.max_epoch == 5000 and cfg.max_epoch == 1000


def test_config_yaml_of_earlier_runs_loads_and_is_written_back_unchanged(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(WRITTEN)
    cfg = load_resolved(path)
    assert cfg.task == "graph" and cfg.readout["op"] == "sum" and cfg.node_fields == ("cn",)
    assert cfg.model == {"in_dim": 3, "out_dim": 1, "hidden_dims": [64, 64]}
    assert dump(cfg) == WRITTEN  # the on-disk format is unchanged, byte for byte
    assert resolve({}, None, config=str(path)) == cfg  # --config repeats the run
    path.write_text(WRITTEN_EARLIER)
    old = load_resolved(path)
    assert (old.seed, old.batch_size, old.learning_rate, old.model["hidden_dims"]) == (3, 6, 1e-4, [16])
    assert old.task is None and old.readout == {} and old.max_cpu_time == 0.0  # missing keys: defaults
    assert model_hparams(old, 3, 1, NODE)["hidden_dims"] == [16]


def test_repository_train_conf_is_valid_for_every_model():
    from models.models import model_names

    for name in model_names():
        resolve({"model_name": name, "dataset_dir": "d"}, REPO / "train.conf.yaml")


def test_readout_merges_key_by_key_global_model_section_flag(tmp_path):
    import train

    path = _conf(
        tmp_path,
        {"global": {"readout": {"op": "sum", "hidden_dim": 8}}, "mlp": {"readout": {"hidden_dim": 16}}},
    )
    flags = vars(train.build_parser().parse_args(["--readout", "head_dims=[4, 4]", "use_mask=true"]))
    assert flags["readout"] == {"head_dims": [4, 4], "use_mask": True}
    cfg = resolve({"model_name": "mlp", "dataset_dir": "d", "readout": flags["readout"]}, path)
    assert cfg.readout == {"op": "sum", "hidden_dim": 16, "head_dims": [4, 4], "use_mask": True}
    assert readout_config(resolve({"model_name": "mlp", "dataset_dir": "d"}, None)) == {
        "op": "mean",
        "hidden_dim": 0,
        "head_dims": [],
        "use_mask": False,
    }


@pytest.mark.parametrize(
    ("readout", "message"),
    [
        ({"pool": "mean"}, "unknown readout key 'pool'; known: op, hidden_dim"),
        ({"op": "median"}, "readout.op must be one of mean, sum, max, attention"),
        ({"hidden_dim": -1}, "readout.hidden_dim must be >= 0"),
    ],
)
def test_bad_readout_names_the_key(tmp_path, readout, message):
    with pytest.raises(ConfigError, match=message):
        resolve({"model_name": "mlp", "dataset_dir": "d"}, _conf(tmp_path, {"global": {"readout": readout}}))


def test_cgcnn_pools_itself_in_a_graph_task_and_never_in_a_node_task(tmp_path):
    cfg = resolve({"model_name": "cgcnn", "dataset_dir": "d", "readout": {"op": "max"}}, None)
    assert model_hparams(cfg, 2, 1, kind=GRAPH)["pooling"] == "max"
    assert model_hparams(cfg, 2, 1, kind=NODE)["pooling"] == "none"
    pooled = resolve(
        {"model_name": "cgcnn", "dataset_dir": "d"}, _conf(tmp_path, {"cgcnn": {"pooling": "sum"}})
    )
    assert model_hparams(pooled, 2, 1, kind=GRAPH)["pooling"] == "sum"  # its section wins
    with pytest.raises(ConfigError, match="pooling 'sum' gives one value per graph but the task is node"):
        model_hparams(pooled, 2, 1, kind=NODE)


def test_a_recipe_sits_between_global_and_the_model_section(tmp_path):
    path = _conf(
        tmp_path,
        {
            "global": {"learning_rate": 0.01, "patience": 7, "max_epoch": 50},
            "recipes": {"fast": {"learning_rate": 0.003, "patience": 5, "warmup_epochs": 2}},
            "mlp": {"patience": 9},
        },
    )
    plain = resolve({"model_name": "mlp", "dataset_dir": "d"}, path)
    assert plain.recipe is None and plain.learning_rate == 0.01 and plain.warmup_epochs == 0
    cfg = resolve({"model_name": "mlp", "dataset_dir": "d", "recipe": "fast", "max_epoch": 3}, path)
    assert cfg.recipe == "fast"
    assert cfg.learning_rate == 0.003 and cfg.warmup_epochs == 2  # the recipe beats global
    assert cfg.patience == 9  # the model section beats the recipe
    assert cfg.max_epoch == 3  # a given flag beats everything
    chosen_globally = _conf(tmp_path, {"global": {"recipe": "fast"}, "recipes": {"fast": {"patience": 5}}})
    assert resolve({"model_name": "mlp", "dataset_dir": "d"}, chosen_globally).patience == 5


@pytest.mark.parametrize(
    ("data", "given", "message"),
    [
        ({"recipes": {"a": {"patience": 1}}}, {"recipe": "b"}, "recipe 'b' is not in .* \\(recipes: a\\)"),
        ({"recipes": {"a": {"patiense": 1}}}, {}, r"\[recipes.a\]: unknown key 'patiense'"),
        ({"recipes": {"a": {"recipe": "a"}}}, {}, "a recipe cannot name another recipe"),
        ({"recipes": {"a": {}}, "mlp": {"recipe": "a"}}, {}, "not in a model section"),
    ],
)
def test_bad_recipes_are_refused_naming_the_key(tmp_path, data, given, message):
    with pytest.raises(ConfigError, match=message):
        resolve({"model_name": "mlp", "dataset_dir": "d", **given}, _conf(tmp_path, data))


def test_the_shipped_recipes_resolve_for_every_model():
    from models.models import model_names

    data = yaml.safe_load((REPO / "train.conf.yaml").read_text())
    assert "cpu" in data["recipes"]
    for name in model_names():
        cfg = resolve({"model_name": name, "dataset_dir": "d", "recipe": "cpu"}, REPO / "train.conf.yaml")
        assert cfg.recipe == "cpu" and "descriptors" in cfg.node_fields
