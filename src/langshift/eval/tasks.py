"""The evaluation tasks: one table, one entry per task. Everything that needs to know what a task is
(the suite, the experiment runner, the report's rows, tables and plots, the CLI) reads it here.

A task declares its metrics once: name, label, the field of its per-item rows that holds one item's
value (so two models can be compared item by item), whether higher is better, and its unit. Its
`run(ctx, lang)` returns the one result shape every task shares (documented once, here):

    {"metrics": {<metric>: {"value": float | None, "stderr": float | None, "n": int}},
     ...details the task keeps (per-category breakdowns, counts, usage)}

and writes its per-item rows to `<out>/<task>.<lang>.jsonl` (each row has "id" and the metrics'
item fields). Values of unit "fraction" are in [0, 1]; reports print them as percentages.

Adding a task is one entry below plus its module's `run_task`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langshift.eval import alpaca, belebele, confusion, degeneration, fidelity, heldout, mmmlu


@dataclass(frozen=True)
class Metric:
    name: str  # key in results.json and in report rows
    label: str  # column title
    item_field: str | None  # per-item row field with one item's value (None: not item-level)
    higher_is_better: bool = True
    unit: str = "fraction"  # "fraction" (shown as %), "nats", "nats/token", ...
    in_rows: bool = True  # becomes an experiment report row (False: a diagnostic of the eval's own report)


@dataclass(frozen=True)
class Detail:
    """An extra report column: its header and how to read it off a task's result."""

    header: str
    cell: Callable[[dict], str]


@dataclass(frozen=True)
class Task:
    name: str
    title: str  # section title of a single-model report
    label: str  # what the experiment report calls its headline metric, e.g. "Reading (BELEBELE)"
    short: str  # headline-table column prefix, e.g. "Reading"
    metrics: tuple[Metric, ...]  # the first is the headline metric
    run: Callable[[TaskContext, str], dict]
    needs_model: bool = True  # loads the model (generation counts: see needs_responses)
    needs_responses: bool = False  # reads the open-prompt responses the suite generates
    needs_judge: bool = False  # compares against a baseline run's responses with a judge
    reuse_settings: Callable[[Any], tuple] | None = None  # inputs that make a stored result reusable
    in_headline: bool = True  # a column pair (target, English) of the report's headline table
    # The scoring procedure's version, for tasks that only score the stored responses (no model, no judge):
    # bump it when the verdicts change, and a finished evaluation's stored responses are scored again
    # (`suite.rescore`) instead of its stage re-running.
    version: str = "1"
    # False: left out of an experiment stage's identity (experiment/plan.py), so adding the task to a
    # config scores the finished stages' stored responses rather than re-running them. Only for
    # response scorers added after stage caches were published (the older ones' names are in those hashes).
    stage_identity: bool = True
    details: tuple[Detail, ...] = ()

    @property
    def scores_responses(self) -> bool:
        """Scored from the stored responses alone: re-scoring it needs neither the model nor a judge."""
        return self.needs_responses and not self.needs_model and not self.needs_judge

    @property
    def headline(self) -> Metric:
        return self.metrics[0]

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)


@dataclass
class TaskContext:
    """What a task's run gets: the eval config, the output dir, the (lazily loaded) model, responses."""

    cfg: Any  # langshift.eval.config.EvalConfig
    out: Path
    model: Any  # .get() -> (model, tokenizer), loaded on first use
    responses: dict[str, list[dict]] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)  # what two tasks both need, computed once (e.g. langid verdicts)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


TASKS: dict[str, Task] = {t.name: t for t in (
    Task(
        "fidelity", "Language fidelity", "Language fidelity", "Fidelity",
        metrics=(
            Metric("response_pass_rate", "Response pass (%)", "response_pass"),
            Metric("line_pass_rate", "Line pass, LPR (%)", "line_pass"),
            Metric("line_accuracy", "Line accuracy (%)", None, in_rows=False),
        ),
        run=fidelity.run_task, needs_model=False, needs_responses=True,
        details=(Detail("no counted line", lambda r: str(r["line_excluded"])),
                 Detail("detected as", lambda r: ", ".join(f"{k}: {v}" for k, v in r["detected_as"].items()))),
    ),
    Task(
        "degeneration", "Degenerate responses", "Degenerate responses", "Degenerate",
        metrics=(
            Metric("degenerate_rate", "Degenerate (%)", "degenerate", higher_is_better=False),
            Metric("fluent_pass_rate", "Fluent pass (%)", "fluent_pass"),
        ),
        run=degeneration.run_task, needs_model=False, needs_responses=True, in_headline=False,
        version="2",  # 2: echo at half the words (was 0.8) and the `repetitive` check, set by labels
        details=(Detail("loop / repetitive / echo / empty", lambda r: " / ".join(
            str(r["reasons"].get(k, 0)) for k in ("loop", "repetitive", "prompt_echo", "empty"))),),
    ),
    Task(
        "confusion", "Language confusion (LCB's metrics)", "Language confusion (LCB)", "LCPR",
        metrics=(
            Metric("lcpr", "LCPR (%)", None),  # a harmonic mean of two rates: no per-item value
            Metric("lpr", "LPR, lid.176 (%)", "line_pass"),
            Metric("wpr", "WPR (%)", "word_pass"),
            Metric("wpr_latin", "WPR, Latin script (%)", "latin_word_pass"),
        ),
        run=confusion.run_task, needs_model=False, needs_responses=True, in_headline=False, stage_identity=False,
        details=(Detail("no counted line", lambda r: str(r["skipped"])),),
    ),
    Task(
        "langpref", "Language preference on held-out pairs", "Language preference (held-out)", "Prefers own",
        metrics=(
            Metric("preference", "Prefers prompt language (%)", "preference"),
            Metric("margin", "Margin (nats)", "margin", unit="nats"),
            Metric("margin_per_token", "Margin per token (nats)", "margin_per_token", unit="nats/token"),
        ),
        run=heldout.run_langpref, reuse_settings=lambda cfg: (cfg.heldout, cfg.train_data, cfg.limit),
        in_headline=False,
    ),
    Task(
        "heldout_nll", "Held-out NLL", "Held-out NLL per token", "NLL",
        metrics=(Metric("nll_per_token", "NLL per token (nats)", "nll_per_token", higher_is_better=False,
                        unit="nats/token"),),
        run=heldout.run_heldout_nll, reuse_settings=lambda cfg: (cfg.heldout, cfg.train_data, cfg.limit),
        in_headline=False,
    ),
    Task(
        "belebele", "BELEBELE", "Reading (BELEBELE)", "Reading",
        metrics=(Metric("accuracy", "Accuracy (%)", "correct"),),
        run=belebele.run_task,
        reuse_settings=lambda cfg: (cfg.belebele, cfg.limit),
    ),
    Task(
        "mmmlu", "MMMLU", "Knowledge (MMMLU)", "Knowledge",
        metrics=(Metric("accuracy", "Accuracy (%)", "correct"),),
        run=mmmlu.run_task,
        reuse_settings=lambda cfg: (cfg.mmmlu, cfg.limit, cfg.mmmlu_sample, cfg.seed, cfg.mmmlu_max_new_tokens,
                                    cfg.mmmlu_retries),
        details=(Detail("no answer extracted (%)", lambda r: _pct(r.get("extraction_failure_rate"))),),
    ),
    Task(
        "alpaca", "AlpacaEval", "Win rate (AlpacaEval)", "Win",
        metrics=(Metric("win_rate", "Win rate (%)", "score"),),
        run=alpaca.run_task, needs_model=False, needs_responses=True, needs_judge=True,
        details=(Detail("W / T / L", lambda r: f"{r['wins']} / {r['ties']} / {r['losses']}"),
                 Detail("invalid", lambda r: str(r["invalid"]))),
    ),
)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; one of {', '.join(TASKS)}") from None
