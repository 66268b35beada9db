"""The training recipe: records -> units -> Trainer -> best checkpoint, for every method.

    train(TrainConfig(method="clo", model="smollm2", data="records.jsonl", lang="sw", out="runs/clo"))

The output directory holds the model (safetensors) and tokenizer, `config.yaml` (every option plus
what was derived: data hash, model fingerprint, trainable share, truncation counts, versions), and
`metrics.jsonl`. `sft+dpo` runs SFT into `out/stage-sft`, then DPO from it (policy and reference).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch
import yaml

from langshift import models
from langshift.card import write_training_card
from langshift.files import InputError, atomic_write_text, stable_hash
from langshift.fingerprints import weights_fingerprint
from langshift.records import Record, load_records
from langshift.train.checkpoints import checkpoint_step, latest_complete_checkpoint, remove_torn_checkpoints
from langshift.train.config import TrainConfig
from langshift.train.encode import Encoder
from langshift.train.layout import forward_tokens
from langshift.train.logps import check_layout, install_logps_forward, plan_layout
from langshift.train.objectives import METHODS, PIPELINES, Hyper
from langshift.train.params import select_trainable, trainable_summary
from langshift.train.reference import ReferenceCache, reference_logps
from langshift.train.trainer import (
    LangshiftTrainer,
    MetricsFile,
    StepProgress,
    UnitCollator,
    UnitDataset,
    attach_reference,
    build_units,
    frozen_copy,
    language_counts,
)


def split_records(records: list[Record], val_size: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Seeded hold-out; `val_size` < 1 is a fraction, >= 1 a count; at least one record each side."""
    if len(records) < 2:
        return records, []
    n_val = int(val_size) if val_size >= 1 else max(1, round(len(records) * val_size))
    n_val = min(n_val, len(records) - 1)
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    val = set(order[:n_val])
    return [r for i, r in enumerate(records) if i not in val], [r for i, r in enumerate(records) if i in val]


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


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def pick_micro_batch(records_per_process: int, tokens_per_record: float, token_budget: int) -> int:
    """Records per forward: the largest divisor of `records_per_process` whose tokens fit the budget
    (at least 1). Activation memory grows with the tokens of one forward; accumulation keeps the step."""
    fits = [d for d in range(1, records_per_process + 1)
            if records_per_process % d == 0 and d * tokens_per_record <= token_budget]
    return max(fits, default=1)


def forward_tokens_per_record(units, plan, n_records: int) -> float:
    """Tokens the forward runs per record under `plan` (a prompt shared by its responses counts once)."""
    return sum(forward_tokens(u.seqs, plan) for u in units) / max(1, n_records)


def device_kind() -> str:
    """"gpu" where training runs on CUDA devices, else "cpu": the key of the device-dependent defaults."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def micro_batching(cfg: TrainConfig, world: int, tokens_per_record: float) -> tuple[int, int]:
    """(records per forward per process, gradient accumulation steps) for `cfg.batch_size` records per
    optimizer step: `micro_batch_size`, else the token budget (`micro_batch_tokens`) decides."""
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} does not split over {world} processes")
    records = cfg.micro_batch_size or pick_micro_batch(cfg.batch_size // world, tokens_per_record,
                                                       cfg.on_device("micro_batch_tokens", device_kind()))
    grad_accum = max(1, cfg.batch_size // (records * world))
    if records * world * grad_accum != cfg.batch_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not micro_batch_size {records} x "
                         f"{world} processes x gradient accumulation")
    return records, grad_accum


def _training_args(cfg: TrainConfig, method_name: str, out: Path, per_device_units: int, grad_accum: int,
                   steps_per_epoch: int):
    from transformers import TrainingArguments

    total = cfg.max_steps if cfg.max_steps > 0 else max(1, int(steps_per_epoch * cfg.epochs))
    eval_steps = cfg.eval_steps or max(1, total // 10)
    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=per_device_units,
        per_device_eval_batch_size=per_device_units,
        gradient_accumulation_steps=grad_accum,
        activation_checkpointing=cfg.activation_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": cfg.min_lr},
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a value < 1 is a fraction of all steps
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=cfg.report_to,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trainable tensor gets a gradient in every method
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not cfg.progress,
        run_name=f"langshift-{method_name}",
    )


def resume_point(out: Path, resume: bool, main: bool) -> Path | None:
    """The checkpoint a stage resumes from: the newest complete one under out/checkpoints, or None
    (start at step 0, also when `resume` finds only torn checkpoints or none). The main process removes
    torn checkpoints and rewinds metrics.jsonl to the step training restarts from."""
    start = latest_complete_checkpoint(out / "checkpoints") if resume else None
    if main:
        if resume:
            for path, why in remove_torn_checkpoints(out / "checkpoints"):
                print(f"[langshift] removed the incomplete checkpoint {path} ({why})")
            if start is None:
                print(f"[langshift] resume: no complete checkpoint in {out / 'checkpoints'}; starting from step 0")
            else:
                print(f"[langshift] resuming from {start}")
        MetricsFile(out / "metrics.jsonl").rewind(checkpoint_step(start) if start else 0)
    return start


def hyper(cfg: TrainConfig) -> Hyper:
    """The objective's hyper-parameters from the training options."""
    return Hyper(lam=cfg.lam, beta=cfg.beta, nll_on=cfg.nll, pref_loss=cfg.pref_loss, simpo_gamma=cfg.simpo_gamma,
                 nll_reduction=cfg.nll_reduction, cl_negatives=cfg.cl_negatives)


def train_stage(cfg: TrainConfig, method_name: str, model_path: str, gguf_file: str | None, out: Path,
                train_records: list[Record], val_records: list[Record], callbacks=()) -> dict:
    """Train one method from `model_path` into `out`; returns what config.yaml records about it."""
    method = METHODS[method_name]
    spec = models.resolve_model(model_path, gguf_file)
    tokenizer = models.load_tokenizer(spec, trust_remote_code=cfg.trust_remote_code)
    model = models.load_model(spec, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    encoder = Encoder(tokenizer, models.chat_format(tokenizer), cfg.max_length)
    train_units = build_units(train_records, encoder, method, cfg.cl_negatives)
    val_units = build_units(val_records, encoder, method, cfg.cl_negatives)

    world = _world_size()
    plan = plan_layout(model, cfg.on_device("bin_tokens", device_kind()), check=False)  # what its attention implementation takes
    records_per_device, grad_accum = micro_batching(cfg, world, forward_tokens_per_record(train_units, plan, len(train_records)))
    per_device_units = records_per_device * method.units_per_record
    steps_per_epoch = -(-len(train_units) // (per_device_units * world * grad_accum))
    args = _training_args(cfg, method_name, out, per_device_units, grad_accum, steps_per_epoch)
    model = model.to(args.device)  # this process's device (the reference pass runs there too)
    plan = check_layout(model, plan)  # on the device: falls back, and says so, if the mask is not obeyed
    main = args.process_index == 0

    ref_model = None
    fingerprint = weights_fingerprint(model)  # once per stage: names the reference cache's entries too
    needs_ref = method.needs_ref(cfg.pref_loss)  # a reference-free loss: no pass, no cache, no second model
    if needs_ref and cfg.ref == "precompute":
        # The node's main process creates and fills the cache; the others wait, then read it.
        with args.main_process_first(local=True, desc="reference log-probs"):
            cache = ReferenceCache(Path(cfg.cache_dir or models.cache_dir()) / "reference.sqlite")
            for units in (train_units, val_units):
                attach_reference(units, lambda seqs: reference_logps(
                    model, seqs, cache, model_key=fingerprint, plan=plan, progress=cfg.progress and main))
    elif needs_ref:
        ref_model = frozen_copy(model)

    model = select_trainable(model, cfg.trainable, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha)
    share = trainable_summary(model)
    if main:
        print(f"[langshift] {method_name}: training {share['trainable']:,} of {share['total']:,} parameters "
              f"({100 * share['share']:.2f}%, {cfg.trainable}); {records_per_device} records per forward x "
              f"{grad_accum} accumulated x {world} processes")

    restore_forward = install_logps_forward(model, plan)
    trainer = LangshiftTrainer(
        model=model, args=args, train_dataset=UnitDataset(train_units), eval_dataset=UnitDataset(val_units or train_units[:1]),
        data_collator=UnitCollator(plan), processing_class=tokenizer,
        callbacks=[MetricsFile(out / "metrics.jsonl"), StepProgress(), *callbacks], method=method,
        hyper=hyper(cfg), plan=plan, ref_model=ref_model,
    )
    start = resume_point(out, cfg.resume, main)
    trainer.train(resume_from_checkpoint=str(start) if start else None)
    restore_forward()

    if trainer.is_world_process_zero():
        final = trainer.model
        if cfg.trainable == "lora":
            final.save_pretrained(out / "adapter")
            final = final.merge_and_unload()
        models.save(final, tokenizer, out)
    return {
        "method": method_name, "base_model": str(spec), "base_fingerprint": fingerprint,
        "train_records": len(train_records), "val_records": len(val_records), "units": len(train_units),
        "processes": world, "micro_batch_size": records_per_device, "gradient_accumulation": grad_accum,
        "layout": {"share_prompts": plan.share, "bin_tokens": plan.bin_tokens, "mask": plan.mask,
                   **({"fallback": plan.why} if plan.why else {})},
        "steps": trainer.state.global_step, "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_eval_loss": trainer.state.best_metric, "trainable": share,
        "truncation": encoder.report.as_dict(),
        "languages": {"train": language_counts(train_records, method, cfg.cl_negatives),
                      "validation": language_counts(val_records, method, cfg.cl_negatives)},
    }


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
