"""The offline rehearsal: every config in configs/paper runs end to end on CPU, as a GPU user runs it.

`langshift run configs/paper/<config>.yaml --set ...` goes through every stage on the real code paths:
data (the oasst1 selection rule on the `OpenAssistant/oasst1` stand-in) -> translation (the `hf` backend
loading `facebook/m2m100_1.2B`) -> training (every method the config names, `sft+dpo` included) -> the
evaldata stage (AlpacaEval's instructions from `tatsu-lab/alpaca_eval`, translated by the `openai`
backend) -> evaluation (belebele / mmmlu / fidelity / the pairwise judge) -> the report's paper-shaped
tables. Models and datasets are the tiny stand-ins of `langshift.testing.hub` under the configs' exact
hub ids, read offline (HF_HUB_OFFLINE=1) through `from_pretrained` / `load_dataset`; the translator of
the evaluation prompts and the judge are the real llama.cpp server on loopback (`llm_server`, SmolLM2).
Nothing may reach the network (`no_network`, which guards the `accelerate launch` workers of Tables 4 and 5
too); those workers read the same stand-ins through the environment they inherit.
The configs' own key variable (OPENAI_API_KEY) holds a canary that no file of the run may contain.

What this shows: the configs' wiring, hub ids, dataset configs, splits and column schemas, and that every
stage runs. What it cannot show: model quality (the models are random, the numbers noise), GPU speed and
memory, vLLM, multi-GPU (DDP and FSDP2 over 2 CPU processes are the closest), the real judge's and translator's
behaviour (see the README's "Rehearsal").

Coverage plan (Table 1 alone is 5 models x 6 languages x 3 methods; the whole rehearsal must fit a few
minutes on 2 cores). Each config runs every method and ablation it names, on a subset of its models and
languages chosen so that, across the configs, every model id, every language and every method runs:

    config                     models                    languages   methods                      notes
    table1_2_alpaca_belebele   qwen-2.5-3b               de id yo    sft sft+dpo clo              alpaca, belebele
    table3_mmmlu               llama-2-13b mistral-7b    zh          sft sft+dpo clo sft-eng sft-tgt
    table4_attention_vs_full   llama-2-7b                ko          sft clo x attention/full     accelerate FSDP2
    table5_nll_ablation        llama-3-8b                sw          sft clo x NLL target/both    accelerate DDP
    figure3_data_size          llama-3-8b                zh          sft clo x sizes 4, 8

`test_the_plan_covers_every_model_language_and_method` checks this table against the configs.

Overrides, each with its reason (nothing else differs from the shipped configs): `COMMON`, `CPU`,
`endpoints()` below, and per config `Plan.extra`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "paper"
# The configs read the judge's and the translator's key from OPENAI_API_KEY; the rehearsal sets it to this
# canary, which is sent to the loopback server (it checks no key) and must appear in no file of the run.
CANARY_KEY = "sk-rehearsal-" + uuid.uuid4().hex

# Sizes, step counts and item limits.
COMMON = [
    ("data.n=16", "16 English oasst1 pairs (paper: 6,400): 15 train + 1 validation record"),
    ("sizes=[8]", "one batch of 8 records (the paper's batch size): one optimizer step per method"),
    ("train.max_length=96", "sequences cut to 96 tokens (paper: 3000)"),
    ("data.translator_options.beam_size=1", "greedy translation (paper: beam 5): the stand-in M2M100 is random"),
    ("data.translator_options.max_length=16", "at most 16 new tokens per segment, for the same reason"),
    ("data.filters={checks: [empty]}", "the random M2M100 writes junk in no language, which the language, "
     "ratio, copy and loop checks would rightly reject; only an empty translation rejects a record here"),
    ("eval.limit=2", "2 BELEBELE / MMMLU items per language"),
    ("eval.prompts_limit=1", "1 AlpacaEval instruction per language, translated and judged"),
    ("eval.max_new_tokens=8", "8-token responses (paper: 1024)"),
    ("eval.mmmlu_max_new_tokens=8", "8-token MMMLU answers"),
    ("eval.mmmlu_retries=1", "one regeneration (paper: 3): the path runs, a random model never answers"),
]
# What a CPU forces.
CPU = [
    ("data.translator_options.device=cpu", "the configs translate on cuda"),
    ("eval.generation_backend=hf", "vLLM needs a GPU"),
]


def endpoints(url: str) -> list[tuple[str, str]]:
    """The evaluation prompts' translator and the judge: the loopback llama.cpp server, not OpenAI."""
    where = "the loopback llama.cpp server (SmolLM2-135M) instead of GPT-4o at api.openai.com"
    return [
        (f"eval.translator_options.base_url={url}", where),
        ("eval.translator_options.model=smollm2", where),
        ("eval.translator_options.max_length=16", "at most 16 tokens per translated segment"),
        ("eval.translator_options.concurrency=1", "the server decodes one request at a time"),
        (f"eval.judge.base_url={url}", where),
        ("eval.judge.model=smollm2", where),
        ("eval.judge.concurrency=1", "the server decodes one request at a time"),
        ("eval.judge.max_tokens=48", "a verdict is ~30 tokens"),
        ("eval.judge.structured=json_object", "SmolLM2's free-text judgments do not parse (it writes code); "
         "llama.cpp turns the verdict schema into a grammar, so every judgment is a verdict and Table 1 "
         "has numbers. GPT-4o needs no constraint"),
    ]


@dataclass(frozen=True)
class Plan:
    models: tuple[str, ...]  # names from the config's `models`
    languages: tuple[str, ...]  # from the config's `languages`
    tables: dict[str, tuple[str, ...]]  # report heading ("Table N shape") -> the methods it must show, filled
    extra: tuple[tuple[str, str], ...] = ()  # (override, reason) of this config only
    accelerate: bool = False  # keep the config's `accelerate launch`; every other config runs the recipe
    plots: tuple[str, ...] = ()  # files under report_plots/ that must exist


PYTHON_LAUNCHER = ("launcher.kind=python", "the recipe in this process: `accelerate launch` costs two process "
                   "start-ups per training stage here, and runs for real in Tables 4 and 5")
PLANS = {
    "table1_2_alpaca_belebele.yaml": Plan(
        ("qwen-2.5-3b",), ("de", "id", "yo"),
        {"Table 1 shape": ("sft+dpo", "clo"), "Table 2 shape": ("base", "sft", "sft+dpo", "clo")},
        (PYTHON_LAUNCHER,)),
    "table3_mmmlu.yaml": Plan(
        ("llama-2-13b", "mistral-7b"), ("zh",),
        {"Table 3 shape": ("base", "sft", "sft+dpo", "clo", "sft-eng", "sft-tgt")}, (PYTHON_LAUNCHER,)),
    "table4_attention_vs_full.yaml": Plan(
        # Table 1's SFT column: full fine-tuning judged against the attention-only SFT baseline
        ("llama-2-7b",), ("ko",), {"Table 1 shape": ("sft", "clo"), "Table 4 shape": ("sft", "clo")},
        (("launcher.num_processes=2", "2 CPU processes (FSDP2 over gloo) for the 8 GPUs of fsdp.yaml"),),
        accelerate=True),
    "table5_nll_ablation.yaml": Plan(
        ("llama-3-8b",), ("sw",), {"Table 1 shape": ("clo",), "Table 5 shape": ("clo",)},
        (("launcher.num_processes=2", "2 CPU processes (DDP over gloo) for the 8 GPUs of ddp.yaml"),),
        accelerate=True),
    "figure3_data_size.yaml": Plan(
        # Table 1's SFT column: SFT on 4 records judged against the baseline, SFT on all 8
        ("llama-3-8b",), ("zh",), {"Table 1 shape": ("sft", "clo")},
        (PYTHON_LAUNCHER, ("sizes=[4, 8]", "two data sizes (paper: 200 ... 6,400) make the size curve")),
        plots=("size_alpaca_vs_sft_llama-3-8b.png",)),
}
NUMBER = re.compile(r"\d+\.\d+ ± \d+\.\d+")  # a measured cell: value ± standard error


def _raw(name: str) -> dict:
    return yaml.safe_load((PAPER / name).read_text(encoding="utf-8"))


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()


def overrides(name: str, out: Path, url: str) -> list[tuple[str, str]]:
    """Every `--set` of the rehearsal of config `name`, with its reason."""
    raw, plan = _raw(name), PLANS[name]
    models = [m for m in raw["models"] if m["name"] in plan.models]
    chosen = [
        (f"out={out}", "the test's directory"),
        (f"models={_flow(models)}", "the coverage plan's models (the module docstring)"),
        (f"languages={_flow(list(plan.languages))}", "the coverage plan's languages"),
    ]
    sizes = [o for o in plan.extra if o[0].startswith("sizes=")]
    common = [o for o in COMMON if not (sizes and o[0].startswith("sizes="))]
    return chosen + common + CPU + endpoints(url) + list(plan.extra)


def _section(report: str, tag: str) -> str:
    """The body of the report section whose heading contains `tag` ('' when there is none)."""
    parts = re.split(r"^## ", report, flags=re.M)
    return next((p for p in parts if tag in p.splitlines()[0]), "")


def _table(section: str) -> list[dict[str, str]]:
    """The first markdown table of a report section as rows {header: cell}; a label the report writes
    once for the lines below it (the Model column) is filled in on each line."""
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    if len(lines) < 3:
        return []
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, rows, above = cells[0], [], {}
    for line in cells[2:]:
        row = dict(zip(header, line, strict=True))
        for key in LABELS & set(header):
            row[key] = row[key] or above.get(key, "")
        rows.append(row)
        above = row
    return rows


LABELS = {"Model", "Eval", "Language", "Method", "Metric", "Data size", "NLL loss"}


def check_table(report: str, tag: str, models, langs, methods) -> None:
    """The report's `tag` table names exactly these models, languages and methods, and each of its
    measured cells (every column but the labels and the Δ columns) holds a number ± its error."""
    from langshift.report.rows import METHOD_LABEL, lang_name

    rows = _table(_section(report, tag))
    assert rows, f"no {tag} table in the report"
    values = [h for h in rows[0] if h not in LABELS and "Δ" not in h]
    empty = [(r.get("Model"), h, r[h]) for r in rows for h in values if not NUMBER.fullmatch(r[h])]
    assert values and not empty, f"{tag}: cells without a number: {empty}"
    assert {r["Model"] for r in rows} == set(models), tag
    # the language and the method are each a column, or the first and second words of a value header
    named_langs = {r["Language"] for r in rows} if "Language" in rows[0] else {h.split(" ")[0] for h in values}
    assert named_langs == {lang_name(x) for x in langs}, tag
    named = {r["Method"] for r in rows} if "Method" in rows[0] else {h.split(" ", 1)[1] for h in values}
    assert named == {METHOD_LABEL[m] for m in methods}, tag


@pytest.fixture
def offline(hub_cache, no_network, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    # The reference log-prob cache, shared by the configs (keyed by weights and sequences).
    monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path_factory.getbasetemp() / "rehearsal-cache"))
    yield
    assert no_network.all() == [], "a stage (or a process it started) tried to reach the network"


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_the_plan_covers_every_model_language_and_method():
    """The coverage plan is a plan of these configs, and covers each id, language and method they name."""
    assert set(PLANS) == {p.name for p in PAPER.glob("*.yaml")}, "a paper config without a rehearsal plan"
    need_ids, need_langs, need_methods = set(), set(), set()
    got_ids, got_langs, got_methods = set(), set(), set()
    for name, plan in PLANS.items():
        raw = _raw(name)
        by_name = {m["name"]: m["model"] for m in raw["models"]}
        assert set(plan.models) <= set(by_name) and set(plan.languages) <= set(raw["languages"]), name
        need_ids |= set(by_name.values())
        need_langs |= set(raw["languages"])
        need_methods |= set(raw["methods"])
        got_ids |= {by_name[m] for m in plan.models}
        got_langs |= set(plan.languages)
        got_methods |= set(raw["methods"])  # each rehearsal trains every method its config names
        keys = {o.split("=", 1)[0] for o, _ in overrides(name, Path("/x"), "http://127.0.0.1:1/v1")}
        assert "methods" not in keys and not any(k.startswith("ablations") for k in keys), name
    assert got_ids == need_ids and got_langs == need_langs and got_methods == need_methods


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("name", list(PLANS), ids=lambda n: n.removesuffix(".yaml"))
def test_paper_config_runs_end_to_end_offline(name, tmp_path, llm_server, offline):
    from typer.testing import CliRunner

    from langshift.cli import app

    raw, plan = _raw(name), PLANS[name]
    out = tmp_path / "run"
    sets = overrides(name, out, llm_server)
    if not plan.accelerate:
        assert any(o == "launcher.kind=python" for o, _ in sets)
    args = ["run", str(PAPER / name)] + [x for o, _ in sets for x in ("--set", o)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output[-4000:]

    # every planned stage finished
    stages = json.loads((out / "experiment.json").read_text())["stages"]
    assert stages and all((Path(s["dir"]) / "stage.json").is_file() for s in stages)
    kinds = {s["kind"] for s in stages}
    alpaca = "alpaca" in raw["eval"]["tasks"]
    assert kinds == {"data", "train", "eval"} | ({"evaldata"} if alpaca else set())

    # data: the oasst1 rule, translated by the M2M100 stand-in
    for s in (s for s in stages if s["kind"] == "data"):
        card = (Path(s["dir"]) / "data_card.md").read_text()
        assert "facebook/m2m100_1.2B" in card and "oasst1" in card.lower()
        assert (Path(s["dir"]) / "records.jsonl").read_text().count("\n") >= 8
    # evaldata: AlpacaEval's instruction in each language, translated through the loopback server
    for s in (s for s in stages if s["kind"] == "evaldata"):
        lang = s["label"].rsplit("-", 1)[1]
        rows = [json.loads(x) for x in (Path(s["dir"]) / "prompts.jsonl").read_text().splitlines()]
        assert [r["lang"] for r in rows] == ["en", lang] and all(r["prompt"].strip() for r in rows)
        card = (Path(s["dir"]) / "data_card.md").read_text()
        assert "`tatsu-lab/alpaca_eval` (English instructions), 1 of them" in card  # eval.prompts_limit
        assert "`openai` `smollm2`" in card and re.search(r"Segments: [1-9]\d* \(", card)
        assert re.search(r"^- Filters .*: (none fired|\w+ \d+)", card, flags=re.M), "filter verdicts not counted"

    # training: every method (and ablation) of the config, from the base model's hub id
    trains = [yaml.safe_load((Path(s["dir"]) / "config.yaml").read_text()) for s in stages if s["kind"] == "train"]
    ids = {m["model"] for m in raw["models"] if m["name"] in plan.models}
    assert {t["config"]["method"] for t in trains} == set(raw["methods"])
    assert {t["stages"][0]["base_model"] for t in trains} == ids
    for axis, values in (raw.get("ablations") or {}).items():
        assert {t["config"][axis] for t in trains} == set(values)
    pipelines = [t for t in trains if t["config"]["method"] == "sft+dpo"]
    assert all([st["method"] for st in t["stages"]] == ["sft", "dpo"] for t in pipelines)
    processes = {st["processes"] for t in trains for st in t["stages"]}
    assert processes == ({2} if plan.accelerate else {1})
    launched = yaml.safe_load((ROOT / raw["launcher"]["config_file"]).read_text())["distributed_type"] \
        if plan.accelerate else "NO"
    # what ran is what the accelerate file asked for (FSDP stays FSDP on CPU processes: train/sharding.py)
    assert {st["distributed"] for t in trains for st in t["stages"]} == \
        {{"MULTI_GPU": "MULTI_CPU"}.get(launched, launched)}

    # results: every model, language and method evaluated; the paper's tables hold numbers
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["model"] for r in rows} == set(plan.models)
    assert {r["lang"] for r in rows} == set(plan.languages)
    assert {r["method"] for r in rows} == {"base", *raw["methods"]}
    assert {r["task"] for r in rows} == set(raw["eval"]["tasks"])
    # each number is over the items the limits allow: every language's benchmark split and prompts were read
    items = {"belebele": 2, "mmmlu": 2, "alpaca": 1, "fidelity": 1}  # eval.limit, eval.prompts_limit
    assert [r for r in rows if r["n"] != items[r["task"]]] == []
    report = (out / "report.md").read_text()
    for tag, methods in plan.tables.items():
        check_table(report, tag, plan.models, plan.languages, methods)
    if alpaca:  # every trained model but the baseline itself is judged against the baseline
        judged = [r for r in rows if r["task"] == "alpaca"]
        assert {r["method"] for r in judged} >= set(raw["methods"]) - {raw["eval"]["baseline"]}
        assert {r["baseline"] for r in judged} == {raw["eval"]["baseline"]}
        assert {r["eval_lang"] for r in judged} == {"target", "en"}
    for plot in plan.plots:
        assert (out / "report_plots" / plot).is_file()

    # the key the judge and the translator read is written nowhere: configs, specs, logs, caches, cards
    assert not _files_holding(out, CANARY_KEY)
