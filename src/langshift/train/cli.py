"""`langshift train`: one flag per `TrainConfig` field; flags override `--config YAML`, which overrides
the paper's defaults."""

from __future__ import annotations

from pathlib import Path

import typer

from langshift.options import cli_command
from langshift.train.config import TrainConfig


@cli_command(TrainConfig)
def train(given: dict, config: Path = typer.Option(None, "--config", help="YAML with any of these options (flags win).")) -> None:
    """Train a model with CLO or a baseline on cross-lingual records."""
    from langshift.files import check_output_dir

    cfg = TrainConfig.load(config, given) if config else TrainConfig.parse(given, source="command line")
    check_output_dir(cfg.out, "out")
    from langshift.train.recipe import train as run_training

    out_dir = run_training(cfg)
    typer.echo(f"model written to {out_dir}")
