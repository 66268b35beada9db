"""`langshift train`: options override `--config YAML`, which overrides the paper's defaults."""

from __future__ import annotations

from pathlib import Path

import typer

from langshift.cli_support import user_errors
from langshift.train.config import TrainConfig


@user_errors
def train(
    method: str = typer.Option(None, help="clo | sft | sft-eng | sft-tgt | dpo | sft+dpo"),
    model: str = typer.Option(None, help="Hub id, local dir, .gguf file, or 'smollm2' (embedded default)."),
    data: str = typer.Option(None, help="Records JSONL, datasets dir, or hub dataset name."),
    lang: str = typer.Option(None, help="Target language (sw, swh, sw-KE, ...)."),
    out: str = typer.Option(None, help="Output directory."),
    gguf_file: str = typer.Option(None, "--gguf-file", help="GGUF file inside --model (dequantized on load)."),
    lam: float = typer.Option(None, "--lambda", help="Weight of the NLL term (paper: 0.5)."),
    beta: float = typer.Option(None, help="DPO/CLO temperature (paper: 0.1)."),
    nll: str = typer.Option(None, help="NLL on the 'target' language only (paper) or 'both'."),
    trainable: str = typer.Option(None, help="attention (paper) | full | lora"),
    lr: float = typer.Option(None, help="Peak learning rate (paper: 5e-5, cosine to 1.1e-6)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Records per optimizer step (paper: 8)."),
    micro_batch_size: int = typer.Option(None, "--micro-batch-size", help="Records per forward; the rest accumulates (default: from --micro-batch-tokens)."),
    micro_batch_tokens: int = typer.Option(None, "--micro-batch-tokens", help="Token budget of one forward (default 4096)."),
    activation_checkpointing: bool = typer.Option(None, "--activation-checkpointing/--no-activation-checkpointing", help="Recompute activations in backward: less memory, more time."),
    max_steps: int = typer.Option(None, "--max-steps"),
    max_length: int = typer.Option(None, "--max-length", help="Tokens per sequence (paper: 3000)."),
    limit: int = typer.Option(None, help="Train on the first N records only."),
    seed: int = typer.Option(None),
    ref: str = typer.Option(None, help="precompute (cached pre-pass) | on-the-fly (second model in memory)"),
    resume: bool = typer.Option(None, "--resume/--no-resume", help="Continue from the last checkpoint in --out."),
    report_to: str = typer.Option(None, "--report-to", help="none | tensorboard | wandb (comma-separated)."),
    trust_remote_code: bool = typer.Option(None, "--trust-remote-code/--no-trust-remote-code"),
    config: Path = typer.Option(None, "--config", help="YAML with any of these options (CLI wins)."),
) -> None:
    """Train a model with CLO or a baseline on cross-lingual records."""
    given = {k: v for k, v in locals().items() if v is not None and k != "config"}
    if "report_to" in given:
        given["report_to"] = [s.strip() for s in given["report_to"].split(",")]
    cfg = TrainConfig.load(config, given) if config else TrainConfig.from_dict(given, source="command line")
    from langshift.train.recipe import train as run_training

    out_dir = run_training(cfg)
    typer.echo(f"model written to {out_dir}")
