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
each shared piece is run once and its KV cache reused: passage prefix → question suffix → label.
Only the logits at each context's last position are projected onto the vocabulary; they score every
single-token continuation at once. Per-item log-likelihoods equal scoring each option separately
(up to float rounding), and lm-eval's (tests/eval/test_belebele.py). Accuracy comes with the
standard error of the mean over items.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from langshift.eval.generate import encode_prompt
from langshift.eval.stats import mean_stderr
from langshift.files import InputError, iter_jsonl, stable_hash, write_jsonl
from langshift.languages import get_language

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
        from datasets import load_dataset

        rows = list(enumerate(load_dataset(str(source), dialect, split="test"), start=1))
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


def _right_pad(seqs: list[list[int]], pad_id: int, device) -> torch.Tensor:
    out = torch.full((len(seqs), max(1, max(len(s) for s in seqs))), pad_id, dtype=torch.long, device=device)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long, device=device)
    return out


def _valid(lens: torch.Tensor, width: int) -> torch.Tensor:
    """Attention mask of right-padded rows: 1 on the first `lens[i]` positions."""
    return (torch.arange(width, device=lens.device)[None] < lens[:, None]).long()


def _common_prefix(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for t in range(n):
        if any(s[t] != seqs[0][t] for s in seqs[1:]):
            return t
    return n


def score_groups(
    model, groups: list[list[tuple[list[int], list[list[int]]]]], pad_id: int = 0
) -> list[list[list[float]]]:
    """log p(continuation | context) for each (context, K continuations) of each group, in one batch.

    Three levels of sharing, each run once:
      1. the token prefix common to a group's contexts (BELEBELE: a passage's questions share
         "Passage: <passage>\nQuestion:") -- one row per group;
      2. each context's own suffix, on the group's KV cache -- one row per context; only the logits
         at the context's last position are projected onto the vocabulary (`logits_to_keep`),
         and they score the first token of all K continuations;
      3. continuations longer than one token (e.g. " 가)"): the rest, on the cache repeated K times.
    Rows are right-padded; later calls mask the padding inside the cache and pass explicit
    positions, so each token sees exactly its own context.
    """
    dev = model.device
    members = [(g, ctx, conts) for g, group in enumerate(groups) for ctx, conts in group]
    K = len(members[0][2])
    multi = max(len(c) for _, _, conts in members for c in conts) > 1
    rows = torch.tensor([g for g, _, _ in members], device=dev)

    # 1. group prefixes (at least one token of every context is left for step 2)
    plen = torch.tensor(
        [min(_common_prefix([c for c, _ in grp]), min(len(c) for c, _ in grp) - 1) for grp in groups],
        device=dev,
    )
    cache, prefix_mask = None, torch.zeros(len(members), 0, dtype=torch.long, device=dev)
    if int(plen.max()) > 0:
        prefix = _right_pad(
            [grp[0][0][:p] for grp, p in zip(groups, plen.tolist(), strict=True)], pad_id, dev
        )
        cache = model(
            input_ids=prefix,
            use_cache=True,
            **_keep(model, torch.zeros(len(groups), 1, dtype=torch.long, device=dev)),
        ).past_key_values
        cache.batch_select_indices(rows)
        prefix_mask = _valid(plen, prefix.shape[1])[rows]

    # 2. context suffixes; logits at each context's last token only
    slen = torch.tensor([len(ctx) for _, ctx, _ in members], device=dev) - plen[rows]
    suffix = _right_pad(
        [ctx[p:] for (_, ctx, _), p in zip(members, plen[rows].tolist(), strict=True)], pad_id, dev
    )
    mask = torch.cat([prefix_mask, torch.ones_like(suffix)], dim=1)
    pos = plen[rows][:, None] + torch.arange(suffix.shape[1], device=dev)[None]
    out = model(
        input_ids=suffix,
        attention_mask=mask,
        position_ids=pos,
        past_key_values=cache,
        use_cache=multi,
        **_keep(model, (slen - 1)[:, None]),
    )
    last = out.logits[:, -1] if out.logits.shape[1] == 1 else out.logits[torch.arange(len(members)), slen - 1]
    first = torch.log_softmax(last.float(), dim=-1)  # (members, V): log p(first continuation token)
    scores = [[float(first[m, conts[k][0]]) for k in range(K)] for m, (_, _, conts) in enumerate(members)]

    # 3. remaining continuation tokens on the context cache repeated K times
    if multi:
        cache = out.past_key_values
        cache.batch_repeat_interleave(K)
        flat = [c for _, _, conts in members for c in conts]
        cont = _right_pad([c[:-1] for c in flat], pad_id, dev)
        mask = torch.cat([prefix_mask, _valid(slen, suffix.shape[1])], dim=1)
        mask = torch.cat([mask.repeat_interleave(K, 0), torch.ones_like(cont)], dim=1)
        start = (plen[rows] + slen).repeat_interleave(K)  # position of each continuation's first token
        pos = start[:, None] + torch.arange(cont.shape[1], device=dev)[None]
        logits = model(input_ids=cont, attention_mask=mask, position_ids=pos, past_key_values=cache).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for r, c in enumerate(flat):
            for t in range(1, len(c)):
                scores[r // K][r % K] += float(logp[r, t - 1, c[t]])

    it = iter(scores)
    return [[next(it) for _ in group] for group in groups]


def _keep(model, positions: torch.Tensor) -> dict:
    """`logits_to_keep` at the given per-row positions when the model supports it."""
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return {"logits_to_keep": positions}
    return {}


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
    with tqdm(total=len(requests), desc=desc, unit="item") as bar:
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
    accuracy, stderr = mean_stderr(r["correct"] for r in rows)
    if out_dir is not None:
        write_jsonl(Path(out_dir) / f"belebele.{code}.jsonl", rows)
    return {"accuracy": accuracy, "stderr": stderr, "n": len(rows), "lang": code}
