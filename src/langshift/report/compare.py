"""Paired comparisons A − B: every difference langshift prints comes with a 95% CI and a p-value.

Two evaluations (or two sets of them, one per replicate training seed) are compared task by task, metric
by metric and language by language, on the items both were scored on. An item's value comes from its
task's per-item file `<task>.<lang>.jsonl` and the metric's `item_field` (eval/tasks.py); the k sampled
responses to one prompt average into the prompt's value (`stats.item_values`). Items whose value one side
lacks (e.g. a response with no counted line, for LPR) drop out of both sides and are counted as excluded;
item sets that differ otherwise are an error naming the missing ids (`stats.MismatchedItems`).

One evaluation per side: `stats.paired_difference` (paired bootstrap over items, sign-flip p-value).
Several (replicate seeds): `stats.paired_difference_seeds` (seeds and items resampled hierarchically).
"""

from __future__ import annotations

from pathlib import Path

from langshift.eval.stats import NoPairedItems, item_values, paired_difference, paired_difference_seeds
from langshift.eval.tasks import TASKS
from langshift.files import InputError, iter_jsonl, read_json

RESAMPLES = 10_000


def _results(eval_dir: Path) -> dict:
    path = Path(eval_dir) / "results.json"
    if not path.is_file():
        raise InputError(path, "no results.json here (is this an evaluation directory?)")
    return read_json(path)


def item_scores(eval_dir: Path, task: str, metric: str, lang: str) -> dict:
    """{item id: value or None} of one evaluation, for every item its per-item file lists."""
    field = TASKS[task].metric(metric).item_field
    rows = [row for _, row in iter_jsonl(Path(eval_dir) / f"{task}.{lang}.jsonl")]
    values = item_values(rows, field)
    return {row["id"]: values.get(row["id"]) for row in rows}


def compare_evals(a: list[Path], b: list[Path], *, resamples: int = RESAMPLES, seed: int = 0,
                  langs: set[str] | None = None) -> list[dict]:
    """A − B for every (task, metric, eval language) that all the evaluations measured item by item
    (and, given `langs`, only in those languages). `item_lang` is the items' language code, `eval_lang`
    "target" or "en"; no key names a fact of the models (`run_comparisons` adds those).

    `a` and `b` list one evaluation directory per training seed (one each, without replicates)."""
    results = [_results(d) for d in [*a, *b]]
    target = results[0]["meta"]["lang"]
    out = []
    for name, task in TASKS.items():
        measured = set.intersection(*(set(r.get(name) or {}) for r in results))
        langs_here = measured & langs if langs is not None else measured
        for lang in sorted(langs_here, key=lambda x: (x == "en", x)):
            for metric in task.metrics:
                if metric.item_field is None or not metric.in_rows:
                    continue
                side_a = {i: item_scores(d, name, metric.name, lang) for i, d in enumerate(a)}
                side_b = {i: item_scores(d, name, metric.name, lang) for i, d in enumerate(b)}
                try:
                    if len(a) == len(b) == 1:
                        got = paired_difference(side_a[0], side_b[0], resamples=resamples, seed=seed)
                    else:
                        got = paired_difference_seeds(side_a, side_b, resamples=resamples, seed=seed)
                except NoPairedItems:
                    continue  # nothing to compare on this metric (e.g. LPR with no counted line anywhere)
                out.append({"task": name, "metric": metric.name, "item_lang": lang,
                            "eval_lang": "en" if lang == "en" and target != "en" else "target",
                            "unit": metric.unit, "higher_is_better": metric.higher_is_better, **got.as_dict()})
    return out


# ------------------------------------------------------------------------------------------- words


def _amount(value: float, unit: str) -> str:
    return f"{100 * value:+.1f} points" if unit == "fraction" else f"{value:+.3f} {unit}"


def _bound(value: float, unit: str) -> str:
    return f"{100 * value:+.1f}" if unit == "fraction" else f"{value:+.3f}"


def cell(c: dict) -> str:
    """'+12.5 [+3.1, +21.0] p=0.01' (points for rates)."""
    return (f"{_bound(c['diff'], c['unit'])} [{_bound(c['ci_low'], c['unit'])}, {_bound(c['ci_high'], c['unit'])}] "
            f"p={c['p_value']:.2g}")


def verdict(c: dict, a: str, b: str, what: str) -> str:
    """The comparison in words, saying whether it is distinguishable from zero.

    Distinguishable means both that the bootstrap CI excludes zero and that the sign-flip test rejects
    "no difference" at the same level. They disagree when only a few items differ, all one way (e.g. SFT
    fails 3 English prompts of 50 and CLO none): every bootstrap draw is then ≥ 0, so the percentile
    interval sits on zero's positive side, while 3 items cannot make a permutation p small."""
    seeds = f", {c['seeds_a']} vs {c['seeds_b']} seeds" if max(c["seeds_a"], c["seeds_b"]) > 1 else ""
    head = (f"{a} − {b} on {what} = {_amount(c['diff'], c['unit'])} (95% CI {_bound(c['ci_low'], c['unit'])} "
            f"to {_bound(c['ci_high'], c['unit'])}, p = {c['p_value']:.2g}, n = {c['n']} items{seeds})")
    mdd = c.get("detectable")
    power = (f" (this comparison detects a true difference of {_amount(mdd, c['unit']).lstrip('+')} or more "
             "80% of the time)") if mdd is not None and mdd > 0 else ""
    if not c["excludes_zero"]:
        return head + f": not distinguishable from zero{power}."
    if c["p_value"] >= 1 - c["confidence"]:
        return (head + ": not distinguishable from zero: the interval excludes it but the permutation test "
                f"does not; too few items differ to tell{power}.")
    better = (c["diff"] > 0) == c["higher_is_better"]
    return head + f": {a if better else b} is better, distinguishable from zero (the interval excludes it, the test rejects it)."


# ------------------------------------------------------------------------------------ within a run

# Contrasts within one run, all else equal: every trained method against the baseline method (added in
# `run_comparisons`), and the paper's two ablations (Tables 4-5) as A − B.
ABLATIONS = (("trainable", "attention", "full"), ("nll", "target", "both"), ("nll_reduction", "token", "sequence"))


def run_comparisons(evals: list[tuple[dict, Path]], baseline: str = "sft", *, resamples: int = RESAMPLES) -> list[dict]:
    """Paired comparisons of a run's evaluations: `evals` = (facts, eval dir) of each evaluation, where facts
    name model, lang, method, size, trainable, nll (and seed, for replicates: a configuration's seeds are
    compared together, hierarchically)."""
    groups: dict[tuple, list[Path]] = {}
    for facts, directory in evals:
        if facts["method"] != "base":
            key = tuple(sorted((k, v) for k, v in facts.items() if k != "seed"))
            groups.setdefault(key, []).append(Path(directory))
    out = []
    for key, dirs in groups.items():
        facts = dict(key)
        contrasts = [("method", baseline)] if facts["method"] != baseline else []
        if facts["method"] == "clo":  # CLO against every other method too (Table 1's CLO − SFT+DPO)
            contrasts += [("method", m) for m in {dict(k)["method"] for k in groups} - {"clo", "base", baseline}]
        contrasts += [(axis, b) for axis, a, b in ABLATIONS if facts.get(axis) == a]
        if facts.get("trained_langs"):  # one model for several languages: against each language's own model
            out += _multilingual_contrasts(facts, dirs, groups, resamples)
            contrasts = []  # its other contrasts would pair it with models of its first language only
        for axis, other_value in contrasts:
            other = groups.get(tuple(sorted({**facts, axis: other_value}.items())))
            if other:
                for c in compare_evals(sorted(dirs), sorted(other), resamples=resamples):
                    out.append(_contrast(facts, {"axis": axis, "a": facts[axis], "b": other_value}, c))
    return out


# The paper's Table 1 question: does a method's gain over the baseline differ between languages, or between
# models? Each axis is a fact along which two otherwise equal method contrasts are set side by side.
INTERACTION_AXES = ("lang", "model")


def _seed_mean(dirs: list[Path], task: str, metric: str, lang: str) -> dict:
    """{item: mean over the seeds' evaluations} (None where any seed has no value for the item)."""
    per_seed = [item_scores(d, task, metric, lang) for d in dirs]
    ids = set.intersection(*(set(s) for s in per_seed))
    return {i: None if any(s[i] is None for s in per_seed) else sum(s[i] for s in per_seed) / len(per_seed)
            for i in ids}


def _gains(a: list[Path], b: list[Path], task: str, metric: str, lang: str) -> dict:
    """g_i = mean_s a_si − mean_s b_si for each item both sides scored."""
    ma, mb = _seed_mean(a, task, metric, lang), _seed_mean(b, task, metric, lang)
    return {i: ma[i] - mb[i] for i in set(ma) & set(mb) if ma[i] is not None and mb[i] is not None}


def interaction(a1: list[Path], b1: list[Path], a2: list[Path], b2: list[Path], *, resamples: int = RESAMPLES,
                seed: int = 0) -> list[dict]:
    """(A − B at setting 1) − (A − B at setting 2), for every (task, metric, eval language) all four sides
    measured item by item: a difference of differences over the items both settings share (the prompt sets
    are parallel across languages, so item i is the same request in each):

        g_i(k) = mean_s a_si(k) − mean_s b_si(k)              an item's gain at setting k, seeds averaged
        DiD    = mean_i [ g_i(1) − g_i(2) ]                   paired bootstrap CI and sign-flip p over items

    Seeds are averaged before the bootstrap, so the CI holds the items' variation, not the seeds'.
    Each side lists one evaluation directory per seed; the target language is each setting's own."""
    results = [[_results(d) for d in side] for side in (a1, b1, a2, b2)]
    targets = (results[0][0]["meta"]["lang"], results[2][0]["meta"]["lang"])
    out = []
    for name, task in TASKS.items():
        measured = [set.intersection(*(set(r.get(name) or {}) for r in side)) for side in results]
        for eval_lang in ("target", "en"):
            langs = ("en", "en") if eval_lang == "en" else targets
            if not (langs[0] in measured[0] & measured[1] and langs[1] in measured[2] & measured[3]):
                continue
            for metric in task.metrics:
                if metric.item_field is None or not metric.in_rows:
                    continue
                g1 = _gains(a1, b1, name, metric.name, langs[0])
                g2 = _gains(a2, b2, name, metric.name, langs[1])
                shared = set(g1) & set(g2)
                if not shared:
                    continue
                got = paired_difference({i: g1[i] for i in shared}, {i: g2[i] for i in shared},
                                        resamples=resamples, seed=seed)
                out.append({"task": name, "metric": metric.name, "eval_lang": eval_lang, "unit": metric.unit,
                            "higher_is_better": metric.higher_is_better, **got.as_dict(),
                            "seeds_a": len(a1), "seeds_b": len(a2)})
    return out


def run_interactions(evals: list[tuple[dict, Path]], baseline: str = "sft", *,
                     resamples: int = RESAMPLES) -> list[dict]:
    """Every method's gain over `baseline` set against the same gain one `INTERACTION_AXES` fact away (all
    else equal), in the order the run lists the settings: e.g. (CLO − SFT in sw) − (CLO − SFT in de)."""
    groups: dict[tuple, list[Path]] = {}
    order: dict[str, list] = {axis: [] for axis in INTERACTION_AXES}
    for facts, directory in evals:
        for axis in INTERACTION_AXES:
            if facts.get(axis) not in order[axis]:
                order[axis].append(facts.get(axis))
        if facts["method"] != "base" and not facts.get("trained_langs"):
            groups.setdefault(tuple(sorted((k, v) for k, v in facts.items() if k != "seed")), []).append(
                Path(directory))
    out = []
    for key, a1 in groups.items():
        facts = dict(key)
        if facts["method"] == baseline:
            continue
        b1 = groups.get(tuple(sorted({**facts, "method": baseline}.items())))
        for axis in INTERACTION_AXES:
            for other in order[axis][order[axis].index(facts[axis]) + 1:]:
                a2 = groups.get(tuple(sorted({**facts, axis: other}.items())))
                b2 = groups.get(tuple(sorted({**facts, axis: other, "method": baseline}.items())))
                if b1 and a2 and b2:
                    contrast = {"axis": axis, "a": facts[axis], "b": other, "method_b": baseline}
                    for c in interaction(sorted(a1), sorted(b1), sorted(a2), sorted(b2), resamples=resamples):
                        out.append(_contrast({k: v for k, v in facts.items() if k != axis}, contrast, c))
    return out


def _contrast(facts: dict, contrast: dict, c: dict) -> dict:
    """One comparison row: the facts of side A's models, the contrast, the difference. The keys must not
    overlap: a difference's key named like a fact once overwrote the model's method and language, and
    the report's tables then found no comparison for their cells."""
    clash = set(facts) & set(c) | set(contrast) & set(c)
    if clash:
        raise ValueError(f"a comparison's keys {sorted(clash)} would overwrite the models' facts")
    return {**facts, **contrast, **c}


def _multilingual_contrasts(facts: dict, dirs: list[Path], groups: dict, resamples: int) -> list[dict]:
    """A multilingual model − the single-language model of each trained language L (all else equal), item
    by item in L, and in English against the first language's model only: English's held-out pairs are
    the first language's on both sides (eval/heldout.py), so only there do the items pair up."""
    out = []
    trained = facts["trained_langs"].split("+")
    single = {k: v for k, v in facts.items() if k != "trained_langs"}
    for lang in trained:
        other = groups.get(tuple(sorted({**single, "lang": lang}.items())))
        if not other:
            continue
        langs = {lang, "en"} if lang == facts["lang"] else {lang}
        for c in compare_evals(sorted(dirs), sorted(other), resamples=resamples, langs=langs):
            contrast = {"axis": "trained_langs", "a": f"{facts['trained_langs']} model", "b": f"{lang} model"}
            out.append(_contrast({**facts, "lang": lang}, contrast, c))
    return out
