"""BELEBELE reading comprehension, scored by log-likelihood (paper §4.2, App. E, Table 7).

Each item is rendered in its language's template (field labels and option labels of Table 7;
English uses lm-eval's labels spelled out), as one plain text string -- no chat template, as in the
paper and in lm-evaluation-harness:

    Hati: <passage>                     (Korean: 문서: ...)
    Swali: <question>                   (질문: ...)
    A: <option 1>                       (가) <option 1>)
    ...
    Jibu:                               (정답:)

and each of the four continuations " A" .. " D" (" 가)" .. " 라)") is scored:

    ll_k = Σ_t log p(c_k,t | context, c_k,<t)          prediction = argmax_k ll_k

We score the option *label*, not the option text, as lm-eval's belebele task does (the paper cites
lm-eval for this step, Gao et al. 2024): every option then costs the same few tokens, so there is no
length bias to normalise. Tokenisation follows lm-eval too: continuation tokens are
`encode(context + continuation)[len(encode(context)):]`.

Sharing the context (`score_groups`): a question's four continuations share its context, and the
questions about one passage share the passage (BELEBELE has 900 questions on 488 passages), so
each shared piece is computed once: a passage, its questions and their labels are packed into one
sequence under a tree attention mask (passage → question → label), one forward per batch. Only
the logits at each context's last position (and inside multi-token labels) are projected onto the
vocabulary; the last-position logits score every single-token label at once. Per-item
log-likelihoods equal those of scoring each option separately (up to float rounding) and lm-eval's
(tests/eval/test_belebele.py). Accuracy comes with the standard error of the mean over items.
Per-item rows are written at the end (no resume: this pass is minutes, not hours).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch

from langshift.eval.generate import encode_prompt
from langshift.eval.stats import metric_value
from langshift.files import InputError, iter_jsonl, stable_hash, write_jsonl
from langshift.languages import get_language
from langshift.progress import progress_bar

HUB = "facebook/belebele"
FIELDS = (
    "flores_passage",
    "question",
    "mc_answer1",
    "mc_answer2",
    "mc_answer3",
    "mc_answer4",
    "correct_answer_num",
)


# ------------------------------------------------------------------------------------------- data


def load_belebele(source: str | os.PathLike = HUB, lang: str = "en", limit: int | None = None) -> list[dict]:
    """Items `{"id", "passage", "question", "options", "answer" (0-3), "dialect"}` of one language.

    `source` is a local JSONL in BELEBELE's schema (rows of other dialects are skipped when the file
    mixes languages) or a hub dataset id whose config is the language's FLORES code.
    """
    language = get_language(lang)
    dialect = language.belebele_config
    path = Path(source)
    if path.exists():
        rows = list(iter_jsonl(path))
        present = sorted({row["dialect"] for _, row in rows if row.get("dialect")})
        if present:
            rows = [(n, row) for n, row in rows if row.get("dialect", dialect) == dialect]
            if not rows:
                raise InputError(
                    path,
                    f"no BELEBELE items for {language.name} (dialect {dialect}); "
                    f"the file has {', '.join(present)}",
                    field="dialect",
                )
    else:
        from langshift.hub import load_split

        rows = list(enumerate(load_split(str(source), dialect, split="test"), start=1))
    items = [_item(path, n, row, dialect) for n, row in rows]
    return items[:limit] if limit else items


def _item(path: Path, line: int, row: dict, dialect: str) -> dict:
    for field in FIELDS:
        if not isinstance(row.get(field), (str, int)) or str(row[field]).strip() == "":
            raise InputError(path, "missing or empty", line=line, field=field)
    gold = str(row["correct_answer_num"]).strip()
    if gold not in ("1", "2", "3", "4"):
        raise InputError(path, f"must be 1-4, got {gold!r}", line=line, field="correct_answer_num")
    # Parallel items share link + question_number across languages, so they share an id too.
    key = (row.get("link"), row.get("question_number")) if row.get("link") else (row["question"], line)
    return {
        "id": str(row.get("id") or stable_hash(*key, length=12)),
        "passage": str(row["flores_passage"]),
        "question": str(row["question"]),
        "options": [str(row[f"mc_answer{k}"]) for k in range(1, 5)],
        "answer": int(gold) - 1,
        "dialect": row.get("dialect", dialect),
    }


# ----------------------------------------------------------------------------------------- prompt


def render_prompt(item: dict, lang: str) -> str:
    """The Table 7 template of `lang` filled with one item; ends with the answer indicator and ':'."""
    t = get_language(lang).belebele
    lines = [f"{t.passage}: {item['passage'].strip()}", f"{t.question}: {item['question'].strip()}"]
    for label, option in zip(t.option_labels, item["options"], strict=True):
        # "A: text" for bare letters (lm-eval's layout); "가) text" for labels that carry punctuation.
        lines.append(f"{label} {option.strip()}" if label[-1] in ").:" else f"{label}: {option.strip()}")
    lines.append(f"{t.answer}:")
    return "\n".join(lines)


def choices(lang: str) -> list[str]:
    """The four scored continuations: a space, then the option label."""
    return [" " + label for label in get_language(lang).belebele.option_labels]


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) split the way lm-eval splits them."""
    whole = encode_prompt(tokenizer, context + continuation)
    ctx = encode_prompt(tokenizer, context)
    return ctx, whole[len(ctx) :]


# ---------------------------------------------------------------------------------------- scoring


def _common_prefix(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for t in range(n):
        if any(s[t] != seqs[0][t] for s in seqs[1:]):
            return t
    return n


def pack_group(group: list[tuple[list[int], list[list[int]]]]) -> dict:
    """One sequence holding a group's shared prefix, each context's suffix and each continuation.

    Layout and segments (a tree; a token sees the earlier tokens of its own segment and of its
    segment's ancestors, nothing else):

        [prefix | suffix_1 | cont_1,1[:-1] ... cont_1,K[:-1] | suffix_2 | cont_2,1[:-1] ... ]
           0        1         children of 1                     2          children of 2

    Positions restart at each branch, so every token has the position it would have in
    `context + continuation`. `reads` lists (index in the row, member, option, token t): the logits at
    that index predict token t of that continuation. A single-token continuation adds no tokens; it
    is read off its context's last position.
    """
    contexts = [ctx for ctx, _ in group]
    P = min(_common_prefix(contexts), min(len(c) for c in contexts) - 1)  # >= 1 suffix token each
    tokens, pos, seg, parent, reads = list(contexts[0][:P]), list(range(P)), [0] * P, [-1], []
    for m, (ctx, conts) in enumerate(group):
        s = len(parent)
        parent.append(0)
        tokens += ctx[P:]
        pos += range(P, len(ctx))
        seg += [s] * (len(ctx) - P)
        last = len(tokens) - 1
        for k, cont in enumerate(conts):
            c = len(parent)
            parent.append(s)
            reads += [(last, m, k, 0)] + [(len(tokens) + t - 1, m, k, t) for t in range(1, len(cont))]
            tokens += cont[:-1]
            pos += range(len(ctx), len(ctx) + len(cont) - 1)
            seg += [c] * (len(cont) - 1)
    return {"tokens": tokens, "pos": pos, "seg": seg, "parent": parent, "reads": reads}


def _tree_mask(rows: list[dict], width: int, dtype, device) -> torch.Tensor:
    """Additive (B, 1, T, T) mask: 0 where a token may attend (causal and same branch), -inf-like else.

    Padding is its own segment that sees only padding, so no row of the mask is empty.
    """
    allowed = torch.zeros(len(rows), width, width, dtype=torch.bool)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    for b, row in enumerate(rows):
        n_seg = len(row["parent"]) + 1  # last one: padding
        sees = torch.eye(n_seg, dtype=torch.bool)  # sees[s, a]: segment s sees segment a (an ancestor)
        for s in range(n_seg - 1):
            a = row["parent"][s]
            while a >= 0:
                sees[s, a] = True
                a = row["parent"][a]
        seg = torch.tensor(row["seg"] + [n_seg - 1] * (width - len(row["seg"])))
        allowed[b] = sees[seg[:, None], seg[None, :]] & causal
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None].to(device)


def score_groups(
    model, groups: list[list[tuple[list[int], list[list[int]]]]], pad_id: int = 0
) -> list[list[list[float]]]:
    """log p(continuation | context) for each (context, K continuations) of each group: one forward.

    Each group becomes one packed row (`pack_group`): the prefix shared by its contexts (BELEBELE:
    a passage's questions share "Passage: <passage>\nQuestion:") is computed once, each context's
    own suffix once, and the continuations ride along under a tree attention mask. Only the logits
    at the positions in `reads` are projected onto the vocabulary (`logits_to_keep`).
    """
    dev = model.device
    rows = [pack_group(group) for group in groups]
    width = max(len(r["tokens"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros(len(rows), width, dtype=torch.long)
    n_reads = max(len({i for i, *_ in r["reads"]}) for r in rows)
    keep = torch.zeros(len(rows), n_reads, dtype=torch.long)  # row positions whose logits we need
    for b, r in enumerate(rows):
        ids[b, : len(r["tokens"])] = torch.tensor(r["tokens"])
        pos[b, : len(r["pos"])] = torch.tensor(r["pos"])
        r["slot"] = {i: j for j, i in enumerate(sorted({i for i, *_ in r["reads"]}))}
        keep[b, : len(r["slot"])] = torch.tensor(sorted(r["slot"]))
    mask = _tree_mask(rows, width, model.dtype, dev)
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        logits = model(
            input_ids=ids.to(dev), attention_mask=mask, position_ids=pos.to(dev), logits_to_keep=keep.to(dev)
        ).logits
    else:  # models without logits_to_keep: all positions, then the same selection
        logits = model(input_ids=ids.to(dev), attention_mask=mask, position_ids=pos.to(dev)).logits
        logits = torch.take_along_dim(logits, keep.to(dev)[..., None], dim=1)
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    out = []
    for b, (group, r) in enumerate(zip(groups, rows, strict=True)):
        scores = [[0.0] * len(conts) for _, conts in group]
        for i, m, k, t in r["reads"]:
            scores[m][k] += float(logp[b, r["slot"][i], group[m][1][k][t]])
        out.append(scores)
    return out


def score_requests(
    model,
    requests: list[tuple[list[int], list[list[int]]]],
    keys: list,
    *,
    batch_size: int = 8,
    pad_id: int = 0,
    desc: str = "loglik",
) -> list[list[float]]:
    """Scores of `requests` (context, continuations); requests with the same key share their prefix.

    Groups are sorted longest first (least padding, early out-of-memory) and packed into batches of
    about `batch_size` contexts.
    """
    by_key: dict = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    groups = sorted(by_key.values(), key=lambda idx: -max(len(requests[i][0]) for i in idx))
    scores: list = [None] * len(requests)
    with progress_bar(total=len(requests), desc=desc, unit="item") as bar:
        while groups:
            batch, size = [], 0
            while groups and (not batch or size + len(groups[0]) <= batch_size):
                size += len(groups[0])
                batch.append(groups.pop(0))
            out = score_groups(model, [[requests[i] for i in idx] for idx in batch], pad_id)
            for idx, group_scores in zip(batch, out, strict=True):
                for i, s in zip(idx, group_scores, strict=True):
                    scores[i] = s
            bar.update(size)
    return scores


def evaluate_belebele(
    model,
    tokenizer,
    items: list[dict],
    lang: str,
    *,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 8,
) -> dict:
    """Accuracy ± stderr of `model` on `items`; per-item rows go to `out_dir/belebele.<lang>.jsonl`."""
    if not items:
        raise ValueError("no BELEBELE items to evaluate")
    code = get_language(lang).code
    labels = choices(code)
    encoded = []
    for item in items:
        context = render_prompt(item, code)
        pairs = [encode_pair(tokenizer, context, label) for label in labels]
        encoded.append((pairs[0][0], [cont for _, cont in pairs]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    with torch.inference_mode():
        logliks = score_requests(
            model,
            encoded,
            [item["passage"] for item in items],
            batch_size=batch_size,
            pad_id=pad_id,
            desc=f"belebele {code}",
        )
    rows = []
    for item, ll in zip(items, logliks, strict=True):
        pred = max(range(len(ll)), key=lambda k: ll[k])  # first maximum on ties, like numpy.argmax
        rows.append(
            {
                "id": item["id"],
                "loglik": ll,
                "pred": pred,
                "gold": item["answer"],
                "correct": int(pred == item["answer"]),
            }
        )
    if out_dir is not None:
        write_jsonl(Path(out_dir) / f"belebele.{code}.jsonl", rows)
    return {"metrics": {"accuracy": metric_value(r["correct"] for r in rows)}, "lang": code}


def run_task(ctx, lang: str) -> dict:
    """The `belebele` task: the config's items in `lang`, scored on the suite's model."""
    items = load_belebele(ctx.cfg.belebele, lang, limit=ctx.cfg.limit)
    model, tokenizer = ctx.model.get()
    return evaluate_belebele(model, tokenizer, items, lang, out_dir=ctx.out, batch_size=ctx.cfg.batch_size)
