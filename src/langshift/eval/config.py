"""Evaluation options, declared once: `langshift eval run` flags, the `eval:` section of a run config,
and the single-benchmark commands all read these fields."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from langshift.eval.tasks import TASKS
from langshift.languages import canonical_code, canonical_code_list
from langshift.model_ref import ModelRef, looks_local
from langshift.options import Options

TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]
LangCode = Annotated[str, AfterValidator(canonical_code)]
LangCodes = Annotated[str, AfterValidator(canonical_code_list)]


class JudgeConfig(Options):
    """An OpenAI-compatible chat endpoint; the key is read from the env var `api_key_env` (None: no key)."""

    model: str = Field("gpt-4o", description="Judge model name at the endpoint.")
    base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible base URL (.../v1).")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Environment variable holding the key ('' or null: none).")
    concurrency: int = Field(4, ge=1, description="Requests in flight.")
    max_tokens: int = Field(256, ge=1, description="Longest judgment.")
    structured: Literal["json_schema", "json_object"] | None = Field(
        None, description="Constrain replies: json_schema (OpenAI) | json_object (llama.cpp, vLLM).")


class EvalSettings(Options):
    """How to evaluate, whatever the model: shared by a single evaluation and a run config's `eval:`."""

    tasks: list[TaskName] = Field(list(TASKS), min_length=1, description="Tasks to run.")
    english: bool = Field(True, description="Also evaluate in English (the paper's 'English' rows).")
    prompts: str | None = Field(None, description="Open prompts JSONL, or a packaged set: demo (the default, 50 "
                                "prompts) or demo-v2 (150, written apart from the training data).")
    prompts_limit: int | None = Field(None, ge=1, description="Open prompts per language (default: limit).")
    samples: int = Field(1, ge=1, description="Responses sampled per open prompt; a prompt's pass rate over them is the unit.")
    heldout: str | None = Field(None, description="Held-out quadruples for langpref/heldout_nll (default: the packaged demo pairs).")
    belebele: str = Field("facebook/belebele", description="BELEBELE hub id or local JSONL in its schema.")
    mmmlu: str = Field("openai/MMMLU", description="MMMLU hub id (English: MMLU) or local JSONL in its schema.")
    limit: int | None = Field(None, ge=1, description="Items per task and language.")
    mmmlu_sample: int | None = Field(None, ge=1, description="MMMLU items stratified by subject.")
    max_new_tokens: int = Field(256, ge=1, description="Longest response to an open prompt, in tokens.")
    mmmlu_max_new_tokens: int | None = Field(None, ge=1, description="Longest MMMLU response (default: MMMLU's own).")
    mmmlu_retries: int = Field(3, ge=0, description="MMMLU regenerations when no answer can be extracted (paper: 3).")
    temperature: float = Field(0.6, ge=0, description="Sampling temperature (paper: 0.6; 0 = greedy).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass (paper: 0.9).")
    seed: int = Field(0, ge=0, description="Seed of sampling (and of the MMMLU subject sample).")
    batch_size: int = Field(8, ge=1, description="Prompts or questions per forward pass.")
    same_language_system: bool = Field(False, description="Add the 'answer in the same language' system prompt (App. F).")
    generation_backend: Literal["auto", "hf", "llamacpp", "vllm"] = Field(
        "auto", description="Generation backend: auto (hf or llamacpp, whichever is measured faster for this "
        "model on this CPU; hf on a GPU), hf (our torch loop, exact), llamacpp (CPU: an f16 GGUF, continuous "
        "batching), vllm (GPU).")
    judge: JudgeConfig | None = Field(None, description="Pairwise judge endpoint (alpaca).")
    trust_remote_code: bool = Field(False, description="Allow the model repo's own code (off unless asked).")
    dtype: Literal["auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"] | None = Field(
        None, description="Weights dtype (default: fp32 on CPU, bf16 on GPU).")
    device: str | None = Field(None, description="cpu | cuda | cuda:1 ...")

    @field_validator("tasks", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str) else value

    @field_validator("prompts", "heldout", "belebele", "mmmlu")
    @classmethod
    def _local_file_exists(cls, value):
        """A local data file that is not there is said now, not after the model has loaded (a hub id, or a
        name like 'demo' or 'alpaca_eval', is left to the loader)."""
        if value and (looks_local(value) or value.endswith((".jsonl", ".json", ".gz"))) \
                and not Path(value).expanduser().exists():
            raise ValueError(f"file not found: {value}")
        return value


class EvalConfig(EvalSettings):
    """One model, its target language(s) (and English). A multilingual model lists its languages
    (`lang: sw,de`): one evaluation covers each of them and English, one report row per language."""

    model: ModelRef = Field("smollm2", description="Hub id, local dir, .gguf file, or 'smollm2' (embedded default).")
    lang: LangCodes = Field(description="Target language, or several (sw,de: a multilingual model, evaluated in each).")
    out: str = Field(description="Output directory.")
    gguf_file: str | None = Field(None, description="GGUF file inside --model (a hub repo or directory).")
    baseline_responses: str | None = Field(None, description="A baseline run's directory (responses.<lang>.jsonl).")
    train_data: str | None = Field(None, description="Records the model was trained on: held-out pairs that overlap them are refused.")
    model_name: str | None = Field(None, description="Name of the model in reports (default: its directory name).")
    baseline_name: str = Field("baseline", description="Name of the baseline in reports.")

    @property
    def targets(self) -> list[str]:
        """The target languages, in the order given; the first one's held-out pairs are English's (below)."""
        return self.lang.split(",")

    @property
    def langs(self) -> list[str]:
        """Every evaluation language: the targets, then English (once). English rows of the held-out tasks
        score x_en's y_en against the first target's y_t (eval/heldout.py)."""
        return self.targets + (["en"] if self.english and "en" not in self.targets else [])

    @classmethod
    def from_dict(cls, values: dict, source: str = "eval config") -> EvalConfig:
        return cls.parse(values, source=source)
