"""Train a model of models/ on a dataset written by construct_graph.py.

Example (the SymGNN reference invocation)::

    python train.py --model_name=symgnn --dataset_dir=DIR --output_dir=./outputs/symgnn \
        --device=0 --console_log --log_level=10 --learning_rate=0.0001 --patience=100 \
        --max_epoch=20000 --eval_interval=10

Settings: built-in defaults < `global` of train.conf.yaml < the model's section < flags given.
Several processes: ``torchrun --nproc_per_node=N train.py ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glassgnn import distributed, outputs
from glassgnn.checkpoint import CheckpointError
from glassgnn.config import ConfigError, add_arguments, resolve
from glassgnn.devices import DeviceError, configure_cpu
from glassgnn.experiments import load_dataset, run_experiments
from glassgnn.fileio import OutputExistsError
from glassgnn.readers import ReaderError

CONTROL = ("model_config_path", "config", "output_dir", "resume", "overwrite")


def _default_conf() -> Path:
    local = Path("train.conf.yaml")
    return local if local.is_file() else Path(__file__).resolve().parent / "train.conf.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Precedence: built-in defaults < `global` section < model section < flags given here.",
    )
    parser.add_argument(
        "--model_config_path",
        default="train.conf.yaml",
        help="YAML with `global` and per-model sections (default: ./train.conf.yaml, "
        "else the one next to train.py; ignored with --config)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="resolved config.yaml of an earlier run: repeat that run, flags still override (default: none)",
    )
    parser.add_argument("--output_dir", default=None, help="run directory (default: ./outputs/<model_name>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run(s) in --output_dir from last.pt and config.yaml: an unfinished run, or a "
        "finished one given a larger --max_epoch, --max_time, --max_cpu_time or --patience (default: off)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --output_dir (default: off, refuse)",
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    control = {key: given.pop(key) for key in CONTROL}
    try:
        config = control["config"]
        if control["resume"] and config is None:
            if control["output_dir"] is None:
                parser.error("--resume needs --output_dir (the run to continue)")
            config = str(Path(control["output_dir"]) / outputs.CONFIG)
        conf = control["model_config_path"] or _default_conf()
        cfg = resolve(given, conf, config)
        output_dir = control["output_dir"] or str(Path("outputs") / cfg.model_name)
        configure_cpu(cfg)  # before any parallel work: torch's threads inherit the float mode
        graphs, manifest = load_dataset(cfg.dataset_dir)
        info = distributed.init(cfg.device)
        try:
            return run_experiments(
                cfg, graphs, manifest, output_dir, control["resume"], control["overwrite"], info
            )
        except RuntimeError as err:
            lost = distributed.lost_peer(err, info)
            if lost is None:
                raise
            parser.exit(1, f"train.py: error: {lost}\n")
        finally:
            distributed.shutdown(info)
    except (
        ConfigError,
        OutputExistsError,
        FileNotFoundError,
        DeviceError,
        CheckpointError,
        ReaderError,
    ) as err:
        parser.exit(2, f"train.py: error: {err}\n")
    except KeyboardInterrupt:
        print("train.py: interrupted; continue with --resume (same --output_dir)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
