"""A run config (`langshift run CONFIG.yaml`), declared once and validated whole before any stage runs.

The `train:` section is `TrainConfig`'s fields and the `eval:` section `EvalSettings`' (plus the judge's
`baseline`), so their checks are the ones `langshift train` and `langshift eval run` apply. `--quick`
applies the config's `quick:` overrides and `--set key.sub=value` any override, both to the raw mapping
before validation; every error names the file and the dotted key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PositiveInt, field_validator, model_validator

from langshift.eval.config import EvalSettings
from langshift.files import InputError
from langshift.languages import canonical_code
from langshift.model_ref import ModelRef
from langshift.options import Options, parse_override, read_yaml, set_dotted
from langshift.train.config import MethodName, NllReduction, TrainConfig
from langshift.train.params import MODES

LangCode = Annotated[str, AfterValidator(canonical_code)]


class ModelEntry(Options):
    name: str = Field(description="Short name used in stage labels and reports.")
    model: ModelRef = Field(description="Hub id, local dir, .gguf file, or 'smollm2'.")
    gguf_file: str | None = Field(None, description="GGUF file inside `model`.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        """`- meta-llama/Llama-2-7b-hf` is short for {name: Llama-2-7b-hf, model: meta-llama/Llama-2-7b-hf}."""
        if isinstance(value, str):
            value = {"model": value}
        if isinstance(value, dict) and value.get("model") is not None and not value.get("name"):
            path = Path(str(value["model"]))
            value = {**value, "name": path.stem if path.suffix == ".gguf" else path.name}
        return value


class DataSpec(Options):
    source: str = Field(description="demo | oasst1 | oasst1:PATH | jsonl:PATH | hf:NAME")
    n: int | None = Field(None, ge=1, description="English pairs to take (paper: 6400).")
    translator: str = Field("hf", description="hf | ctranslate2 | openai | precomputed")
    translator_options: dict = Field(default_factory=dict, description="Keyword options of the translator.")
    val_size: float = Field(0.05, ge=0, lt=1, description="Share of records held out for validation loss.")
    keep_filtered: bool = Field(False, description="Keep the rejected records in rejected.jsonl.")
    filters: dict = Field(default_factory=dict, description="Options of the translation filters (data/filters.py "
                          "FilterConfig), e.g. {checks: [empty, untranslated], max_ratio: 4}.")


    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        """The English source is checked with the rest of the config: a missing file stops the run before
        its first stage, not when the data stage reaches it."""
        kind, _, arg = value.partition(":")
        if value != "demo" and kind not in ("oasst1", "jsonl", "hf"):
            raise ValueError("unknown source; use demo, oasst1, oasst1:PATH, jsonl:PATH or hf:NAME")
        if kind in ("jsonl", "hf") and not arg:
            raise ValueError(f"expected {kind}:{'PATH' if kind == 'jsonl' else 'NAME'}")
        if kind in ("oasst1", "jsonl") and arg and not Path(arg).expanduser().exists():
            raise ValueError(f"file not found: {arg}")
        return value

    @field_validator("filters")
    @classmethod
    def _filter_options(cls, value):
        from langshift.data.filters import FilterConfig

        try:
            FilterConfig(**value)
        except TypeError as e:
            raise ValueError(str(e).replace("FilterConfig.__init__() ", "")) from None
        return value


class Ablations(Options):
    trainable: list[Literal[MODES]] = Field(["attention"], min_length=1, description="Trainable sets (Table 4).")  # type: ignore[valid-type]
    nll: list[Literal["target", "both"]] = Field(["target"], min_length=1, description="CLO's NLL (Table 5).")
    nll_reduction: list[NllReduction] | None = Field(
        None, min_length=1, description="NLL reductions (token | sequence) for every method with an NLL, SFT "
        "included (default: the train section's nll_reduction).")
    multilingual: list[bool] | None = Field(
        None, min_length=1, description="false: a model per language; true: one model on the union of `languages` "
        "(default: the train section's multilingual). [false, true] plans both, to compare them.")


class Launcher(Options):
    kind: Literal["python", "accelerate"] = Field("python", description="How a training stage runs.")
    config_file: str | None = Field(None, description="accelerate config (DDP, FSDP, DeepSpeed).")
    num_processes: int | None = Field(None, ge=1, description="accelerate processes.")
    args: list[str] = Field(default_factory=list, description="Extra `accelerate launch` arguments.")


# sbatch options that submitit (or langshift) writes itself: set through their own keys, or not at all
_MANAGED_SBATCH = {"array": None, "output": None, "error": None, "open-mode": None, "signal": None,
                   "job-name": None, "partition": "partition", "account": "account", "qos": "qos",
                   "time": "timeout_min", "nodes": "nodes", "gpus-per-node": "gpus_per_node",
                   "cpus-per-task": "cpus_per_task", "mem": "mem_gb", "ntasks-per-node": None}


class ExecutorOptions(Options):
    """Where the stages run: this machine (`local`) or a SLURM cluster through submitit (`slurm`).

    The SLURM options size a training stage's allocation; a data or eval stage uses one device, so it
    gets one node and at most one GPU, with the same time, memory, CPUs, partition, account and QoS."""

    kind: Literal["local", "slurm"] = Field("local", description="local (this machine) | slurm (one submitit job per stage).")
    partition: str | None = Field(None, description="SLURM partition.")
    account: str | None = Field(None, description="SLURM account.")
    qos: str | None = Field(None, description="SLURM quality of service.")
    gpus_per_node: int = Field(1, ge=0, description="GPUs per node of a training stage (data and eval stages: at most 1).")
    nodes: int = Field(1, ge=1, description="Nodes of a training stage (> 1: multi-node accelerate launch).")
    cpus_per_task: int | None = Field(None, ge=1, description="CPU cores per stage (one task per node).")
    mem_gb: float | None = Field(None, gt=0, description="Memory per node in GB.")
    timeout_min: int = Field(1440, ge=1, description="Time limit of a stage's job in minutes (the partition's own limit still applies).")
    array_parallelism: int = Field(256, ge=1, description="Jobs of one array running at once.")
    setup: list[str] = Field(default_factory=list, description="Shell lines run in the sbatch script first (module load, ...).")
    slurm_additional_parameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Further sbatch options, e.g. {constraint: a100, exclusive: true}.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        """`executor: slurm` is short for {kind: slurm}."""
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("slurm_additional_parameters")
    @classmethod
    def _free_sbatch_options(cls, value: dict) -> dict:
        for key in value:
            flag = key.replace("_", "-")
            if not re.fullmatch(r"[a-z][a-z0-9-]*", flag):
                raise ValueError(f"{key!r} is not an sbatch option name (e.g. constraint, mail-type)")
            if flag in _MANAGED_SBATCH:
                own = _MANAGED_SBATCH[flag]
                raise ValueError(f"{key!r} is set by " + (f"executor.{own}" if own else "langshift and submitit"))
        return value


class ExperimentEval(EvalSettings):
    baseline: str = Field("sft", description="Method the pairwise judge compares every other model with.")
    translator: str = Field("openai", description="Translates `prompts: alpaca_eval` into each target language "
                            "(hf | ctranslate2 | openai | precomputed; the paper used GPT-4o).")
    translator_options: dict = Field(default_factory=lambda: {"model": "gpt-4o-2024-08-06"},
                                     description="Keyword options of the evaluation prompts' translator.")


def _check_seeds(seeds: list[int], what: str) -> None:
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"{what} must be distinct non-negative integers, got {seeds}")


class Experiment(Options):
    name: str = Field("", description="Run name (default: the config file's name).")
    out: str = Field("", description="Run directory (default: runs/<name>).")
    stages: str | None = Field(None, description="Directory of the stage outputs (default: `out`). Runs that share "
                               "it compute a stage they have in common once (same inputs, same directory).")
    models: list[ModelEntry] = Field(min_length=1, description="Base models.")
    languages: list[LangCode] = Field(min_length=1, description="Target languages.")
    data: DataSpec
    methods: list[MethodName] = Field(min_length=1, description="Training methods.")
    sizes: list[PositiveInt | None] = Field([None], description="Training records per run (null: all).")
    ablations: Ablations = Field(default_factory=Ablations)
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training options (langshift train's).")
    eval: ExperimentEval = Field(default_factory=ExperimentEval, description="Evaluation options.")
    launcher: Launcher = Field(default_factory=Launcher)
    executor: ExecutorOptions = Field(default_factory=ExecutorOptions, description="Where the stages run.")
    quick: dict = Field(default_factory=dict, description="Overrides applied by --quick.")
    seed: int = Field(0, ge=0, description="Seed of the data split, training order and sampling.")
    seeds: list[int] | None = Field(None, min_length=1, description="Replicate training seeds: every training run "
                                    "once per seed (data order; eval sampling follows it). The data split stays `seed`'s.")
    seeds_per_language: dict[LangCode, list[int]] = Field(
        default_factory=dict, description="Replicate seeds of one language where it takes fewer (or others) than "
        "`seeds`, e.g. {de: [0]} to cut a high-resource arm's replicates first when the grid does not fit.")
    jobs: int = Field(1, ge=1, description="Stages run at once, each in its own process.")

    @field_validator("sizes", "ablations", "train", "eval", "launcher", "executor", mode="before")
    @classmethod
    def _null_is_default(cls, value, info):
        if value is not None:
            return value
        return [None] if info.field_name == "sizes" else {}

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value):
        if value is not None:
            _check_seeds(value, "seeds")
        return value

    @field_validator("seeds_per_language")
    @classmethod
    def _per_language_seeds(cls, value, info):
        """Per-language seeds refine `seeds`: without it a stage's label would change with the language."""
        if value and not info.data.get("seeds"):
            raise ValueError("seeds_per_language needs `seeds` (the replicate seeds of the other languages)")
        for lang, seeds in value.items():
            if lang not in (info.data.get("languages") or []):
                raise ValueError(f"{lang!r} is not in `languages`")
            _check_seeds(seeds, f"{lang}: seeds")
        return value

    @model_validator(mode="after")
    def _multilingual(self):
        """One model for several languages needs them, and one prompts file for its one evaluation; it
        trains on every language at once, so its seeds are `seeds`."""
        if self.seeds_per_language and any(self.multilingual_options):
            raise ValueError("seeds_per_language does not apply to a multilingual model; its seeds are `seeds`")
        if any(self.multilingual_options) and len(self.languages) < 2:
            raise ValueError("a multilingual model needs at least two `languages`")
        if any(self.multilingual_options):
            from langshift.data.eval_prompts import SOURCES

            if self.eval.prompts in SOURCES:
                raise ValueError(f"eval.prompts {self.eval.prompts!r} is translated per language by its own "
                                 "stage; a multilingual model's evaluation reads one prompts file (e.g. demo)")
        return self

    @property
    def multilingual_options(self) -> list[bool]:
        """Whether to train a model per language (False) and/or one on all of them (True)."""
        return self.ablations.multilingual or [self.train.multilingual]

    @model_validator(mode="after")
    def _launcher_and_jobs(self):
        if self.jobs > 1 and self.launcher.kind == "accelerate" and self.executor.kind == "local":
            raise ValueError("jobs > 1 runs one stage per process; with launcher 'accelerate' use jobs: 1")
        return self


def load_experiment(path: str | Path, *, quick: bool = False, overrides: list[str] = ()) -> Experiment:
    """Read and validate the whole config before any stage runs; errors name the file and key."""
    source = str(path)
    raw = read_yaml(path)
    _spell_out_executor(raw)
    if quick:
        if not raw.get("quick"):
            raise InputError(source, "--quick needs a 'quick' section of overrides", field="quick")
        if not isinstance(raw["quick"], dict):
            raise InputError(source, "expected a mapping of overrides", field="quick")
        for dotted, value in raw["quick"].items():
            set_dotted(raw, str(dotted), value)
    given = {}  # dotted key -> the --set that gave it, to name it when its value is what is wrong
    for item in overrides:
        _spell_out_executor(raw)
        dotted, value = parse_override(item)
        set_dotted(raw, dotted, value)
        given[dotted] = item
    try:
        exp = Experiment.parse(raw, source=source)
    except InputError as e:
        at = [k for k in given if e.field and (e.field == k or e.field.startswith((k + ".", k + "[")))]
        if not at:
            raise
        raise InputError(f"{source} (--set {given[max(at, key=len)]})", e.message, field=e.field) from None
    _check_allocation(exp, source)
    if not exp.name:
        exp.name = Path(source).stem
    if not exp.out:
        exp.out = f"runs/{exp.name}"
    return exp


def _spell_out_executor(raw: dict) -> None:
    """`executor: slurm` -> {kind: slurm}, so that an override of `executor.x` finds a section."""
    if isinstance(raw.get("executor"), str):
        raw["executor"] = {"kind": raw["executor"]}


def _check_allocation(exp: Experiment, source: str) -> None:
    """A training stage spread over several GPUs or nodes runs under `accelerate launch`."""
    ex = exp.executor
    if ex.kind != "slurm" or exp.launcher.kind == "accelerate":
        return
    for key, value in (("nodes", ex.nodes), ("gpus_per_node", ex.gpus_per_node)):
        if value > 1:
            raise InputError(source, f"a training stage on {value} {key.split('_')[0]} needs launcher.kind: "
                             "accelerate (with its config_file)", field=f"executor.{key}")
