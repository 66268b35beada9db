"""Judge-free metrics on held-out quadruples never trained on: language preference and held-out NLL.

No generation, so no sampling noise: each item is four scoring passes. For the eval language L (the
target t or English) and each held-out record (x_en, y_en, x_t, y_t), with o the other language:

    same  = log π(y_L | x_L)       the reply in the prompt's language
    other = log π(y_o | x_L)       the same reply in the other language

  langpref     preference        = [same > other]        share of items whose prompt-language reply wins
               margin            = same − other          nats, summed over each reply's tokens
               margin_per_token  = same/|y_L| − other/|y_o|   the same, length-normalised
  heldout_nll  nll_per_token     = −same / |y_L|         target NLL measures competence in the language;
                                                         English NLL measures "English is kept"

This is CLO's contrastive term (Eq. 6-7 without the reference) measured out of sample. The log-probs
come from the training engine (`train.encode.Encoder` builds the very sequences training scores,
`train.logps.sequence_logps` scores them, laid out as in training), so a metric and the loss never disagree on a token.
"""

from __future__ import annotations

from pathlib import Path

import torch

from langshift.eval.stats import metric_value
from langshift.files import write_jsonl

MAX_LENGTH = 4096  # held-out pairs are short; nothing is cut at this length
BATCH_TOKENS = 4096

SIDES = {"target": ("tgt_chosen", "tgt_rejected"), "en": ("en_chosen", "en_rejected")}


def heldout_for(cfg, lang: str | None = None) -> list:
    """The held-out records of target language `lang` (English: the eval config's first target, whose pairs
    give x_en, y_en and the rejected y_t) (the first `cfg.limit`), refused if they overlap the data the
    model was trained on (`cfg.train_data`: one records file, or several comma-separated)."""
    from langshift.data.seed import check_disjoint, heldout_records
    from langshift.data.seed import demo_dir as _demo_dir

    path = cfg.heldout or (_demo_dir() / "heldout_pairs.jsonl")
    target = cfg.targets[0] if lang in (None, "en") else lang
    records = heldout_records(target, path)[: cfg.limit]
    if cfg.train_data:
        from langshift.records import load_records

        trained = [r for source in cfg.train_data.split(",") for r in load_records(source)]
        check_disjoint(records, trained, path)
    return records


@torch.no_grad()
def score_sequences(model, sequences, plan=None) -> list[tuple[float, int]]:
    """(log π(y|x) summed over y, |y|) of each encoded sequence, laid out as training lays out its forward
    (train/layout.py: the two replies under one prompt share it, rows packed), about BATCH_TOKENS tokens
    per forward. `plan`: the model's `plan_layout` when the caller has it (it probes the model)."""
    from langshift.train.layout import token_batches
    from langshift.train.logps import plan_layout, sequence_logps

    plan = plan or plan_layout(model)
    out: list[tuple[float, int] | None] = [None] * len(sequences)
    model.eval()
    for part in token_batches(sequences, BATCH_TOKENS, plan.share):
        logps, n_tok = sequence_logps(model, [sequences[i] for i in part], plan)
        for i, lp, n in zip(part, logps.tolist(), n_tok.tolist(), strict=True):
            out[i] = (lp, int(n))
    return out


def item_scores(ctx, lang: str) -> list[dict]:
    """Per held-out item in eval language `lang`: same, other (log-probs) and their lengths; computed
    once per evaluation (both tasks read them)."""
    key = ("heldout", lang)
    if key not in ctx.cache:
        from langshift.models import chat_format
        from langshift.train.encode import Encoder

        model, tokenizer = ctx.model.get()
        records = heldout_for(ctx.cfg, lang)
        encoder = Encoder(tokenizer, chat_format(tokenizer), MAX_LENGTH)
        same_role, other_role = SIDES["en" if lang == "en" else "target"]
        encoded = [encoder.encode(r) for r in records]
        if "layout" not in ctx.cache:  # probed once per evaluation, not once per language
            from langshift.train.logps import plan_layout

            ctx.cache["layout"] = plan_layout(model)
        scored = score_sequences(model, [e[role] for e in encoded for role in (same_role, other_role)],
                                 ctx.cache["layout"])
        ctx.cache[key] = [
            {"id": r.id, "same": scored[2 * i][0], "n_same": scored[2 * i][1],
             "other": scored[2 * i + 1][0], "n_other": scored[2 * i + 1][1]}
            for i, r in enumerate(records)
        ]
    return ctx.cache[key]


def langpref_items(scores: list[dict]) -> list[dict]:
    return [{"id": s["id"], "preference": float(s["same"] > s["other"]), "margin": s["same"] - s["other"],
             "margin_per_token": s["same"] / s["n_same"] - s["other"] / s["n_other"],
             "same": s["same"], "other": s["other"]} for s in scores]


def run_langpref(ctx, lang: str) -> dict:
    """The `langpref` task; items to `langpref.<lang>.jsonl`."""
    items = langpref_items(item_scores(ctx, lang))
    write_jsonl(Path(ctx.out) / f"langpref.{lang}.jsonl", items)
    return {"metrics": {name: metric_value(it[name] for it in items)
                        for name in ("preference", "margin", "margin_per_token")}, "lang": lang}


def run_heldout_nll(ctx, lang: str) -> dict:
    """The `heldout_nll` task; items to `heldout_nll.<lang>.jsonl`."""
    items = [{"id": s["id"], "nll_per_token": -s["same"] / s["n_same"], "tokens": s["n_same"]}
             for s in item_scores(ctx, lang)]
    write_jsonl(Path(ctx.out) / f"heldout_nll.{lang}.jsonl", items)
    return {"metrics": {"nll_per_token": metric_value(it["nll_per_token"] for it in items)}, "lang": lang}
