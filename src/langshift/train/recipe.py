"""The training recipe: records -> units -> Trainer -> best checkpoint, for every method.

    train(TrainConfig(method="clo", model="smollm2", data="records.jsonl", lang="sw", out="runs/clo"))

The output directory holds the model (safetensors) and tokenizer, `config.yaml` (every option plus
what was derived: data hash, model fingerprint, trainable share, truncation counts, versions), and
`metrics.jsonl`. `sft+dpo` runs SFT into `out/stage-sft`, then DPO from it (policy and reference).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import yaml

from langshift import models
from langshift.card import write_training_card
from langshift.files import InputError, atomic_write_text, stable_hash
from langshift.records import Record, load_records
from langshift.train.clo_config import from_train_config
from langshift.train.clo_trainer import CLOTrainer, split_records
from langshift.train.config import TrainConfig
from langshift.train.objectives import PIPELINES


def load_splits(cfg: TrainConfig) -> tuple[list[Record], list[Record]]:
    """Train/validation records. The split the data carries is kept: `meta.split` of a records.jsonl
    that `langshift data` built, or a datasets dir's validation split; otherwise `val_size` holds some
    out. `limit` cuts train only, per language.

    Several languages (a multilingual run): one source per --lang code, each split on its own, or one
    source holding them all, split as one; the union trains one model. The same `seed` splits
    every language, so records that share an English source id go to the same side when the data
    marks the split (as `langshift data` does, by prompt group)."""
    sources = cfg.data_sources
    if len(sources) > 1:  # one source per language, in --lang's order
        parts = [_source_splits(cfg, source, lang) for source, lang in zip(sources, cfg.langs, strict=True)]
    else:
        train, val = _source_splits(cfg, sources[0], cfg.langs or None)
        langs = list(dict.fromkeys(r.lang for r in train))
        if len(langs) > 1 and not cfg.multilingual:
            raise InputError(sources[0], f"records in several languages ({', '.join(langs)}): pass --lang with "
                             "the one to train, or a list of them (--lang sw,de) for one multilingual model", field="lang")
        parts = [([r for r in train if r.lang == lang], [r for r in val if r.lang == lang]) for lang in langs]
    for (train, _), lang in zip(parts, cfg.langs, strict=False):
        if not train:
            raise InputError(",".join(sources), f"no training records in {lang!r}", field="lang")
    if cfg.limit:
        parts = [(train[: cfg.limit], val) for train, val in parts]
    return [r for train, _ in parts for r in train], [r for _, val in parts for r in val]


def _source_splits(cfg: TrainConfig, source: str, lang) -> tuple[list[Record], list[Record]]:
    """One source's train/validation records (see `load_splits`)."""
    train = load_records(source, lang)
    val: list[Record] = []
    marked = {r.meta.get("split") for r in train}
    if "validation" in marked and marked <= {"train", "validation"}:
        train, val = ([r for r in train if r.meta["split"] == split] for split in ("train", "validation"))
    elif Path(source).is_dir() and not (Path(source) / "records.jsonl").is_file():
        try:
            val = load_records(source, lang, split="validation")
        except InputError:  # no validation split
            val = []
    if not val:
        train, val = split_records(train, cfg.val_size, cfg.seed)
    return train, val


def train_stage(cfg: TrainConfig, method_name: str, model_path: str, gguf_file: str | None, out: Path,
                train_records: list[Record], val_records: list[Record], callbacks=()) -> dict:
    """Train one method from `model_path` into `out` through `CLOTrainer` (the Python API's own path);
    returns what config.yaml records about it."""
    args = from_train_config(cfg, method=method_name, gguf_file=gguf_file, output_dir=str(out / "checkpoints"),
                             metrics_file=str(out / "metrics.jsonl"))
    trainer = CLOTrainer(model_path, args, train_dataset=train_records, eval_dataset=val_records,
                         callbacks=list(callbacks))
    trainer.train(resume_from_checkpoint=True if cfg.resume else None)
    # A sharded model's weights are gathered whole by every rank together (a collective), then written by
    # the first: a rank that skipped the gather would leave the others waiting on it.
    full = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
    if full:  # gathered copies no longer share storage: drop the tied ones, as an unsharded save does
        for tied in getattr(trainer.model, "all_tied_weights_keys", None) or {}:
            full.pop(tied, None)
    if trainer.is_world_process_zero():
        final = trainer.model
        if cfg.trainable == "lora":
            final.save_pretrained(out / "adapter")
            final = final.merge_and_unload()
        models.save(final, trainer.processing_class, out, state_dict=full)
    return {**trainer.facts, "steps": trainer.state.global_step, "best_checkpoint": trainer.state.best_model_checkpoint,
            "best_eval_loss": trainer.state.best_metric}


def train(cfg: TrainConfig, callbacks=()) -> Path:
    """Run a method (or the sft+dpo pipeline) end to end; returns the output directory.
    `callbacks`: extra `transformers.TrainerCallback`s (progress hooks, early stopping, ...)."""
    import transformers

    cfg.check_runnable()
    train_records, val_records = load_splits(cfg)  # bad data fails here, before any model loads
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    main = int(os.environ.get("RANK", "0")) == 0
    if not cfg.resume and main:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    stages, model_path, gguf_file = [], cfg.model, cfg.gguf_file
    pipeline = PIPELINES[cfg.method]
    for i, name in enumerate(pipeline):
        last = i == len(pipeline) - 1
        stage_out = out if last else out / f"stage-{name}"
        stages.append(train_stage(cfg, name, model_path, gguf_file, stage_out, train_records, val_records, callbacks))
        model_path, gguf_file = str(stage_out), None
    record = {
        "config": cfg.to_dict(),
        "data_hash": stable_hash([r.to_dict() for r in train_records], [r.id for r in val_records]),
        "stages": stages,
        "versions": {"torch": str(torch.__version__), "transformers": str(transformers.__version__)},
    }
    if main:
        atomic_write_text(out / "config.yaml", yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
        write_training_card(out)  # README.md model card; evaluation results are added later
    return out
