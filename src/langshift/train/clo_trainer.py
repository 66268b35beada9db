"""`CLOTrainer`: CLO and every baseline as a `transformers.Trainer`, in TRL's idiom (`DPOTrainer`).

    from langshift import CLOConfig, CLOTrainer, records_from
    trainer = CLOTrainer("smollm2", args=CLOConfig(output_dir="runs/clo", method="clo"),
                         train_dataset=records_from(ds, lang="sw"))
    trainer.train()
    trainer.save_model("runs/clo/model")

One trainer for every method (`args.method`: clo, sft, sft-eng, sft-tgt, dpo), because the methods differ
only in which sequences form a training unit and in their loss (objectives.py); `langshift train` builds
a CLOConfig and calls this class, so the command line and Python are one code path. Before
`Trainer.__init__` it does what a method needs and a generic Trainer cannot: records -> the method's
units, the reference pass (cached; none for reference-free losses), the trainable parameters, the
forward layout, and the micro-batching that turns `batch_size` records into per-device batches and
gradient accumulation.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from langshift import models
from langshift.files import InputError, cache_dir
from langshift.fingerprints import weights_fingerprint
from langshift.records import Record, records_from
from langshift.train.checkpoints import checkpoint_step, latest_complete_checkpoint, remove_torn_checkpoints
from langshift.train.clo_config import CLOConfig
from langshift.train.config import on_device
from langshift.train.encode import Encoder
from langshift.train.layout import forward_tokens
from langshift.train.logps import check_layout, install_logps_forward, plan_layout
from langshift.train.objectives import METHODS, PIPELINES, Hyper
from langshift.train.params import select_trainable, trainable_summary
from langshift.train.reference import ReferenceCache, reference_logps
from langshift.train.sharding import allow_fsdp_on_cpu, fsdp_requested, zero3_requested
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
    import random

    if len(records) < 2:
        return records, []
    n_val = int(val_size) if val_size >= 1 else max(1, round(len(records) * val_size))
    n_val = min(n_val, len(records) - 1)
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    val = set(order[:n_val])
    return [r for i, r in enumerate(records) if i not in val], [r for i, r in enumerate(records) if i in val]


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
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def micro_batching(args, world: int, tokens_per_record: float) -> tuple[int, int]:
    """(records per forward per process, gradient accumulation steps) for `args.batch_size` records per
    optimizer step: `micro_batch_size`, else the token budget (`micro_batch_tokens`) decides."""
    if args.batch_size % world:
        raise ValueError(f"batch_size {args.batch_size} does not split over {world} processes")
    records = args.micro_batch_size or pick_micro_batch(args.batch_size // world, tokens_per_record,
                                                        on_device(args, "micro_batch_tokens", device_kind()))
    grad_accum = max(1, args.batch_size // (records * world))
    if records * world * grad_accum != args.batch_size:
        raise ValueError(f"batch_size {args.batch_size} is not micro_batch_size {records} x "
                         f"{world} processes x gradient accumulation")
    return records, grad_accum


def hyper(args) -> Hyper:
    """The objective's hyper-parameters from the training options."""
    return Hyper(lam=args.lam, beta=args.beta, nll_on=args.nll, pref_loss=args.pref_loss, simpo_gamma=args.simpo_gamma,
                 nll_reduction=args.nll_reduction, cl_negatives=args.cl_negatives)


def resume_point(checkpoints: Path, metrics: Path, resume: bool | str | None, main: bool) -> Path | None:
    """The checkpoint training resumes from: `resume` as a path, the newest complete one under
    `checkpoints` for True, else None (step 0; also when True finds only torn checkpoints or none). The
    main process removes torn checkpoints and rewinds metrics.jsonl to the step training restarts from."""
    if isinstance(resume, (str, os.PathLike)):
        start = Path(resume)
    else:
        start = latest_complete_checkpoint(checkpoints) if resume else None
    if main:
        if resume is True:
            for path, why in remove_torn_checkpoints(checkpoints):
                print(f"[langshift] removed the incomplete checkpoint {path} ({why})")
            if start is None:
                print(f"[langshift] resume: no complete checkpoint in {checkpoints}; starting from step 0")
        if start is not None:
            print(f"[langshift] resuming from {start}")
        MetricsFile(metrics).rewind(checkpoint_step(start) if start else 0)
    return start


class CLOTrainer(LangshiftTrainer):
    """Train a causal LM with CLO or a baseline (`args.method`) on cross-lingual records.

    Args:
        model: a hub id, a local directory, a `.gguf` file, "smollm2" (the embedded default), or a loaded
            `PreTrainedModel` (then give `processing_class`).
        args: a `CLOConfig` (TrainingArguments + langshift's options; see `help(CLOConfig)`).
        train_dataset: the records: a list of `Record`s, a `datasets.Dataset` (or DatasetDict, or hub id, or
            path) with the record columns; other column names and TRL's conversational prompt/completion
            form go through `records_from(ds, lang=..., columns=...)` first.
        eval_dataset: validation records, as train_dataset. None: `args.val_size` of the training records
            are held out (seeded by `args.seed`), as `langshift train` does; []: no validation records.
        processing_class: the tokenizer (loaded with the model when `model` is a name).
        peft_config: a `peft.LoraConfig`: train LoRA adapters with it (instead of `args.trainable`).
        ref_model: a frozen reference model to keep in memory (TRL's two-model path). Default: reference
            log-probs from a cached no-grad pre-pass (`args.ref`, "precompute"), or none for SimPO/ORPO.
        callbacks: more `TrainerCallback`s (metrics.jsonl and progress are always there).
        lang: the target language(s) every record must have (checked; default: the records' own).

    After training, `trainer.facts` holds what `langshift train` records in config.yaml about the run
    (units, micro-batching, layout, trainable share, truncation, language counts).
    """

    def __init__(self, model, args: CLOConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, peft_config=None, ref_model=None, callbacks=None, *, lang=None):
        args = args if args is not None else CLOConfig(output_dir="trainer_output")
        if not isinstance(args, CLOConfig):
            raise TypeError(f"args must be a langshift CLOConfig, got {type(args).__name__}")
        if args.method not in METHODS:
            raise InputError("CLOConfig", f"{args.method!r} is a pipeline of {len(PIPELINES[args.method])} trainings "
                             f"({' then '.join(PIPELINES[args.method])}): run one CLOTrainer per stage, or "
                             "langshift.train.recipe.train", field="method")
        if train_dataset is None:
            raise InputError("CLOTrainer", "missing: the training records", field="train_dataset")
        if zero3_requested():
            raise InputError("accelerate config", "DeepSpeed ZeRO-3 is not supported yet: it partitions the weights "
                             "at load, and the reference pass, layout check and weight fingerprint need them whole "
                             "(configs/accelerate/deepspeed_zero3.yaml says what was tried). Shard with FSDP2: "
                             "--config_file configs/accelerate/fsdp.yaml", field="distributed_type")
        method = METHODS[args.method]
        progress = not args.disable_tqdm
        model, processing_class, base = self._load(model, processing_class, args)

        train_records = records_from(train_dataset, lang=lang, name="train_dataset")
        if eval_dataset is None:
            train_records, val_records = split_records(train_records, args.val_size, args.seed)
        else:
            empty = isinstance(eval_dataset, (list, tuple)) and not eval_dataset
            val_records = [] if empty else records_from(eval_dataset, lang=lang, name="eval_dataset")
        fmt = models.chat_format(processing_class)
        if fmt.template and not getattr(processing_class, "chat_template", None):
            # a base model's family turn format becomes its tokenizer's template, so the saved model, its
            # chat and its GGUF export ask it the way it was trained
            processing_class.chat_template = fmt.template
        encoder = Encoder(processing_class, fmt, args.max_length)
        train_units = build_units(train_records, encoder, method, args.cl_negatives)
        val_units = build_units(val_records, encoder, method, args.cl_negatives)

        world = int(os.environ.get("WORLD_SIZE", "1"))
        plan = plan_layout(model, on_device(args, "bin_tokens", device_kind()), check=False)  # what its attention implementation takes
        records_per_device, grad_accum = micro_batching(
            args, world, forward_tokens_per_record(train_units, plan, len(train_records)))
        per_device_units = records_per_device * method.units_per_record
        steps_per_epoch = -(-len(train_units) // (per_device_units * world * grad_accum))
        total = args.max_steps if args.max_steps > 0 else max(1, int(steps_per_epoch * args.num_train_epochs))
        args.per_device_train_batch_size = args.per_device_eval_batch_size = per_device_units
        args.gradient_accumulation_steps = grad_accum
        args.eval_steps = args.eval_steps if getattr(args, "eval_steps_given", False) else max(1, total // 10)
        args.save_steps = args.eval_steps  # a checkpoint at each validation: the best one is kept

        model = model.to(args.device)  # this process's device (the reference pass runs there too)
        plan = check_layout(model, plan)  # on the device: falls back, and says so, if the mask is not obeyed
        main = args.process_index == 0
        fingerprint = weights_fingerprint(model)  # once per stage: names the reference cache's entries too
        needs_ref = method.needs_ref(args.pref_loss)  # a reference-free loss: no pass, no cache, no second model
        if needs_ref and ref_model is None and args.ref == "precompute":
            # The node's main process creates and fills the cache; the others wait, then read it.
            with args.main_process_first(local=True, desc="reference log-probs"):
                cache = ReferenceCache(Path(args.cache_dir or cache_dir()) / "reference.sqlite")
                for units in (train_units, val_units):
                    attach_reference(units, lambda seqs: reference_logps(
                        model, seqs, cache, model_key=fingerprint, plan=plan, progress=progress and main))
        elif needs_ref and ref_model is None:
            ref_model = frozen_copy(model)
        elif needs_ref:
            ref_model = ref_model.to(args.device).eval().requires_grad_(False)

        if fsdp_requested() and (peft_config is not None or args.trainable == "lora"):
            raise InputError("CLOConfig", "LoRA under FSDP is not rehearsed in langshift (its adapters and the "
                             "frozen base would share shard groups): train attention-only or full under FSDP, "
                             "or LoRA under DDP", field="trainable")
        if peft_config is not None:
            from peft import get_peft_model

            trainable = f"lora (peft_config: r={getattr(peft_config, 'r', '?')})"
            model = get_peft_model(model, peft_config)
        else:
            trainable = args.trainable
            model = select_trainable(model, args.trainable, lora_r=args.lora_r, lora_alpha=args.lora_alpha)
        share = trainable_summary(model)
        if main:
            print(f"[langshift] {args.method}: training {share['trainable']:,} of {share['total']:,} parameters "
                  f"({100 * share['share']:.2f}%, {trainable}); {records_per_device} records per forward x "
                  f"{grad_accum} accumulated x {world} processes")

        self.metrics_path = Path(args.metrics_file or Path(args.output_dir) / "metrics.jsonl")
        if allow_fsdp_on_cpu() and main:
            print("[langshift] FSDP on CPU processes: accelerate would train DDP here; the model is sharded "
                  "with fully_shard over gloo (langshift.train.sharding)")
        super().__init__(
            model=model, args=args, train_dataset=UnitDataset(train_units),
            eval_dataset=UnitDataset(val_units or train_units[:1]), data_collator=UnitCollator(plan),
            processing_class=processing_class,
            callbacks=[MetricsFile(self.metrics_path), StepProgress(), *(callbacks or [])],
            method=method, hyper=hyper(args), plan=plan, ref_model=ref_model,
        )
        self._forward_depth = 0
        self.facts = {
            "method": args.method, "base_model": base, "base_fingerprint": fingerprint,
            "train_records": len(train_records), "val_records": len(val_records), "units": len(train_units),
            "processes": world, "distributed": self.accelerator.distributed_type.value,
            "micro_batch_size": records_per_device, "gradient_accumulation": grad_accum,
            "layout": {"share_prompts": plan.share, "bin_tokens": plan.bin_tokens, "mask": plan.mask,
                       **({"fallback": plan.why} if plan.why else {})},
            "trainable": share, "truncation": encoder.report.as_dict(), "chat_format": fmt.source,
            "languages": {"train": language_counts(train_records, method, args.cl_negatives),
                          "validation": language_counts(val_records, method, args.cl_negatives)},
        }

    @staticmethod
    def _load(model, processing_class, args):
        """(model, tokenizer, a name for the base model) from what the caller handed in."""
        if isinstance(model, (str, os.PathLike)):
            spec = models.resolve_model(str(model), args.gguf_file)
            tok = processing_class or models.load_tokenizer(spec, trust_remote_code=args.trust_remote_code)
            return models.load_model(spec, dtype=args.dtype, trust_remote_code=args.trust_remote_code), tok, str(spec)
        if processing_class is None:
            raise InputError("CLOTrainer", "a loaded model needs its tokenizer", field="processing_class")
        return model, processing_class, str(getattr(model, "name_or_path", "") or type(model).__name__)

    @contextmanager
    def _logps_forward(self):
        """The model answers per-sequence log-probs (logps.py) while the Trainer trains or evaluates it,
        and is an ordinary causal LM again afterwards (for `generate`, saving, the user's own code)."""
        restore = install_logps_forward(self.model, self.plan) if self._forward_depth == 0 else None
        self._forward_depth += 1
        try:
            yield
        finally:
            self._forward_depth -= 1
            if restore is not None:
                restore()

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """As `Trainer.train`. `resume_from_checkpoint=True` resumes from the newest *complete* checkpoint
        in output_dir (one torn by a kill while saving is removed) and cuts metrics.jsonl back to that
        step, so it reads as one run; None starts at step 0 with a new metrics.jsonl."""
        start = resume_point(Path(self.args.output_dir), self.metrics_path, resume_from_checkpoint,
                             self.is_world_process_zero())
        with self._logps_forward():
            return super().train(resume_from_checkpoint=str(start) if start else None, **kwargs)

    def evaluate(self, *args, **kwargs):
        with self._logps_forward():
            return super().evaluate(*args, **kwargs)


CLOTrainer.__doc__ += "\n\n" + CLOConfig.__doc__  # help(CLOTrainer) lists every option with its help
