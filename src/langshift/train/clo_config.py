"""`CLOConfig`: `transformers.TrainingArguments` plus langshift's training options, in TRL's idiom
(`DPOConfig`). Every langshift option is taken from its one declaration in `TrainConfig` (type, default,
help, range), so `CLOConfig`, `langshift train`'s flags and a run config's `train:` section cannot drift:

  * langshift's own options (method, lam, beta, pref_loss, ...) become fields of CLOConfig;
  * options that TrainingArguments already has (lr -> learning_rate, epochs -> num_train_epochs, ...)
    stay TrainingArguments fields, with langshift's (the paper's) defaults and help;
  * what names the model or the data is not an option here but an argument of `CLOTrainer`.

Values are checked by TrainConfig's rules when the config is made: `CLOConfig(beta=-1)` raises
`CLOConfig: field 'beta': Input should be greater than 0, got -1`.
"""

from __future__ import annotations

import dataclasses
import typing

from transformers import TrainingArguments

from langshift.files import InputError
from langshift.train.config import TrainConfig

# TrainConfig's options that CLOConfig adds as fields of its own.
OWN = ("method", "lam", "beta", "nll", "nll_reduction", "pref_loss", "simpo_gamma", "cl_negatives", "trainable",
       "lora_r", "lora_alpha", "max_length", "batch_size", "micro_batch_size", "micro_batch_tokens", "bin_tokens",
       "val_size", "min_lr", "warmup_ratio", "ref", "cache_dir", "dtype", "gguf_file", "trust_remote_code")
# TrainConfig's options that TrainingArguments already holds, under its own name.
ON_TRAINING_ARGUMENTS = {
    "lr": "learning_rate", "epochs": "num_train_epochs", "max_steps": "max_steps", "weight_decay": "weight_decay",
    "logging_steps": "logging_steps", "save_total_limit": "save_total_limit", "seed": "seed",
    "eval_steps": "eval_steps", "report_to": "report_to", "activation_checkpointing": "activation_checkpointing",
}
# TrainConfig's options that are not options of a trainer, and where they go instead.
ELSEWHERE = {
    "model": "CLOTrainer(model=...)", "gguf_file": "CLOConfig.gguf_file", "data": "CLOTrainer(train_dataset=...)",
    "lang": "records_from(..., lang=...)", "multilingual": "the records' languages", "limit": "the dataset you pass",
    "out": "output_dir (checkpoints) and save_model(DIR)", "resume": "trainer.train(resume_from_checkpoint=True)",
    "progress": "disable_tqdm",
}
# TrainingArguments fields whose default langshift changes, and why.
LANGSHIFT_DEFAULTS = {
    "lr_scheduler_type": "cosine_with_min_lr",  # the paper: cosine down to min_lr
    "logging_first_step": True,  # step 1's line in metrics.jsonl: the objective before training moved it
    "eval_strategy": "steps",  # validation loss every eval_steps, and ...
    "save_strategy": "steps",
    "load_best_model_at_end": True,  # ... the checkpoint with the lowest one kept (the paper, App. B)
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
    "remove_unused_columns": False,  # a batch is a laid-out forward, not model kwargs
    "ddp_find_unused_parameters": False,  # every trainable tensor gets a gradient in every method
    "dataloader_num_workers": 0,
}


def _default(info) -> dataclasses.Field:
    if info.default_factory is not None:
        return dataclasses.field(default_factory=info.default_factory, metadata={"help": info.description})
    value = info.default
    if isinstance(value, list):  # a dataclass default must not be shared between instances
        return dataclasses.field(default_factory=lambda v=value: list(v), metadata={"help": info.description})
    return dataclasses.field(default=value, metadata={"help": info.description})


def _fields() -> list[tuple]:
    declared = TrainConfig.model_fields
    hints = typing.get_type_hints(TrainConfig, include_extras=False)
    ta = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    out = [(name, hints[name], _default(declared[name])) for name in OWN]
    for ours, theirs in ON_TRAINING_ARGUMENTS.items():  # their field and type, our default and help
        out.append((theirs, ta[theirs].type, _default(declared[ours])))
    for theirs, value in LANGSHIFT_DEFAULTS.items():
        field = ta[theirs]
        out.append((theirs, field.type, dataclasses.field(default=value, metadata=dict(field.metadata))))
    out.append(("metrics_file", str | None, dataclasses.field(default=None, metadata={
        "help": "Where metrics.jsonl goes (default: output_dir/metrics.jsonl): a line per logging step."})))
    return out


def _post_init(self) -> None:
    values = {name: getattr(self, name) for name in OWN}
    values |= {ours: getattr(self, theirs) for ours, theirs in ON_TRAINING_ARGUMENTS.items()}
    if isinstance(values["report_to"], str):
        values["report_to"] = [values["report_to"]]
    try:
        TrainConfig.parse(values, source="CLOConfig")
    except InputError as e:  # name the field as CLOConfig spells it
        field = ON_TRAINING_ARGUMENTS.get(e.field, e.field) if e.field else None
        raise InputError("CLOConfig", e.message, field=field) from None
    if self.lr_scheduler_type == "cosine_with_min_lr" and not self.lr_scheduler_kwargs:
        self.lr_scheduler_kwargs = {"min_lr": self.min_lr}
    if self.warmup_ratio and not self.warmup_steps:
        self.warmup_steps = self.warmup_ratio  # transformers 5: a value < 1 is a share of all steps
    if self.activation_checkpointing and not getattr(self, "activation_checkpointing_kwargs", None):
        self.activation_checkpointing_kwargs = {"use_reentrant": False}
    import torch

    if not torch.cuda.is_available():
        # Without CUDA, accelerate sets up torch.distributed (gloo, under torchrun or `accelerate launch`)
        # only for use_cpu; otherwise each process would train alone.
        self.use_cpu = True
    self.eval_steps_given = self.eval_steps is not None  # TrainingArguments fills it from logging_steps
    if self.eval_steps_given:
        self.save_steps = self.eval_steps  # a checkpoint at each validation (the best one is kept), as CLOTrainer sets
    if self.data_seed is None:
        self.data_seed = self.seed
    if self.run_name is None:
        self.run_name = f"langshift-{self.method}"
    TrainingArguments.__post_init__(self)


def _doc(fields: list[tuple]) -> str:
    lines = [__doc__.split("\n\n")[0].strip(), "",
             "Derived, not set: per_device_train_batch_size and gradient_accumulation_steps come from `batch_size`",
             "(records per optimizer step, all processes together) and the token budget (`micro_batch_tokens`);",
             "eval_steps unset means about 10 validations per run.", "", "langshift's fields:"]
    for name, _, field in fields:
        lines.append(f"    {name} ({_default_text(field)}): {field.metadata.get('help', '')}")
    lines += ["", "Elsewhere: " + "; ".join(f"{k} -> {v}" for k, v in ELSEWHERE.items() if k != "gguf_file")]
    return "\n".join(lines)


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return f"default {field.default!r}"
    return f"default {field.default_factory()!r}"


_FIELDS = _fields()
CLOConfig = dataclasses.make_dataclass(
    "CLOConfig", _FIELDS, bases=(TrainingArguments,),
    namespace={"__post_init__": _post_init, "__doc__": _doc(_FIELDS), "__module__": __name__},
)


def from_train_config(cfg: TrainConfig, *, method: str | None = None, gguf_file: str | None = None, **training_args):
    """The CLOConfig of a TrainConfig (what `langshift train` and a run's train stage build), for one
    method of its pipeline; `training_args` sets TrainingArguments fields (output_dir, metrics_file, ...)."""
    values = {name: getattr(cfg, name) for name in OWN}
    values |= {theirs: getattr(cfg, ours) for ours, theirs in ON_TRAINING_ARGUMENTS.items()}
    values |= {"method": method or cfg.method, "gguf_file": gguf_file, "disable_tqdm": not cfg.progress}
    return CLOConfig(**(values | training_args))
