"""Training options, declared once; defaults = the paper's Appendix B hyper-parameters.

The same declarations give `langshift train`'s flags, the `train:` section of a run config and the
checks on both (types, ranges, choices), so a value is wrong in the same words wherever it comes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from langshift.files import InputError
from langshift.languages import canonical_code, canonical_code_list
from langshift.model_ref import ModelRef
from langshift.options import Options, read_yaml
from langshift.train.objectives import METHODS, NLL_REDUCTIONS, PIPELINES
from langshift.train.params import MODES
from langshift.train.preference import PREF_LOSSES

MethodName = Literal[tuple(PIPELINES)]  # type: ignore[valid-type]
PrefLossName = Literal[tuple(PREF_LOSSES)]  # type: ignore[valid-type]
NllReduction = Literal[tuple(NLL_REDUCTIONS)]  # type: ignore[valid-type]
LangCode = Annotated[str, AfterValidator(canonical_code)]
LangCodes = Annotated[str, AfterValidator(canonical_code_list)]
CL_NEGATIVES = ("english", "all")


# Defaults that depend on where training runs, measured with bench/train_step.py (README, "How the
# engine is built"). On the CPU small forwards are faster per token (their activations stay in cache) and a
# packed call's dense attention mask is cheap at ~1k tokens; a GPU wants fewer, larger calls.
DEVICE_DEFAULTS: dict[str, dict[str, int]] = {
    "cpu": {"micro_batch_tokens": 1024, "bin_tokens": 512},
    "gpu": {"micro_batch_tokens": 4096, "bin_tokens": 4096},
}


def on_device(options, name: str, device_kind: str) -> int:
    """Option `name` of `options` (a TrainConfig or CLOConfig) as set, else its default for
    `device_kind` ("cpu" or "gpu": DEVICE_DEFAULTS)."""
    value = getattr(options, name)
    return DEVICE_DEFAULTS[device_kind][name] if value is None else value


class TrainConfig(Options):
    method: MethodName = Field("clo", description="Training method")
    model: ModelRef = Field("smollm2", description="Hub id, local dir, .gguf file, or 'smollm2' (embedded default).")
    data: str = Field("", description="Records JSONL, datasets dir, or hub dataset name; with several languages, one "
                      "source per language in --lang's order (comma-separated), or one source holding them all.")
    lang: LangCodes | None = Field(None, description="Target language (sw, swh, sw-KE, ...), or several (sw,de: one "
                                   "multilingual model); checked against the records.")
    multilingual: bool = Field(False, description="Train one model on the union of several target languages' records "
                               "(set by a --lang list; with one --data source and no --lang, every language in it).")
    cl_negatives: Literal[CL_NEGATIVES] = Field("english", description="What a target prompt x_t rejects: 'english' "  # type: ignore[valid-type]
                                                "(y_en, the paper) or 'all' (also the other targets' replies to the same "
                                                "English source; multilingual CLO).")
    out: str = Field("runs/train", description="Output directory.")
    gguf_file: str | None = Field(None, description="GGUF file inside --model (dequantized on load).")
    # objective (paper: lambda 0.5, beta 0.1, NLL on the target language only)
    lam: float = Field(0.5, ge=0, le=1, alias="lambda", description="Weight of the NLL term (paper: 0.5).",
                       json_schema_extra={"flag": "--lambda"})
    beta: float = Field(0.1, gt=0, description="Temperature of the pairwise loss (paper: 0.1); ORPO's lambda, SimPO's beta.")
    nll: Literal["target", "both"] = Field("target", description="NLL on the 'target' language only (paper) or 'both'.")
    nll_reduction: NllReduction = Field("token", description="NLL averaged per 'token' (TRL's CPO/ORPO) or, the paper's Eq. 9 literally, "
                                        "a mean over 'sequence's of summed NLL; every method's NLL, SFT's too.")
    pref_loss: PrefLossName = Field("sigmoid", description="Pairwise loss of CLO's two sides and of DPO: sigmoid (DPO, the paper), ipo, "
                                    "simpo, orpo (simpo and orpo need no reference pass).")
    simpo_gamma: float = Field(0.5, ge=0, description="SimPO's target reward margin gamma (--pref-loss simpo; TRL's default 0.5).")
    trainable: Literal[MODES] = Field("attention", description="Which parameters train (paper: attention).")  # type: ignore[valid-type]
    lora_r: int = Field(16, ge=1, description="LoRA rank (--trainable lora).")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (--trainable lora).")
    # optimisation (paper: lr 5e-5 cosine to 1.1e-6, batch 8, 1 epoch, max length 3000)
    lr: float = Field(5e-5, gt=0, description="Peak learning rate (paper: 5e-5, cosine to min_lr).")
    min_lr: float = Field(1.1e-6, ge=0, description="Learning rate at the end of the cosine (paper: 1.1e-6).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of the steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Records per optimizer step, all processes together (paper: 8).")
    micro_batch_size: int | None = Field(None, ge=1, description="Records per forward per process; the rest accumulates (default: from micro_batch_tokens).")
    micro_batch_tokens: int | None = Field(None, ge=1, description="Token budget of one forward when micro_batch_size is unset (default: 1,024 on CPU, 4,096 on a GPU).")
    bin_tokens: int | None = Field(None, ge=16, description="Most tokens per decoder call when rows are packed under a dense attention mask (SDPA, eager), whose attention costs a call's width squared (default: 512 on CPU, 4,096 on a GPU). FlexAttention packs the whole micro-batch in one call.")
    activation_checkpointing: bool = Field(False, description="Recompute decoder activations in backward: less memory, about 1/3 more time.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training records (paper: 1).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: from epochs).")
    max_length: int = Field(3000, ge=8, description="Tokens per sequence (paper: 3000).")
    limit: int | None = Field(None, ge=1, description="Train on the first N records only (data-size sweeps).")
    val_size: float = Field(0.05, ge=0, description="Validation records when the data has no validation split: a fraction (< 1) or a count (>= 1).")
    eval_steps: int | None = Field(None, ge=1, description="Validation loss every N steps (default: about 10 per run).")
    logging_steps: int = Field(1, ge=1, description="A metrics.jsonl line every N steps.")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept on disk (the best one is never deleted).")
    seed: int = Field(0, ge=0, description="Seed of the data order and the validation split.")
    ref: Literal["precompute", "on-the-fly"] = Field("precompute", description="Reference log-probs: a cached pre-pass (precompute) or a second model in memory (on-the-fly).")
    cache_dir: str | None = Field(None, description="Reference log-prob cache (default $LANGSHIFT_CACHE or ~/.cache/langshift).")
    dtype: Literal["auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"] = Field("auto", description="Weights dtype (auto: fp32 on CPU, bf16 on GPUs that have it).")
    resume: bool = Field(False, description="Continue from the last checkpoint in --out.")
    report_to: list[str] = Field(["none"], description="none | tensorboard | wandb (comma-separated).")
    trust_remote_code: bool = Field(False, description="Allow the model repo's own code (off unless asked).")
    progress: bool = Field(True, description="Show progress bars.", json_schema_extra={"cli": False})

    @model_validator(mode="after")
    def _several_languages(self) -> TrainConfig:
        """A --lang list is a multilingual run; several --data sources are one per listed language."""
        if len(self.langs) > 1 and not self.multilingual:
            self.multilingual = True
        if self.cl_negatives == "all" and not any(METHODS[m].cross_negatives for m in PIPELINES[self.method]):
            raise ValueError(f"cl_negatives 'all' is CLO's (its target side); method {self.method!r} has none")
        sources = self.data_sources
        if len(sources) > 1 and len(sources) != len(self.langs):
            raise ValueError(f"{len(sources)} data sources need as many --lang codes, in the same order "
                             f"(got {self.lang or 'none'!r})")
        return self

    @property
    def langs(self) -> list[str]:
        """The target languages of --lang, in order ([] when unset: the records' own)."""
        return self.lang.split(",") if self.lang else []

    @property
    def data_sources(self) -> list[str]:
        """--data as a list: one source, or one per language of --lang."""
        return [part.strip() for part in self.data.split(",") if part.strip()]

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:  # 0 would still train one step (transformers reads it as unset)
            raise ValueError("must be -1 (from epochs) or >= 1")
        return value

    def check_runnable(self) -> TrainConfig:
        """What a training run needs beyond valid values."""
        if not self.data:
            raise InputError("config", "missing: a records file, dataset dir or hub name", field="data")
        return self

    @classmethod
    def load(cls, path: str | Path, overrides: dict | None = None) -> TrainConfig:
        """A YAML file of training options (bare, or under `train:`), with `overrides` on top."""
        values = read_yaml(path)
        values = values.get("train", values)
        return cls.from_dict({**values, **(overrides or {})}, source=str(path))

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainConfig:
        """`parse` that also takes hyphenated keys (`batch-size`), as the command line spells them."""
        return cls.parse({str(k).replace("-", "_"): v for k, v in values.items()}, source=source)

    def to_dict(self) -> dict:
        return self.model_dump()
